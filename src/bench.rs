//! What the benchmarks share: a Mosquitto of their own, the CPU and memory they read off
//! processes, and a made-up alarm.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xueliang_proto::{Alarm, Detection, RuleKind, SCHEMA_VERSION, Severity};

/// Mosquitto as a child process, killed on drop.
pub struct Mosquitto {
    child: std::process::Child,
    /// Its loopback port.
    pub port: u16,
}

impl Mosquitto {
    /// Starts `/usr/sbin/mosquitto` on a free loopback port, anonymous, nothing persisted,
    /// with its config in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.join("mosquitto.conf");
        let settings = "allow_anonymous true\npersistence false\nmax_packet_size 4194304\n\
                        max_inflight_messages 1000\nmax_queued_messages 100000";
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{settings}\n"))?;
        let null = std::process::Stdio::null;
        let child = std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(null())
            .stderr(null())
            .spawn()
            .context("cannot start /usr/sbin/mosquitto (make setup installs it)")?;
        let mosquitto = Self { child, port };
        wait_listening(port, "Mosquitto")?;
        Ok(mosquitto)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to 30 s for `what` to listen on loopback `port`.
pub fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{what} does not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// This process's CPU time (user + system) and peak RSS in MiB.
pub fn rusage() -> (Duration, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as f64 / 1024.0)
}

/// CPU time (user + system) of process `pid` and of its children now running (PostgreSQL's
/// backends), from /proc.
pub fn cpu_of(pid: u32) -> Duration {
    // After "(command)": state, ppid, …; utime and stime are fields 14 and 15 of the line.
    let fields = |stat: &str| -> (Option<u32>, u64) {
        let rest: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks = rest.iter().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
        (rest.get(1).and_then(|p| p.parse().ok()), ticks)
    };
    let mut ticks =
        fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()).1;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
            && let (Some(parent), t) = fields(&stat)
            && parent == pid
        {
            ticks += t;
        }
    }
    // SAFETY: sysconf has no preconditions.
    Duration::from_secs_f64(
        ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64,
    )
}

/// The resident and peak memory of process `pid`, KiB (0 where it cannot be read).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Alarm `i` of `agent` raised at `time_ms`: a person in the gate zone, with a snapshot of
/// `bytes` pseudo-random bytes.
pub fn alarm(agent: &str, i: usize, bytes: usize, time_ms: i64) -> Alarm {
    let r#box = Some(xueliang_proto::Box { x1: 0.2, y1: 0.3, x2: 0.4, y2: 0.9 });
    Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: format!("{agent}-{i:06}"),
        agent_id: agent.to_owned(),
        camera_id: "gate".into(),
        rule_id: "gate-intrusion".into(),
        zone_id: "gate".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: time_ms,
        detections: vec![Detection {
            class_name: "person".into(),
            score: 0.9,
            r#box,
            ..Default::default()
        }],
        snapshot_jpeg: noise(i, bytes).into(),
        frame_width: 768,
        frame_height: 576,
        ..Default::default()
    }
}

/// `bytes` pseudo-random bytes, different for each `seed`: no two pictures alike, nothing to
/// compress.
pub fn noise(seed: usize, bytes: usize) -> Vec<u8> {
    // Multiplicative hashing of (seed, offset).
    let byte = |b: usize| {
        ((b as u64 ^ (seed as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    };
    (0..bytes).map(byte).collect()
}

/// The `q`th quantile (0 to 1) of `sorted` (empty: 0).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * q).round() as usize],
    }
}
