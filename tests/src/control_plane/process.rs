//! The server processes: spawned so that they cannot outlive the test process, killed
//! and reaped when dropped, their output kept in a log file for error messages.
//!
//! Each child gets `PR_SET_PDEATHSIG(SIGKILL)`, which covers what `Drop` cannot: a
//! test binary killed by a signal, or the process-wide shared control plane, which
//! lives in a static that is never dropped. The kernel sends that signal when the
//! *thread* that forked the child exits, not the process. Tokio's blocking threads
//! and each `#[tokio::test]` runtime's threads come and go, so every child is forked
//! by one dedicated thread that lives as long as the process.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;

use super::Error;
use super::binaries::last_lines;

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `command` from the long-lived spawner thread.
fn spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("cloudkit-testbed-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawning the cloudkit-testbed-spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Spawns `command` so that it gets SIGKILL when this process dies (see the module
/// comment): for every long-running child of the test bed.
pub(crate) fn spawn_tied(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then no signal comes.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            Ok(())
        });
    }
    spawn(command)
}

/// A running server. Killed (SIGKILL) and reaped on drop.
pub struct ServerProcess {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary args...` with stdout and stderr appended to `log`.
    pub fn start(
        name: &'static str,
        binary: &Path,
        args: &[String],
        log: PathBuf,
    ) -> Result<Self, Error> {
        let spawn_err = |source| Error::Spawn {
            name,
            binary: binary.to_path_buf(),
            source,
        };
        let out = File::create(&log).map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = spawn_tied(command).map_err(spawn_err)?;
        Ok(Self { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL now (and reap), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` lines of the process's output, headed by the log's path.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(log unreadable: {e})"));
        format!(
            "--- {} log, last {n} lines ({}) ---\n{}",
            self.name,
            self.log.display(),
            last_lines(&text, n)
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SIGKILL: the data directory is thrown away, so a clean shutdown buys nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
