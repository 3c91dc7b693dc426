//! The agent built for aarch64 boxes, run on this x86_64 machine under `qemu-aarch64` (Debian's
//! qemu-user, emulating a Cortex-A76, the big core of an RK3588) with the aarch64 ONNX Runtime:
//! the installer puts the aarch64 files into the image of an aarch64 box, and the installed agent
//! accepts the shipped example config; `xl-agent bench` on the first frames of `vtest.avi` finds
//! the people the x86_64 agent finds in the first frame; and an alarm goes from the emulated
//! agent through a real center on this machine, its health reporting the camera.
//!
//! `make test` builds the agent for them (`--profile emulated`, unoptimised) and runs them once
//! it is built. Emulation runs inference hundreds of times slower than the machine does: these
//! tests show that the aarch64 build works, not how fast a box is (docs/hardware.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use xueliang_center::running::start;
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

const TARGET: &str = "aarch64-unknown-linux-gnu";
const MODEL: &str = ".cache/models/nanodet_g416_coco.onnx";
const EXAMPLE_MODEL: &str = "/usr/share/xueliang/models/nanodet_g416_coco.onnx";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the checkout that `make test` or its set-up makes, checked present.
fn made(rel: &str, by: &str) -> PathBuf {
    let path = repo().join(rel);
    assert!(path.is_file(), "{} is missing: {by} makes it", path.display());
    path
}

/// The aarch64 agent `make test` builds.
fn aarch64_agent() -> PathBuf {
    made(&format!("target/cross/{TARGET}/emulated/xl-agent"), "make test")
}

fn aarch64_onnxruntime() -> PathBuf {
    made(".cache/onnxruntime-aarch64/libonnxruntime.so.1.31.1", "scripts/setup.sh --aarch64")
}

/// `program` under `qemu-aarch64`, as on a box: a Cortex-A76 (the default CPU, with SVE,
/// takes ONNX Runtime's slowest path under emulation), the aarch64 ONNX Runtime, the arm64
/// decoders (`scripts/setup.sh --aarch64` takes them out of their package, which cannot be
/// installed beside the amd64 one), and GStreamer's plugin registry scanned in-process (the
/// emulated program cannot start the aarch64 scanner helper), kept beside the build.
fn emulated(program: &Path) -> Command {
    made(".cache/aarch64/gstreamer-1.0/libgstlibav.so", "scripts/setup.sh --aarch64");
    let mut cmd = Command::new("qemu-aarch64");
    cmd.args(["-cpu", "cortex-a76"])
        .arg(program)
        .env("ORT_DYLIB_PATH", aarch64_onnxruntime())
        .env("GST_PLUGIN_PATH", repo().join(".cache/aarch64/gstreamer-1.0"))
        .env("GST_REGISTRY", repo().join("target/cross/gstreamer-registry.aarch64.bin"))
        .env("GST_REGISTRY_FORK", "no");
    cmd
}

/// Runs `cmd`, asserting it succeeds; returns its stdout.
fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&common::run_ok(cmd).stdout).into_owned()
}

/// The architecture an ELF file's machine code is for (its e_machine field).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is an ELF file", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

const EM_AARCH64: u16 = 183;

#[test]
fn the_installer_puts_the_aarch64_files_in_an_aarch64_box_whose_agent_accepts_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // What the checkout holds for aarch64, picked by the architecture asked for.
    let mut install = Command::new(repo().join("deploy/agent/install.sh"));
    install.arg("--root").arg(&root).args(["--arch", "aarch64", "--agent-id", "village-box-arm"]);
    let out = stdout_of(&mut install);
    print!("{out}");
    // The cross build `make test` made, or the release one where `make aarch64` ran too.
    let picked = out
        .lines()
        .find_map(|l| l.strip_prefix("install: using the aarch64 "))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap_or_else(|| panic!("the installer says which build it takes:\n{out}"));
    assert!(picked.starts_with(repo().join("target/cross").to_str().unwrap()), "{out}");
    let bin = root.join("usr/bin/xl-agent");
    let ort = root.join("usr/lib/xueliang/libonnxruntime.so.1");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(picked).unwrap());
    assert_eq!(std::fs::read(&ort).unwrap(), std::fs::read(aarch64_onnxruntime()).unwrap());
    assert_eq!((elf_machine(&bin), elf_machine(&ort)), (EM_AARCH64, EM_AARCH64));

    // The installed agent, emulated, checks the shipped example with the installed model.
    let model = root.join(&EXAMPLE_MODEL[1..]);
    let example = std::fs::read_to_string(repo().join("deploy/agent.example.toml")).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, example.replace(EXAMPLE_MODEL, model.to_str().unwrap())).unwrap();
    let out = stdout_of(emulated(&bin).arg("check-config").arg(&config));
    print!("{out}");
    assert!(out.ends_with(": ok (2 cameras, 2 zones, 1 lines, 6 rules)\n"), "{out}");
}

