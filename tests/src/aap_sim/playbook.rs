//! Real playbooks behind the simulator: a template with a [`PlaybookRun`] runs
//! `ansible-playbook` when its job reaches `running`, with the launch's `extra_vars`; the
//! exit status decides `successful` / `failed`, the output (ANSI codes stripped) is the
//! job's stdout, and a cancel stops the playbook's whole process tree.

use cloudkit_shared::text::strip_ansi;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::jobs::JobStatus;
use super::state::Shared;

/// How a template runs its playbook: `program` (ansible-playbook) with `args`, then
/// `-e @<extra_vars file>`, in `dir`, with `envs` added to the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaybookRun {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub envs: Vec<(String, OsString)>,
    pub dir: PathBuf,
}

impl PlaybookRun {
    pub fn new(program: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: dir.into(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }
}

/// Kills the playbook's process tree when dropped: on cancel, and when the simulator
/// stops with the job still running. A tree, not a process group: ansible-playbook's
/// workers start sessions of their own, and their task processes with them.
struct Tree(Option<i32>);

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(root) = self.0.take() {
            kill_tree(root);
        }
    }
}

/// The processes whose parent chain leads to `root`, read from `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree.remove(0);
    tree
}

/// Stops the whole tree first (so nothing forks meanwhile or is re-parented away by a
/// parent's death), then kills it.
fn kill_tree(root: i32) {
    let signal = |pid: i32, sig: i32| {
        // SAFETY: kill has no memory effects; the pids are the playbook's processes.
        unsafe {
            libc::kill(pid, sig);
        }
    };
    let mut all = vec![root];
    signal(root, libc::SIGSTOP);
    for _ in 0..3 {
        let found: Vec<i32> = descendants(root)
            .into_iter()
            .filter(|p| !all.contains(p))
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in &found {
            signal(*pid, libc::SIGSTOP);
        }
        all.extend(found);
    }
    for pid in all {
        signal(pid, libc::SIGKILL);
    }
}

async fn copy_lines(shared: Arc<Shared>, id: u64, pipe: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = strip_ansi(&line);
        shared.update(|state, _| {
            if let Some(job) = state.jobs.get_mut(&id) {
                job.log(&line);
            }
        });
    }
}

fn fail(shared: &Shared, id: u64, explanation: String) {
    shared.update(|state, now| {
        if let Some(job) = state.jobs.get_mut(&id) {
            job.log(&explanation);
            job.job_explanation = explanation;
        }
        state.set_status(id, JobStatus::Error, now);
    });
}

/// Runs the playbook of running job `id` to its end or until the job is canceled.
pub(crate) async fn run(shared: &Arc<Shared>, id: u64, run: PlaybookRun) {
    let Some(vars) = shared.lock().jobs.get(&id).map(|j| j.extra_vars.clone()) else {
        return;
    };
    let dir = match tempfile::Builder::new().prefix("aap-sim-job-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return fail(
                shared,
                id,
                format!("could not make the job's directory: {e}"),
            );
        }
    };
    let vars_file = dir.path().join("extra_vars.json");
    if let Err(e) = std::fs::write(&vars_file, serde_json::Value::Object(vars).to_string()) {
        return fail(shared, id, format!("{}: {e}", vars_file.display()));
    }
    let mut command = Command::new(&run.program);
    command
        .args(&run.args)
        .arg("-e")
        .arg(format!("@{}", vars_file.display()))
        .current_dir(&run.dir)
        .envs(run.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let message = format!("could not start {}: {e}", run.program.display());
            return fail(shared, id, message);
        }
    };
    let tree = Tree(child.id().and_then(|pid| i32::try_from(pid).ok()));
    let out = child
        .stdout
        .take()
        .map(|p| tokio::spawn(copy_lines(Arc::clone(shared), id, p)));
    let err = child
        .stderr
        .take()
        .map(|p| tokio::spawn(copy_lines(Arc::clone(shared), id, p)));

    let mut changes = shared.changes.subscribe();
    let canceled = loop {
        changes.borrow_and_update();
        let cancel = shared
            .lock()
            .jobs
            .get(&id)
            .is_none_or(|j| j.purged || j.cancel_requested.is_some());
        if cancel {
            break None;
        }
        tokio::select! {
            status = child.wait() => break Some(status),
            changed = changes.changed() => if changed.is_err() { break None },
        }
    };
    let status = match canceled {
        Some(status) => status,
        None => {
            // AWX's cancel stops the playbook; the job turns `canceled` once it is gone.
            // Killed before the child is reaped, so the pid is still the playbook's.
            drop(tree);
            let _ = child.wait().await;
            shared.update(|state, now| state.set_status(id, JobStatus::Canceled, now));
            return;
        }
    };
    // Reaped: the pid may belong to another process now, so nothing is killed.
    let mut tree = tree;
    tree.0 = None;
    // The output is complete before the status says the job is over.
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    shared.update(|state, now| match status {
        Ok(s) if s.success() => state.set_status(id, JobStatus::Successful, now),
        Ok(_) => state.set_status(id, JobStatus::Failed, now),
        Err(e) => {
            if let Some(job) = state.jobs.get_mut(&id) {
                job.job_explanation = format!("waiting for the playbook: {e}");
            }
            state.set_status(id, JobStatus::Error, now);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_colours_and_cursor_moves() {
        assert_eq!(
            cloudkit_shared::text::strip_ansi("\u{1b}[0;32mok: [localhost]\u{1b}[0m\u{1b}[2K"),
            "ok: [localhost]"
        );
        assert_eq!(cloudkit_shared::text::strip_ansi("plain"), "plain");
    }
}
