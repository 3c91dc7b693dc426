//! Stopping cleanly: Ctrl-C or SIGTERM (systemd's stop, `kill`) cancels a token every task of
//! the process watches.

use tokio_util::sync::CancellationToken;

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A token cancelled at the first Ctrl-C or SIGTERM (call inside a Tokio runtime).
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        cancel.cancel();
    });
    token
}
