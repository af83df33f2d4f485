//! The HTTP side the AAP and EDA simulators share: a router served on a free loopback port.

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// Serves `app` on `127.0.0.1:<free port>` until `stopped` resolves.
pub async fn serve(
    app: axum::Router,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        // axum runs each connection in a task of its own: a graceful shutdown, not an
        // abort, is what also closes idle keep-alive connections, so a client sees
        // "connection refused" once the simulator is stopped.
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    });
    Ok((addr, server))
}
