//! Builds kube-apiserver, kube-controller-manager and etcd from the Go module in
//! `tests/controlplane` once per version and caches them outside the work tree, so
//! `cargo clean` and fresh clones do not pay the multi-minute build again.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::Error;

/// The Kubernetes release the test API server is built from. Must match
/// `tests/controlplane/go.mod` (a unit test checks).
pub const KUBERNETES_VERSION: &str = "v1.37.1";
/// The etcd release, the one `k8s.io/kubernetes` itself requires.
pub const ETCD_VERSION: &str = "v3.7.0";
/// The Go release `tests/controlplane/go.mod` asks for.
pub const MIN_GO: &str = "1.26";

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub etcd: PathBuf,
}

/// The Go module that pins the servers' sources.
pub fn go_module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("controlplane")
}

/// `$CLOUDKIT_TESTBED_CACHE`, else `$XDG_CACHE_HOME/cloudkit-testbed`, else
/// `~/.cache/cloudkit-testbed`; the versioned directory is made inside it.
pub fn cache_root() -> Result<PathBuf, Error> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("CLOUDKIT_TESTBED_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("cloudkit-testbed"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(PathBuf::from(home).join(".cache").join("cloudkit-testbed"));
    }
    Err(Error::NoCacheDir)
}

/// Names the versions and, after them, the set of binaries: a directory built before
/// kube-controller-manager was added (no `-kcm`) is never taken for a complete one.
fn cache_key() -> String {
    format!("k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-kcm")
}

/// Returns the cached binaries, building them first if needed. Blocking: minutes on a
/// cold cache. A file lock makes parallel test binaries build once and wait for it.
pub fn ensure() -> Result<Binaries, Error> {
    let root = cache_root()?;
    let dir = root.join(cache_key());
    let binaries = Binaries {
        kube_apiserver: dir.join("kube-apiserver"),
        kube_controller_manager: dir.join("kube-controller-manager"),
        etcd: dir.join("etcd"),
    };
    build_once(
        &root,
        &cache_key(),
        || binaries.present(),
        || build(&dir),
        |path, source| Error::Cache { path, source },
    )?;
    Ok(binaries)
}

/// Runs `build` into `ROOT/KEY/` once across processes: not at all when `present()`,
/// otherwise under the file lock `ROOT/KEY.lock`, so parallel test binaries build once.
pub fn build_once<E>(
    root: &Path,
    key: &str,
    present: impl Fn() -> bool,
    build: impl FnOnce() -> Result<(), E>,
    cache_err: impl Fn(PathBuf, io::Error) -> E,
) -> Result<(), E> {
    if present() {
        return Ok(());
    }
    let dir = root.join(key);
    fs::create_dir_all(&dir).map_err(|e| cache_err(dir.clone(), e))?;
    let lock_path = root.join(format!("{key}.lock"));
    let lock = File::create(&lock_path).map_err(|e| cache_err(lock_path.clone(), e))?;
    lock.lock().map_err(|e| cache_err(lock_path.clone(), e))?;
    // Another process may have finished the build while this one waited.
    if present() {
        return Ok(());
    }
    build()
    // `lock` is released when dropped here.
}

impl Binaries {
    fn present(&self) -> bool {
        [
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.etcd,
        ]
        .iter()
        .all(|path| path.is_file())
    }
}

fn build(dir: &Path) -> Result<(), Error> {
    let what = format!(
        "kube-apiserver and kube-controller-manager {KUBERNETES_VERSION}, etcd {ETCD_VERSION}"
    );
    GoBuild {
        what: &what,
        how_long: "a few minutes",
        module: go_module_dir(),
        min_go: MIN_GO,
        ldflags: version_ldflags(),
        packages: &[
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "./cmd/etcd",
        ],
        outputs: &[
            ("etcd", "etcd"),
            ("kube-apiserver", "kube-apiserver"),
            ("kube-controller-manager", "kube-controller-manager"),
        ],
    }
    .run(dir)?;
    Ok(())
}

