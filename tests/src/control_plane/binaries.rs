//! Builds kube-apiserver and etcd from the Go module in `tests/controlplane` once per
//! version and caches them outside the work tree, so `cargo clean` and fresh clones
//! do not pay the multi-minute build again.

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

/// Paths of the two built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

/// The Go module that pins both servers' sources.
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

fn cache_key() -> String {
    format!("k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}")
}

/// Returns the cached binaries, building them first if needed. Blocking: minutes on a
/// cold cache. A file lock makes parallel test binaries build once and wait for it.
pub fn ensure() -> Result<Binaries, Error> {
    let root = cache_root()?;
    let dir = root.join(cache_key());
    let binaries = Binaries {
        kube_apiserver: dir.join("kube-apiserver"),
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
        self.kube_apiserver.is_file() && self.etcd.is_file()
    }
}

fn build(dir: &Path) -> Result<(), Error> {
    let module = go_module_dir();
    check_go()?;

    // Visible even when the test harness captures output: it goes straight to fd 2.
    let _ = writeln!(
        io::stderr(),
        "building kube-apiserver and etcd (first run only, a few minutes)..."
    );
    let started = Instant::now();

    // Build into a private directory, then rename: a binary at its final path is
    // always complete, even if this process is killed mid-build.
    let staging = dir.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|source| Error::Cache {
        path: staging.clone(),
        source,
    })?;
    let args = [
        "build".to_string(),
        "-trimpath".to_string(),
        format!("-ldflags=-s -w {}", version_ldflags()),
        "-o".to_string(),
        format!("{}/", staging.display()),
        "k8s.io/kubernetes/cmd/kube-apiserver".to_string(),
        "./cmd/etcd".to_string(),
    ];
    let command_line = format!("CGO_ENABLED=0 go {}", shell_words(&args));
    let output = Command::new("go")
        .args(args)
        .current_dir(&module)
        .env("CGO_ENABLED", "0")
        // The module pins its own versions; a go.work elsewhere must not change them.
        .env("GOWORK", "off")
        // Never fetch a Go toolchain binary; fail clearly if the local Go is too old.
        .env("GOTOOLCHAIN", "local")
        .output()
        .map_err(|source| Error::Run {
            command: command_line.clone(),
            source,
        })?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        return Err(Error::GoBuild {
            command: command_line,
            dir: module,
            status: output.status,
            output: last_lines(&text, 50),
        });
    }
    for name in ["etcd", "kube-apiserver"] {
        let to = dir.join(name);
        fs::rename(staging.join(name), &to).map_err(|source| Error::Cache { path: to, source })?;
    }
    let _ = fs::remove_dir_all(&staging);
    let _ = writeln!(
        io::stderr(),
        "built kube-apiserver {KUBERNETES_VERSION} and etcd {ETCD_VERSION} in {:.0?} into {}",
        started.elapsed(),
        dir.display()
    );
    Ok(())
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

fn check_go() -> Result<(), Error> {
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::Run {
            command: "go version".into(),
            source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::GoNotFound { min_go: MIN_GO }),
        Err(source) => Err(Error::Run {
            command: "go version".into(),
            source,
        }),
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
