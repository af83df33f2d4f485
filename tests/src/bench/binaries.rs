//! The binaries under test: `cloudkit-runner` and `kubectl-cloudkit`, built in the
//! release profile for figures (the smoke test takes the debug build, which the other
//! end-to-end tests have built already).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::runner_process::{target_dir, workspace_binary};

/// Which cargo profile the benchmarked binaries come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build --release -p cloudkit-runner -p kubectl-cloudkit`: the figures.
    Release,
    /// The debug build: only for the smoke test, whose figures mean nothing.
    Debug,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Debug => "debug",
        }
    }
}

/// The built binaries and how long the build took.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub profile: Profile,
    pub runner: PathBuf,
    pub plugin: PathBuf,
    /// Put first on `PATH` so that `kubectl cloudkit` finds this build of the plugin.
    pub plugin_dir: PathBuf,
    pub build_time: Duration,
}

impl Binaries {
    /// Builds both binaries (blocking: minutes for a cold release build with LTO).
    pub fn build(profile: Profile) -> anyhow::Result<Self> {
        let started = Instant::now();
        match profile {
            Profile::Release => release_build()?,
            Profile::Debug => {
                workspace_binary("cloudkit-runner", "cloudkit-runner")?;
                workspace_binary("kubectl-cloudkit", "kubectl-cloudkit")?;
            }
        }
        let dir = target_dir().join(profile.name());
        let me = Self {
            profile,
            runner: dir.join("cloudkit-runner"),
            plugin: dir.join("kubectl-cloudkit"),
            plugin_dir: dir,
            build_time: started.elapsed(),
        };
        for bin in [&me.runner, &me.plugin] {
            anyhow::ensure!(bin.is_file(), "{} was not built", bin.display());
        }
        Ok(me)
    }

    pub fn runner_size(&self) -> anyhow::Result<u64> {
        size(&self.runner)
    }

    pub fn plugin_size(&self) -> anyhow::Result<u64> {
        size(&self.plugin)
    }

    /// `cloudkit-runner --version`, e.g. `cloudkit-runner 0.1.0`.
    pub fn runner_version(&self) -> String {
        Command::new(&self.runner)
            .arg("--version")
            .env_clear()
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// The release build of both binaries, the one the figures are for.
fn release_build() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "cloudkit-runner",
            "-p",
            "kubectl-cloudkit",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .with_context(|| format!("running {cargo}"))?;
    anyhow::ensure!(
        status.success(),
        "cargo build --release -p cloudkit-runner -p kubectl-cloudkit failed ({status}); run it to see why"
    );
    Ok(())
}

fn size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len())
}
