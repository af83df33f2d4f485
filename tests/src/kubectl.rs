//! The real `kubectl` with the plugin built from this workspace first on its PATH, as a
//! person runs `kubectl cloudkit ...`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::runner_process::{target_dir, workspace_binary};

/// Longest a single kubectl call may take before the test fails.
pub const KUBECTL_RUN: Duration = Duration::from_secs(60);

/// `$KUBECTL`, else the first `kubectl` on PATH.
pub fn kubectl_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|p| p.is_file())
        .context("no kubectl on PATH: install kubectl or set KUBECTL to its path")
}

/// A directory holding only the two plugin binaries (built once per test binary).
pub fn plugin_dir() -> anyhow::Result<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| link_plugin().map_err(|e| format!("{e:#}")));
    match dir {
        Ok(dir) => Ok(dir),
        Err(e) => bail!("{e}"),
    }
}

fn link_plugin() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("kubectl-plugin-path");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    for bin in ["kubectl-cloudkit", "kubectl_complete-cloudkit"] {
        let built = workspace_binary("kubectl-cloudkit", bin)?;
        // Other test binaries link the same names at the same time: a rename replaces
        // the link in one step, so none of them sees it missing.
        let staged = dir.join(format!(".{bin}.{}", std::process::id()));
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&built, &staged)
            .with_context(|| format!("link {}", staged.display()))?;
        std::fs::rename(&staged, dir.join(bin))
            .with_context(|| format!("place {bin} in {}", dir.display()))?;
    }
    Ok(dir)
}

/// What a kubectl call printed and how it ended.
#[derive(Debug)]
pub struct KubectlRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl ARGS` with `kubeconfig`, the plugin first on PATH and no colours, its output
/// piped: for a caller that reads it as it comes (e.g. `--follow`).
pub fn command(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<tokio::process::Command> {
    let path = format!(
        "{}:{}",
        plugin_dir()?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new(kubectl_path()?);
    cmd.args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

/// [`command`], run to its end.
pub async fn run(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<KubectlRun> {
    let child = command(kubeconfig, args)?
        .spawn()
        .context("start kubectl")?;
    finish(child)
        .await
        .with_context(|| format!("kubectl {}", args.join(" ")))
}

/// Waits, for at most [`KUBECTL_RUN`], for a kubectl started from [`command`] to end and
/// collects what it printed.
pub async fn finish(child: tokio::process::Child) -> anyhow::Result<KubectlRun> {
    let output = tokio::time::timeout(KUBECTL_RUN, child.wait_with_output())
        .await
        .with_context(|| format!("kubectl did not finish in {KUBECTL_RUN:?}"))?
        .context("wait for kubectl")?;
    Ok(KubectlRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Like [`run`], failing unless kubectl exits 0.
pub async fn ok(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = run(kubeconfig, args).await?;
    if out.code != 0 {
        bail!(
            "kubectl {} exited {}: {}",
            args.join(" "),
            out.code,
            out.stderr.trim()
        );
    }
    Ok(out.stdout)
}
