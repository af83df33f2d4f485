//! krew — the kubectl plugin manager — and krew's own manifest validator
//! (`validate-krew-manifest`, what krew-index runs on every plugin manifest), built from
//! the Go module in `tests/krew` once per version and cached outside the work tree, the
//! same way the test control plane is. Tests use them to validate
//! `manifests/krew/cloudkit.yaml` and to install the release archive the way a user does.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The krew release built. Must match `tests/krew/go.mod` (a unit test checks).
pub const KREW_VERSION: &str = "v0.4.4";
/// The commit of the `v0.4.4` tag, as the Go module proxy reports it (`.info`);
/// stamped into `kubectl krew version` like krew's own release build does.
pub const KREW_COMMIT: &str = "343e657d45564940387fe028bb3310a6eaf147d3";
/// The Go release `tests/krew/go.mod` asks for.
pub const MIN_GO: &str = "1.26";

/// Why krew could not be built.
#[derive(thiserror::Error)]
pub enum KrewError {
    #[error("go not found on PATH: install Go {MIN_GO} to build krew for the krew tests")]
    GoNotFound,
    #[error("could not run `{command}`: {source}")]
    Run {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "building krew failed: `{command}` in {dir} exited with {status}; last lines of its output:\n{output}"
    )]
    GoBuild {
        command: String,
        dir: PathBuf,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error(
        "no cache directory for krew: set CLOUDKIT_TESTBED_CACHE, XDG_CACHE_HOME or HOME ({0})"
    )]
    NoCacheDir(String),
    #[error(
        "{path}: {source} (krew is cached here; set CLOUDKIT_TESTBED_CACHE to a writable directory)"
    )]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl std::fmt::Debug for KrewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\ncaused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The built binaries. `dir` holds `kubectl-krew` (krew under the name kubectl looks
/// for, so `kubectl krew …` works with `dir` on `PATH`) and `validate-krew-manifest`.
#[derive(Debug, Clone)]
pub struct Krew {
    pub dir: PathBuf,
    pub kubectl_krew: PathBuf,
    pub validate_krew_manifest: PathBuf,
}

/// The Go module that pins krew's sources.
pub fn go_module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("krew")
}

fn cache_key() -> String {
    format!("krew-{KREW_VERSION}")
}

/// Returns the cached binaries, building them first if needed (about a minute on a
/// cold Go build cache). A file lock makes parallel test binaries build once.
pub fn ensure() -> Result<Krew, KrewError> {
    let root =
        crate::control_plane::cache_root().map_err(|e| KrewError::NoCacheDir(e.to_string()))?;
    let dir = root.join(cache_key());
    let krew = Krew {
        kubectl_krew: dir.join("kubectl-krew"),
        validate_krew_manifest: dir.join("validate-krew-manifest"),
        dir: dir.clone(),
    };
    crate::control_plane::build_once(
        &root,
        &cache_key(),
        || krew.present(),
        || build(&dir),
        |path, source| KrewError::Cache { path, source },
    )?;
    Ok(krew)
}

impl Krew {
    fn present(&self) -> bool {
        self.kubectl_krew.is_file() && self.validate_krew_manifest.is_file()
    }

    /// `validate-krew-manifest -manifest PATH`, krew's own checks: the file is named
    /// after the plugin, the structure is valid, every platform selector matches a
    /// platform krew supports and no two overlap. With `install`, it also runs
    /// `kubectl krew install --manifest PATH` for every platform (downloading each
    /// `uri`) and checks a LICENSE file was extracted; `kubectl-krew` and `kubectl` must
    /// then be on `path`.
    pub fn validate_command(&self, manifest: &Path, install: bool, path: &OsString) -> Command {
        let mut command = Command::new(&self.validate_krew_manifest);
        command.arg("-manifest").arg(manifest);
        if !install {
            command.arg("-skip-install");
        }
        command.env("PATH", path).env("KREW_NO_UPGRADE_CHECK", "1");
        command
    }
}

fn build(dir: &Path) -> Result<(), KrewError> {
    let module = go_module_dir();
    check_go()?;
    // Visible even when the test harness captures output: it goes straight to fd 2.
    let _ = writeln!(
        io::stderr(),
        "building krew {KREW_VERSION} and validate-krew-manifest (first run only, about a minute)..."
    );
    let started = Instant::now();

    // Build into a private directory, then rename: a binary at its final path is
    // always complete, even if this process is killed mid-build.
    let staging = dir.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|source| KrewError::Cache {
        path: staging.clone(),
        source,
    })?;
    let args = [
        "build".to_string(),
        "-trimpath".to_string(),
        format!(
            "-ldflags=-s -w -X sigs.k8s.io/krew/internal/version.gitTag={KREW_VERSION} -X sigs.k8s.io/krew/internal/version.gitCommit={KREW_COMMIT}"
        ),
        "-o".to_string(),
        format!("{}/", staging.display()),
        "sigs.k8s.io/krew/cmd/krew".to_string(),
        "sigs.k8s.io/krew/cmd/validate-krew-manifest".to_string(),
    ];
    let command_line = format!(
        "CGO_ENABLED=0 go {}",
        args.iter()
            .map(|a| if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = Command::new("go")
        .args(&args)
        .current_dir(&module)
        .env("CGO_ENABLED", "0")
        // The module pins its own versions; a go.work elsewhere must not change them.
        .env("GOWORK", "off")
        // Never fetch a Go toolchain binary; fail clearly if the local Go is too old.
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|source| KrewError::Run {
            command: command_line.clone(),
            source,
        })?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = text.lines().collect();
        return Err(KrewError::GoBuild {
            command: command_line,
            dir: module,
            status: output.status,
            output: lines[lines.len().saturating_sub(50)..].join("\n"),
        });
    }
    for (built, name) in [
        ("krew", "kubectl-krew"),
        ("validate-krew-manifest", "validate-krew-manifest"),
    ] {
        let to = dir.join(name);
        fs::rename(staging.join(built), &to)
            .map_err(|source| KrewError::Cache { path: to, source })?;
    }
    let _ = fs::remove_dir_all(&staging);
    let _ = writeln!(
        io::stderr(),
        "built krew {KREW_VERSION} in {:.0?} into {}",
        started.elapsed(),
        dir.display()
    );
    Ok(())
}

fn check_go() -> Result<(), KrewError> {
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(KrewError::Run {
            command: "go version".into(),
            source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(KrewError::GoNotFound),
        Err(source) => Err(KrewError::Run {
            command: "go version".into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is keyed by these constants, so they must name what go.mod builds.
    #[test]
    fn versions_match_go_mod() {
        let go_mod = fs::read_to_string(go_module_dir().join("go.mod")).unwrap();
        assert!(go_mod.contains(&format!("\nrequire sigs.k8s.io/krew {KREW_VERSION}\n")));
        assert!(go_mod.contains(&format!("\ngo {MIN_GO}.")));
        let go_sum = fs::read_to_string(go_module_dir().join("go.sum")).unwrap();
        assert!(go_sum.contains(&format!("sigs.k8s.io/krew {KREW_VERSION} h1:")));
    }
}
