//! krew — the kubectl plugin manager — and krew's own manifest validator
//! (`validate-krew-manifest`, what krew-index runs on every plugin manifest), built from
//! the Go module in `tests/krew` once per version and cached outside the work tree, the
//! same way the test control plane is. Tests use them to validate
//! `manifests/krew/cloudkit.yaml` and to install the release archive the way a user does.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::control_plane::GoBuild;

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
    #[error("building krew for the krew tests: {0}")]
    Build(#[from] crate::control_plane::GoBuildError),
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
    GoBuild {
        what: &format!("krew {KREW_VERSION} and validate-krew-manifest"),
        how_long: "about a minute",
        module: go_module_dir(),
        min_go: MIN_GO,
        ldflags: format!(
            "-X sigs.k8s.io/krew/internal/version.gitTag={KREW_VERSION} -X sigs.k8s.io/krew/internal/version.gitCommit={KREW_COMMIT}"
        ),
        packages: &[
            "sigs.k8s.io/krew/cmd/krew",
            "sigs.k8s.io/krew/cmd/validate-krew-manifest",
        ],
        outputs: &[
            ("krew", "kubectl-krew"),
            ("validate-krew-manifest", "validate-krew-manifest"),
        ],
    }
    .run(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

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
