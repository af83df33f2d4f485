//! The real Event-Driven Ansible engine for tests and `testbed up --eda`: `ansible-rulebook`
//! from the pinned environment ([`crate::ansible_env`]) running the reference rulebook in
//! `ansible/rulebooks/`, its webhook source on a free loopback port, its playbooks acting
//! on the test bed's API server through `K8S_AUTH_KUBECONFIG`.
//!
//! The process leads a process group of its own (ansible-runner starts ansible-playbook
//! under it); dropping a [`Rulebook`] kills the whole group.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ansible_env::{self, AnsibleEnv, AnsibleEnvError};
use crate::control_plane::{last_lines, spawn_tied};

/// The JVM and the rule engine take a few seconds; two busy cores make it more.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const LOG_LINES: usize = 40;

/// How the webhook source authenticates cloudkit's requests.
#[derive(Clone, Debug)]
pub enum WebhookAuth {
    /// `Authorization: Bearer <token>` (`rulebooks/cloudkit-webhook.yml`).
    Token(String),
    /// HMAC-SHA256 of the body in `X-Hub-Signature-256`, `sha256=` + hex
    /// (`rulebooks/cloudkit-webhook-hmac.yml`).
    Hmac(String),
}

impl WebhookAuth {
    fn rulebook(&self) -> &'static str {
        match self {
            Self::Token(_) => "rulebooks/cloudkit-webhook.yml",
            Self::Hmac(_) => "rulebooks/cloudkit-webhook-hmac.yml",
        }
    }

    /// The runner settings that make its requests pass this check.
    pub fn runner_env(&self) -> (String, String) {
        match self {
            Self::Token(t) => ("CLOUDKIT_EDA_TOKEN".into(), t.clone()),
            Self::Hmac(s) => ("CLOUDKIT_EDA_HMAC_SECRET".into(), s.clone()),
        }
    }
}

/// Why the rulebook could not be started.
#[derive(thiserror::Error)]
pub enum RulebookError {
    #[error(transparent)]
    Env(#[from] AnsibleEnvError),
    #[error("no free port on 127.0.0.1 for the rulebook's webhook: {0}")]
    NoFreePort(#[source] io::Error),
    #[error("preparing ansible-rulebook's files in {path}: {source}")]
    Files {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ansible-rulebook exited during start-up ({status})\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("ansible-rulebook's webhook did not answer on port {port} within {timeout:?}\n{log}")]
    NotReady {
        port: u16,
        timeout: Duration,
        log: String,
    },
}

impl std::fmt::Debug for RulebookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The reference playbooks and rulebooks (`ansible/` at the repository root).
pub fn ansible_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ansible")
}

/// A running `ansible-rulebook`. Its process group is killed on drop.
pub struct Rulebook {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Vars file, ANSIBLE_HOME and the log.
    _dir: TempDir,
}

impl Rulebook {
    /// Starts the reference rulebook with `auth`, its playbooks using `kubeconfig`, and
    /// waits until its webhook answers. The first call may install the Ansible
    /// environment (minutes).
    pub async fn start(kubeconfig: &Path, auth: WebhookAuth) -> Result<Self, RulebookError> {
        let env = tokio::task::spawn_blocking(ansible_env::ensure)
            .await
            .expect("the Ansible environment task panicked")?;
        ansible_env::require_java()?;
        let dir = tempfile::Builder::new()
            .prefix("cloudkit-rulebook-")
            .tempdir()
            .map_err(|source| RulebookError::Files {
                path: std::env::temp_dir(),
                source,
            })?;
        let port = free_port()?;
        let mut rulebook = Self::spawn(&env, kubeconfig, &auth, port, dir)?;
        rulebook.wait_ready().await?;
        Ok(rulebook)
    }

    fn spawn(
        env: &AnsibleEnv,
        kubeconfig: &Path,
        auth: &WebhookAuth,
        port: u16,
        dir: TempDir,
    ) -> Result<Self, RulebookError> {
        let files = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RulebookError::Files { path, source }
        };
        let (key, secret) = match auth {
            WebhookAuth::Token(t) => ("webhook_token", t),
            WebhookAuth::Hmac(s) => ("webhook_hmac_secret", s),
        };
        let vars = serde_json::json!({
            "webhook_host": "127.0.0.1",
            "webhook_port": port,
            key: secret,
        });
        let vars_file = dir.path().join("vars.yml");
        // JSON is YAML: the vars file needs no YAML writer.
        std::fs::write(&vars_file, vars.to_string()).map_err(files(&vars_file))?;
        let home = dir.path().join("ansible-home");
        std::fs::create_dir_all(&home).map_err(files(&home))?;
        let log = dir.path().join("ansible-rulebook.log");
        let out = File::create(&log).map_err(files(&log))?;
        let err = out.try_clone().map_err(files(&log))?;

        let mut command = Command::new(&env.ansible_rulebook);
        command
            .args([
                "--rulebook",
                auth.rulebook(),
                "--inventory",
                "inventory.yml",
            ])
            .arg("--vars")
            .arg(&vars_file)
            // Info-level lines: each event, each action and a failed playbook's output.
            .arg("-v")
            // run_playbook finds playbooks relative to the working directory.
            .current_dir(ansible_dir())
            .envs(env.envs(&home))
            .env("K8S_AUTH_KUBECONFIG", kubeconfig)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own group, so Drop reaches ansible-runner's ansible-playbook too.
            .process_group(0);
        let child = spawn_tied(command).map_err(|source| RulebookError::Spawn {
            program: env.ansible_rulebook.clone(),
            source,
        })?;
        Ok(Self {
            child,
            port,
            log,
            _dir: dir,
        })
    }

    async fn wait_ready(&mut self) -> Result<(), RulebookError> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.exited() {
                return Err(RulebookError::Exited {
                    status,
                    log: self.log_tail(LOG_LINES),
                });
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(RulebookError::NotReady {
                    port: self.port,
                    timeout: READY_TIMEOUT,
                    log: self.log_tail(LOG_LINES),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `http://127.0.0.1:PORT/<endpoint>`.
    pub fn url(&self, endpoint: &str) -> String {
        format!("http://127.0.0.1:{}/{endpoint}", self.port)
    }

    /// Where the runner posts provision events (`event.meta.endpoint == "provision"`).
    pub fn provision_url(&self) -> String {
        self.url("provision")
    }

    pub fn deprovision_url(&self) -> String {
        self.url("deprovision")
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything ansible-rulebook and its playbooks printed so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(log {} unreadable: {e})", self.log.display()))
    }

    /// The last `n` lines of [`Rulebook::log`], headed by the log's path.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- ansible-rulebook log, last {n} lines ({}) ---\n{}",
            self.log.display(),
            last_lines(&self.log(), n)
        )
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL to the whole process group (the engine and any playbook it runs), and reap.
    pub fn kill(&mut self) {
        // The group id is the child's pid (process_group(0)). Signalled even when the
        // leader is gone: a playbook it started may still run. A group id is not reused
        // while any member lives.
        // SAFETY: kill(2) with a negative pid signals that group; no memory is touched.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Rulebook {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> Result<u16, RulebookError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(RulebookError::NoFreePort)
}
