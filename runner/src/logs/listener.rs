//! A TLS listener for axum that hands over only connections whose client certificate
//! kube-apiserver's front proxy presented: signed by its CA (checked in the handshake)
//! and, when the cluster names them, with an allowed common name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, rustls};

/// A handshake that takes longer is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp`; each handshake runs in a task of its own so a slow peer holds
    /// up no one.
    pub fn start(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        allowed: Vec<String>,
    ) -> Self {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let allowed = Arc::new(allowed);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "logs API: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, allowed, tx) = (acceptor.clone(), allowed.clone(), tx.clone());
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "logs API: refused a TLS connection (no front-proxy client certificate?)");
                            return;
                        }
                        Err(_) => return,
                    };
                    let name = client_name(&tls);
                    if !allowed.is_empty() && !name.as_ref().is_some_and(|n| allowed.contains(n)) {
                        tracing::warn!(%peer, name = ?name, "logs API: refused a client certificate whose name is not in requestheader-allowed-names");
                        return;
                    }
                    let _ = tx.send((tls, peer)).await;
                });
            }
        });
        Self { ready, local }
    }
}

fn client_name(tls: &TlsStream<TcpStream>) -> Option<String> {
    let der = tls.get_ref().1.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
