// The console's words in Chinese (first) and English, and times and durations as a Shanghai
// duty officer reads them. Which kinds, statuses and steps exist is the center's to say
// (/api/vocabulary); only their names are here.

const TEXT = {
  "zh-CN": {
    title: "雪亮 · 综治中心值班台", login: "登录", user: "用户名", password: "密码",
    wrong: "用户名或密码错误", locked: "登录失败次数过多，请稍候再试", logout: "退出", lang: "English", alarms: "告警", fleet: "设备", counties: "区县", county: "区县", events: "事件数", boxesOnline: "设备在线",
    forwardedFrom: (c) => `来自 ${c}，由该区县值班员处置；本级可派出本级力量`, ownSteps: "本级派警",
    unack: "未确认", time: "时间", camera: "摄像机", kind: "类型", severity: "级别", status: "状态",
    location: "位置", from: "开始时间", to: "结束时间", apply: "筛选", all: "全部", more: "加载更多",
    note: "备注", dispatchTo: "派往", timeline: "处置记录", webhooks: "Webhook 推送", audit: "审计记录", noAlarm: "请选择一条告警",
    snapshotOf: "告警快照", noSnapshot: "无快照", agent: "设备", online: "在线", offline: "离线",
    never: "从未上线", since: "自", decode: "解码帧率", infer: "推理帧率", inferMs: "推理耗时",
    outbox: "待发告警", config: "配置版本", lastSeen: "最近联系", dispatches: "派警任务",
    gbTitle: "国标上级平台（GB/T 28181）", gbPlatform: "平台", gbKeepalive: "最近心跳", gbSent: "已上报告警", gbWaiting: "待上报",
    gbStates: { registered: "已注册", registering: "注册中", unreachable: "无法连接" },
    feedback: "反馈", progress: "进展", newAlarm: "新告警", failed: "操作失败", none: "暂无",
    by: "操作人", enrolTitle: "登记新设备", enrolAgent: "设备编号", enrolHours: "有效时长（小时）",
    enrolCreate: "生成登记码", enrolToken: "登记码", enrolRun: "请安装人员在设备上以 root 身份运行：",
    enrolUntil: "有效期至", enrolOnce: "登记码只能使用一次，且只在此显示一次。",
    pushTitle: "推送配置", pushToml: "配置（TOML）", pushSubmit: "推送",
    pushed: (v) => `已推送，配置版本 ${v}`, pushInvalid: "配置有误，未推送（行:列: 选项: 问题）：",
    pushAsk: "此配置将：", pushConfirm: "确认并推送", pushCancel: "取消",
    lossNoCamera: "使设备没有任何摄像机", lossStopped: (c) => `停用摄像机 ${c}（配置中不再有摄像机）`,
    lossRemoved: (c, k) => `删除摄像机 ${c} 的第 ${k} 个隐私遮挡区域`,
    lossShrunk: (c, k) => `缩小摄像机 ${c} 的第 ${k} 个隐私遮挡区域`,
    event: "事件", state: "事件状态", peak: (n, people) => `最多 ${n} ${people ? "人" : "个"}`,
    reminder: "仍在持续", reminders: (n) => `已提醒 ${n} 次`, endedAt: "结束于", updatedAt: "更新于",
    states: { ongoing: "持续中", ended: "已结束" },
    clips: "事件录像", clipOf: "事件录像", clipDownload: "下载", clipMasked: "已遮挡隐私区域",
    clipsExpired: "录像已按保留期限删除",
    streams: { record: "主码流", detect: "检测码流" },
    deliveries: { pending: "推送中", delivered: "已送达", failed: "推送失败" },
    kinds: { zone_intrusion: "区域入侵", line_crossing: "越线", loitering: "徘徊", crowding: "人员聚集",
      vehicle_stopped: "车辆违停", fire_smoke: "烟火", camera_offline: "摄像机离线",
      camera_tamper: "摄像机遮挡/移位", camera_back: "摄像机恢复",
      agent_offline: "设备离线", agent_back: "设备恢复", agent_dropped_alarms: "设备丢弃告警",
      agent_clock_off: "设备时钟偏差", center_disk_low: "中心磁盘空间不足", dispatch_failed: "派警推送失败" },
    statuses: { new: "新告警", acknowledged: "已确认", dispatched: "已派警", resolved: "已处置", false_alarm: "误报" },
    severities: { info: "提示", low: "低", medium: "中", high: "高", critical: "紧急" },
    actions: { acknowledge: "确认", dispatch: "派警", resolve: "处置完毕", "false-alarm": "误报",
      escalate: "超时升级", overdue: "超时未接收", receive: "已接收", "on-scene": "已到场", close: "办结" },
    progresses: { none: "待接收", receive: "已接收", "on-scene": "已到场", close: "已办结" },
  },
  en: {
    title: "Xueliang · Duty console", login: "Log in", user: "Login", password: "Password",
    wrong: "Wrong login or password", locked: "Too many failed log-ins: wait a moment, then try again", logout: "Log out", lang: "中文", alarms: "Alarms", fleet: "Fleet", counties: "Counties", county: "County", events: "Events", boxesOnline: "Boxes online",
    forwardedFrom: (c) => `From ${c}, whose duty officers act on it; this center may send its own units`, ownSteps: "This center's dispatches",
    unack: "Unacknowledged", time: "Time", camera: "Camera", kind: "Kind", severity: "Severity",
    status: "Status", location: "Place", from: "From", to: "To", apply: "Filter", all: "All",
    more: "Load more", note: "Note", dispatchTo: "Dispatch to", timeline: "Case steps", webhooks: "Webhook deliveries",
    audit: "Audit trail", noAlarm: "Select an alarm", snapshotOf: "Alarm snapshot",
    noSnapshot: "No snapshot", agent: "Agent", online: "Online", offline: "Offline",
    never: "Never seen", since: "since", decode: "Decode fps", infer: "Infer fps",
    inferMs: "Inference", outbox: "Outbox", config: "Config version", lastSeen: "Last seen",
    gbTitle: "GB/T 28181 platforms above", gbPlatform: "Platform", gbKeepalive: "Last keepalive", gbSent: "Alarms reported", gbWaiting: "Waiting",
    gbStates: { registered: "Registered", registering: "Registering", unreachable: "Unreachable" },
    dispatches: "Dispatches", feedback: "Feedback", progress: "Progress", newAlarm: "New alarm",
    failed: "Failed", none: "None", by: "By", enrolTitle: "Enrol a box", enrolAgent: "Agent id",
    enrolHours: "Valid for (hours)", enrolCreate: "Create a token", enrolToken: "Token",
    enrolRun: "On the box, as root, the installer runs:", enrolUntil: "Valid until",
    enrolOnce: "The token works once and is shown only now.",
    pushTitle: "Push a config", pushToml: "Config (TOML)", pushSubmit: "Push",
    pushed: (v) => `Pushed as config version ${v}`,
    pushInvalid: "The config has problems and was not pushed (line:column: option: problem):",
    pushAsk: "This config would:", pushConfirm: "Confirm and push", pushCancel: "Cancel",
    lossNoCamera: "leave the box with no camera", lossStopped: (c) => `stop camera ${c} (no camera left in the config)`,
    lossRemoved: (c, k) => `remove privacy mask ${k} of camera ${c}`,
    lossShrunk: (c, k) => `shrink privacy mask ${k} of camera ${c}`,
    event: "Event", state: "Event state", peak: (n) => `peak ${n}`, reminder: "Still going on",
    reminders: (n) => `${n} reminder(s)`, endedAt: "ended", updatedAt: "updated",
    states: { ongoing: "Ongoing", ended: "Ended" },
    clips: "Event clips", clipOf: "Event clip", clipDownload: "Download", clipMasked: "privacy masks applied",
    clipsExpired: "Clips deleted by retention",
    streams: { record: "main stream", detect: "detection stream" },
    deliveries: { pending: "sending", delivered: "delivered", failed: "failed" },
    kinds: { zone_intrusion: "Zone intrusion", line_crossing: "Line crossing", loitering: "Loitering",
      crowding: "Crowding", vehicle_stopped: "Vehicle stopped", fire_smoke: "Fire/smoke",
      camera_offline: "Camera offline", camera_tamper: "Camera tampered", camera_back: "Camera back",
      agent_offline: "Box offline", agent_back: "Box back", agent_dropped_alarms: "Box dropped alarms",
      agent_clock_off: "Box clock off", center_disk_low: "Center disk low", dispatch_failed: "Dispatch not delivered" },
    statuses: { new: "New", acknowledged: "Acknowledged", dispatched: "Dispatched", resolved: "Resolved", false_alarm: "False alarm" },
    severities: { info: "Info", low: "Low", medium: "Medium", high: "High", critical: "Critical" },
    actions: { acknowledge: "Acknowledge", dispatch: "Dispatch", resolve: "Resolve", "false-alarm": "False alarm",
      escalate: "Escalated", overdue: "Not received in time", receive: "Received", "on-scene": "On scene", close: "Closed" },
    progresses: { none: "Not received", receive: "Received", "on-scene": "On scene", close: "Closed" },
  },
};