/// Why `go build` of a pinned module failed.
#[derive(Debug, thiserror::Error)]
pub enum GoBuildError {
    #[error("go not found on PATH: install Go {0}")]
    GoNotFound(&'static str),
    #[error("could not run `{command}`: {source}")]
    Run {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` in {dir} exited with {status}; last lines of its output:\n{output}")]
    Failed {
        command: String,
        dir: PathBuf,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error(
        "{path}: {source} (builds are cached here; set CLOUDKIT_TESTBED_CACHE to a writable directory)"
    )]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A static `go build` of pinned packages of the Go module `module` (the control plane's,
/// krew's) into a cache directory.
pub struct GoBuild<'a> {
    /// What is built, for the two progress lines.
    pub what: &'a str,
    pub how_long: &'a str,
    pub module: PathBuf,
    pub min_go: &'static str,
    /// `-X` stamps, as the projects' own release builds set them.
    pub ldflags: String,
    pub packages: &'a [&'a str],
    /// (file `go build` writes, its name in the cache directory).
    pub outputs: &'a [(&'a str, &'a str)],
}

impl GoBuild<'_> {
    pub fn run(&self, dir: &Path) -> Result<(), GoBuildError> {
        check_go(self.min_go)?;
        // Visible even when the test harness captures output: it goes straight to fd 2.
        let _ = writeln!(
            io::stderr(),
            "building {} (first run only, {})...",
            self.what,
            self.how_long
        );
        let started = Instant::now();
        let cache = |path: &Path| {
            let path = path.to_path_buf();
            move |source| GoBuildError::Cache { path, source }
        };
        // Build into a private directory, then rename: a binary at its final path is
        // always complete, even if this process is killed mid-build.
        let staging = dir.join(format!(".build-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(cache(&staging))?;
        let mut args = vec![
            "build".to_string(),
            "-trimpath".to_string(),
            format!("-ldflags=-s -w {}", self.ldflags),
            "-o".to_string(),
            format!("{}/", staging.display()),
        ];
        args.extend(self.packages.iter().map(|p| p.to_string()));
        let command_line = format!("CGO_ENABLED=0 go {}", shell_words(&args));
        let output = Command::new("go")
            .args(&args)
            .current_dir(&self.module)
            .env("CGO_ENABLED", "0")
            // The module pins its own versions; a go.work elsewhere must not change them.
            .env("GOWORK", "off")
            // Never fetch a Go toolchain binary; fail clearly if the local Go is too old.
            .env("GOTOOLCHAIN", "local")
            .output()
            .map_err(|source| GoBuildError::Run {
                command: command_line.clone(),
                source,
            })?;
        if !output.status.success() {
            let _ = fs::remove_dir_all(&staging);
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(GoBuildError::Failed {
                command: command_line,
                dir: self.module.clone(),
                status: output.status,
                output: last_lines(&text, 50),
            });
        }
        for (built, name) in self.outputs {
            let to = dir.join(name);
            fs::rename(staging.join(built), &to).map_err(cache(&to))?;
        }
        let _ = fs::remove_dir_all(&staging);
        let _ = writeln!(
            io::stderr(),
            "built {} in {:.0?} into {}",
            self.what,
            started.elapsed(),
            dir.display()
        );
        Ok(())
    }
}

/// What Kubernetes' own release build stamps into its binaries: without it the API
/// server reports version v0.0.0-master on /version, and kubectl warns about skew.
fn version_ldflags() -> String {
    let release = KUBERNETES_VERSION.trim_start_matches('v');
    let mut parts = release.split('.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next().unwrap_or_default();
    [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ]
    .iter()
    .flat_map(|pkg| {
        [
            format!("-X {pkg}.gitVersion={KUBERNETES_VERSION}"),
            format!("-X {pkg}.gitMajor={major}"),
            format!("-X {pkg}.gitMinor={minor}"),
            format!("-X {pkg}.gitTreeState=clean"),
        ]
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// The command line as a person would paste it into a shell.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_go(min_go: &'static str) -> Result<(), GoBuildError> {
    let command = "go version".to_string();
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(GoBuildError::Run {
            command,
            source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(GoBuildError::GoNotFound(min_go)),
        Err(source) => Err(GoBuildError::Run { command, source }),
    }
}

/// The last `n` lines of `text`, for error messages that must stay readable.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is keyed by these constants, so they must name what go.mod builds.
    #[test]
    fn versions_match_go_mod() {
        let go_mod = fs::read_to_string(go_module_dir().join("go.mod")).unwrap();
        assert!(go_mod.contains(&format!("k8s.io/kubernetes {KUBERNETES_VERSION}\n")));
        assert!(go_mod.contains(&format!("go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n")));
        let staging = KUBERNETES_VERSION.replacen("v1.", "v0.", 1);
        assert!(go_mod.contains(&format!("k8s.io/apiserver => k8s.io/apiserver {staging}\n")));
        assert!(go_mod.contains(&format!("\ngo {MIN_GO}.")));
    }

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