/// The first `frames` frames of `vtest.avi` as they are (no re-encoding), in `dir`.
fn first_frames(dir: &Path, frames: u32) -> PathBuf {
    let clip = dir.join(format!("vtest-{frames}.mkv"));
    let mut cut = Command::new("gst-launch-1.0");
    cut.arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", scenario::vtest().display()))
        .args(["!", "avidemux", "name=d", "d.video_0", "!", "identity"])
        .arg(format!("eos-after={frames}"))
        .args(["!", "matroskamux", "!", "filesink"])
        .arg(format!("location={}", clip.display()));
    common::run(&mut cut);
    clip
}

/// `xl-agent bench` on `clip` with the fewest frames that still measure: its JSON report.
fn bench(mut agent: Command, clip: &Path) -> serde_json::Value {
    let t0 = Instant::now();
    agent
        .args(["bench", "--model", repo().join(MODEL).to_str().unwrap(), "--clip"])
        .arg(clip)
        .args(["--frames", "2", "--warmup", "1", "--bare-runs", "2", "--repeats", "1", "--json"]);
    let out = stdout_of(&mut agent);
    let report: serde_json::Value = serde_json::from_str(&out).expect("bench --json prints JSON");
    eprintln!("bench in {:.0} s: {report}", t0.elapsed().as_secs_f64());
    report
}

/// The people of a bench report's first frame: their boxes.
fn people(report: &serde_json::Value) -> Vec<[f64; 4]> {
    report["first_frame"]
        .as_array()
        .expect("first_frame")
        .iter()
        .filter(|f| f["class"] == "person")
        .map(|f| {
            let b: Vec<f64> =
                f["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            [b[0], b[1], b[2], b[3]]
        })
        .collect()
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / (area(a) + area(b) - w * h)
}

#[test]
fn bench_under_emulation_finds_the_people_the_x86_64_agent_finds_in_the_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let clip = first_frames(dir.path(), 12);
    let mut native = Command::new(common::workspace_binary("xl-agent"));
    native.env("ORT_DYLIB_PATH", made(".cache/onnxruntime/libonnxruntime.so.1.31.1", "make setup"));
    let x86_64 = bench(native, &clip);
    let aarch64 = bench(emulated(&aarch64_agent()), &clip);

    for report in [&x86_64, &aarch64] {
        assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(768), Some(576)));
        assert_eq!(report["ungated"]["inferred"], 2, "{report}");
    }
    let (want, got) = (people(&x86_64), people(&aarch64));
    assert!(want.len() >= 3, "the x86_64 agent finds vtest.avi's first people: {x86_64}");
    // The same people, where the x86_64 agent has them (each kernel rounds its own way).
    assert_eq!(got.len(), want.len(), "x86_64 {want:?}\naarch64 {got:?}");
    for w in &want {
        let best = got.iter().map(|g| iou(*w, *g)).fold(0.0, f64::max);
        assert!(best > 0.9, "{w:?} found under emulation too (best IoU {best:.3}): {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_from_the_emulated_aarch64_agent_reaches_a_real_center() {
    const AGENT: &str = "arm-village";
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let center_key = common::prepare_keys(dir.path(), AGENT);
    let config = common::center_config(dir.path(), common::embedded_broker());
    let center = start(config, shutdown.clone()).await.expect("center starts");
    let camera = RtspServer::serve_file(&scenario::vtest(), "campus-walkway").expect("RTSP server");
    let mqtt = format!("mqtt://{}", center.mqtt_addr);
    let toml = scenario::agent_toml(AGENT, &camera.url("campus-walkway"), &mqtt, &center_key);
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("agent.log");
    let mut agent = common::Reaper(
        emulated(&aarch64_agent())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    let t0 = Instant::now();
    let alarm = common::wait_for_alarm(center.http_addr, Duration::from_secs(300))
        .await
        .unwrap_or_else(|| panic!("an alarm within 300 s\n{}", common::log_tail(&log)));
    eprintln!("the emulated agent's first alarm after {:.0} s", t0.elapsed().as_secs_f64());
    common::assert_walkway_intrusion(&alarm, AGENT);
    common::assert_snapshot_decodes(center.http_addr, &alarm).await;
    let health = common::next_health(&center.mqtt_addr, AGENT, Duration::from_secs(30)).await;
    eprintln!("its health: {health:?}");
    let cam = &health.cameras[0];
    assert!(cam.online && cam.inference_ms > 0.0, "{health:?}");

    // SIGTERM reaches the program through the emulator, and it stops cleanly.
    // SAFETY: kill has no memory preconditions; the pid is our live child's.
    assert_eq!(unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) }, 0);
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(stopped.elapsed() < Duration::from_secs(60), "{}", common::log_tail(&log));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "{status}\n{}", common::log_tail(&log));
    shutdown.cancel();
    center.join().await;
}
