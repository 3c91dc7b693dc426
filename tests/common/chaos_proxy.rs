//! TCP proxies that behave like a bad village link: one cuts every connection or stalls all
//! traffic at random moments, then calms down and forwards faithfully; one is cut and restored
//! when the test says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy did while it misbehaved.
#[derive(Debug, Default)]
pub struct Mischief {
    /// Times every open connection was cut.
    pub cuts: AtomicU64,
    /// Times all traffic stalled.
    pub stalls: AtomicU64,
}

/// A running proxy to a loopback port.
pub struct ChaosProxy {
    /// Where clients connect.
    pub port: u16,
    /// What it did.
    pub mischief: Arc<Mischief>,
    /// When it calmed down (set once the chaos is over).
    pub calm: watch::Receiver<Option<Instant>>,
}

impl ChaosProxy {
    /// Forwards loopback `port` → `upstream`, misbehaving for `chaos` with random choices from
    /// `seed` (printed, so a failing run can be repeated).
    pub async fn start(upstream: u16, chaos: Duration, seed: u64) -> Self {
        eprintln!("chaos proxy: seed {seed}");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let stalled = Arc::new(AtomicBool::new(false));
        let mischief = Arc::new(Mischief::default());
        let (calm_tx, calm) = watch::channel(None);
        {
            let (stalled, mischief) = (stalled.clone(), mischief.clone());
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(seed);
                let start = Instant::now();
                while start.elapsed() < chaos {
                    tokio::time::sleep(Duration::from_millis(rng.u64(300..2000))).await;
                    if rng.bool() {
                        mischief.cuts.fetch_add(1, Ordering::Relaxed);
                        cut_tx.send_modify(|n| *n += 1);
                    } else {
                        mischief.stalls.fetch_add(1, Ordering::Relaxed);
                        stalled.store(true, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(rng.u64(500..4000))).await;
                        stalled.store(false, Ordering::Relaxed);
                    }
                }
                let _ = calm_tx.send(Some(Instant::now()));
            });
        }
        tokio::spawn(forward(listener, upstream, cut_rx, stalled, Arc::default()));
        Self { port, mischief, calm }
    }
}

/// A proxy to a loopback port whose link the test cuts and restores: while cut, the open
/// connections are dropped and new ones closed at once, as when a county's line goes down.
pub struct CutProxy {
    /// Where clients connect.
    pub port: u16,
    cut: watch::Sender<u64>,
    down: Arc<AtomicBool>,
}

impl CutProxy {
    /// Forwards loopback `port` → `upstream` until cut.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(0u64);
        let down = Arc::new(AtomicBool::new(false));
        tokio::spawn(forward(listener, upstream, cut_rx, Arc::default(), down.clone()));
        Self { port, cut, down }
    }

    /// Cuts the link until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::Relaxed);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::Relaxed);
    }
}

/// Accepts on `listener` and relays each connection to loopback `upstream` until `cut`
/// changes, holding data back while `stalled`; while `down`, closes new connections at once.
async fn forward(
    listener: TcpListener,
    upstream: u16,
    cut_rx: watch::Receiver<u64>,
    stalled: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
) {
    while let Ok((client, _)) = listener.accept().await {
        if down.load(Ordering::Relaxed) {
            continue;
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
            continue;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        for (r, w) in [
            (
                Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
            ),
            (Box::new(sr), Box::new(cw)),
        ] {
            let mut cut = cut_rx.clone();
            cut.mark_unchanged();
            let stalled = stalled.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cut.changed() => {}
                    _ = pump(r, w, stalled) => {}
                }
            });
        }
    }
}

/// Copies `r` to `w`, holding data back while `stalled`.
async fn pump(
    mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    mut w: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
