//! What the AAP and EDA simulators share: a router served on a free loopback port, the
//! stop signal its server and its background tasks (job drivers, playbook runs) wait on,
//! the stop a test or a drop makes, and Django's slash redirect.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// The stop signal and the background tasks of one simulator.
pub(crate) struct Lifecycle {
    stopped: watch::Sender<bool>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            stopped: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a background task, so stopping the simulator aborts it.
    pub(crate) fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Resolves once the simulator stops.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Signals the stop (the server ends, held answers are cut short) and aborts every
    /// background task where it is.
    pub(crate) fn stop(&self) {
        self.stopped.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

/// A simulator's server on `127.0.0.1:<free port>`.
pub(crate) struct Server {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `app` until `stopped` resolves (give it [`Lifecycle::stopped`]).
    pub(crate) async fn start(
        app: axum::Router,
        stopped: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // axum runs each connection in a task of its own: a graceful shutdown, not an
            // abort, is what also closes idle keep-alive connections, so a client sees
            // "connection refused" once the simulator is stopped.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(Self {
            addr,
            task: Some(task),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops `life` and waits, up to 5 s, until the port is closed and its connections
    /// are gone.
    pub(crate) async fn stop(&mut self, life: &Lifecycle) {
        life.stop();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Re-evaluates `check` after every change `changes` announces until it gives a value;
/// `None` after `timeout`.
pub(crate) async fn wait_until<T>(
    changes: &watch::Sender<u64>,
    timeout: Duration,
    check: impl Fn() -> Option<T>,
) -> Option<T> {
    let mut changes = changes.subscribe();
    let wait = async {
        loop {
            changes.borrow_and_update();
            if let Some(value) = check() {
                return Some(value);
            }
            if changes.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.ok().flatten()
}

/// Django's APPEND_SLASH redirect: permanent, empty body. A client that follows it sends
/// a GET, or a POST without its body.
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
