//! The real `cloudkit-runner` binary as a child process: started, SIGKILLed and started
//! again by end-to-end tests and by `testbed up`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why the runner could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "building cloudkit-runner failed (cargo exit {status}): run `cargo build -p cloudkit-runner` to see why"
    )]
    Build { status: String },
    #[error("cannot run cargo to build cloudkit-runner: {0}")]
    Cargo(std::io::Error),
    #[error("cannot start {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the runner's log file: {0}")]
    Log(std::io::Error),
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Builds a workspace binary once per process (debug profile) and returns its path.
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf, RunnerError> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-q", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(RunnerError::Cargo)?;
    if !status.success() {
        return Err(RunnerError::Build {
            status: status.to_string(),
        });
    }
    Ok(target_dir().join("debug").join(bin))
}

/// Path of the `cloudkit-runner` binary, built on first use.
pub fn runner_binary() -> Result<PathBuf, RunnerError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_binary("cloudkit-runner", "cloudkit-runner").map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|status| RunnerError::Build { status })
}

/// A running `cloudkit-runner`; killed on drop.
pub struct RunnerProcess {
    child: Option<Child>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    starts: u32,
}

impl RunnerProcess {
    /// Starts the runner with `KUBECONFIG` and the given `CLOUDKIT_*` environment.
    pub fn start(
        kubeconfig: &Path,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Result<Self, RunnerError> {
        let mut env = env;
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        let mut me = Self {
            child: None,
            binary: runner_binary()?,
            env,
            log,
            starts: 0,
        };
        me.spawn()?;
        Ok(me)
    }

    fn spawn(&mut self) -> Result<(), RunnerError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(RunnerError::Log)?;
        let err = log.try_clone().map_err(RunnerError::Log)?;
        let mut cmd = Command::new(&self.binary);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd.spawn().map_err(|source| RunnerError::Spawn {
            path: self.binary.clone(),
            source,
        })?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL: no chance to clean up, as when a node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit (or SIGKILL after `grace`).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Starts it again with the same configuration.
    pub fn restart(&mut self) -> Result<(), RunnerError> {
        self.kill();
        self.spawn()
    }

    /// Changes one environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Everything the runner logged so far (all starts).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the log (of any start) holds `needle`; after `timeout`, fails with
    /// the log.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.logs().contains(needle) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no {needle:?} in the runner's log within {timeout:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The line the runner logs once its health and metrics server listens.
pub const METRICS_LISTENING: &str = "health and metrics server listening";

/// The address the runner's last start serves `/healthz`, `/readyz` and `/metrics` on,
/// from its JSON log (`logs` may hold several starts).
pub fn metrics_addr(logs: &str) -> Option<String> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == METRICS_LISTENING)
        .filter_map(|v| v["fields"]["addr"].as_str().map(String::from))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_is_the_last_starts_from_the_json_log() {
        let line = |port: u16| {
            format!(
                "{{\"level\":\"INFO\",\"fields\":{{\"message\":\"{METRICS_LISTENING}\",\"addr\":\"127.0.0.1:{port}\"}}}}\n"
            )
        };
        assert_eq!(metrics_addr(&line(4321)).as_deref(), Some("127.0.0.1:4321"));
        let restarted = format!("{}not json\n{}", line(4321), line(4322));
        assert_eq!(metrics_addr(&restarted).as_deref(), Some("127.0.0.1:4322"));
        assert_eq!(metrics_addr("not json\n"), None);
    }
}