let lang = localStorage.getItem("xl-lang") || "zh-CN";

/** The console's word for `key` in the current language. */
export const t = (key) => TEXT[lang][key] ?? key;
/** The name of `key` in `group` (kinds, statuses, severities, actions, progresses, states, streams, deliveries, gbStates). */
export const label = (group, key) => (TEXT[lang][group] || {})[key] || key;

/** Puts the page's fixed texts (data-t) in the current language. */
export function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  document.querySelector("#lang").textContent = t("lang");
}

/** Chinese ⇄ English, remembered in this browser. */
export function toggleLanguage() {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("xl-lang", lang);
  applyLanguage();
}

/** A datetime-local input's value, the officer's wall clock in Shanghai, as the API takes a time. */
export const shanghaiTime = (v) => `${v}:00+08:00`;

export function fmtTime(ms) {
  if (!ms) return "";
  return new Intl.DateTimeFormat(lang, {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(ms));
}

/** How long an event lasted, as an officer says it: 45秒, 1分05秒, 1小时02分05秒. */
export function fmtDuration(ms) {
  const all = Math.floor(Math.max(0, ms || 0) / 1000);
  const [h, m, s] = [Math.floor(all / 3600), Math.floor(all / 60) % 60, all % 60];
  const two = (n) => String(n).padStart(2, "0");
  if (lang === "zh-CN") return h ? `${h}小时${two(m)}分${two(s)}秒` : m ? `${m}分${two(s)}秒` : `${s}秒`;
  return h ? `${h} h ${two(m)} min ${two(s)} s` : m ? `${m} min ${two(s)} s` : `${s} s`;
}
