//! What can go wrong when building or starting the test control plane, each with
//! enough context for a person to act on it.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(thiserror::Error)]
pub enum Error {
    #[error("the test control plane is stopped")]
    Stopped,

    #[error("building the test control plane: {0}")]
    Build(#[from] super::binaries::GoBuildError),

    #[error(
        "no cache directory for the test control plane binaries: set CLOUDKIT_TESTBED_CACHE, XDG_CACHE_HOME or HOME"
    )]
    NoCacheDir,

    #[error(
        "{path}: {source} (the test control plane caches its binaries here; set CLOUDKIT_TESTBED_CACHE to a writable directory)"
    )]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} in the test control plane's data directory {path}: {source}")]
    DataDir {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(#[source] io::Error),

    #[error("generating certificates for the test control plane: {0}")]
    Certificates(#[from] rcgen::Error),

    #[error("starting {name} ({binary}): {source}")]
    Spawn {
        name: &'static str,
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{name} exited during start-up ({status})\n{logs}")]
    Exited {
        name: &'static str,
        status: ExitStatus,
        logs: String,
    },

    #[error(
        "{name} was not ready within {timeout:?} (last answer from {endpoint}: {last_answer})\n{logs}"
    )]
    NotReady {
        name: &'static str,
        endpoint: &'static str,
        timeout: Duration,
        last_answer: String,
        logs: String,
    },

    #[error("kubeconfig for user {user:?}: {message}")]
    Kubeconfig { user: String, message: String },

    #[error("reading CRDs from {path}: {message}")]
    CrdFile { path: PathBuf, message: String },

    #[error("installing CRD {name}: {source}")]
    CrdApply {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("CRD {name} was not Established within {timeout:?}{detail}")]
    CrdNotEstablished {
        name: String,
        timeout: Duration,
        detail: String,
    },

    #[error("Kubernetes API of the test control plane: {0}")]
    Kube(#[from] kube::Error),

    #[error("the shared test control plane failed to start earlier in this test binary: {0}")]
    SharedStartFailed(String),
}

/// Tests end in `.unwrap()`: show the message (with its log lines) as written, not a
/// struct dump with escaped newlines.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\ncaused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
