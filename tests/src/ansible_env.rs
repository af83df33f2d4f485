//! A Python virtual environment holding a pinned Ansible toolchain — ansible (with
//! kubernetes.core), ansible-rulebook (EDA), awxkit — installed from PyPI on first use
//! and cached outside the work tree like the control plane's binaries, keyed by the
//! pinned set, so every later run starts at once.
//!
//! ```no_run
//! # fn example() -> Result<(), cloudkit_testbed::ansible_env::AnsibleEnvError> {
//! let env = cloudkit_testbed::ansible_env::ensure()?; // minutes on a cold cache
//! cloudkit_testbed::ansible_env::require_java()?; // before starting ansible-rulebook
//! let mut playbook = std::process::Command::new(&env.ansible_playbook);
//! # let _ = &mut playbook;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::control_plane::{build_once, cache_root, last_lines};

/// What is installed, exactly as pip is given it. ansible-rulebook brings drools-jpy
/// (its rule engine, run in a JVM) and ansible-runner (what its `run_playbook` action
/// runs playbooks with). setuptools < 81: awxkit still imports `pkg_resources`.
pub const REQUIREMENTS: &[&str] = &[
    "ansible==12.3.0",
    "ansible-rulebook==1.3.2",
    "awxkit==24.6.1",
    "setuptools<81",
    "kubernetes==37.0.2",
];

/// The oldest Python the set installs on (ansible-core 2.19 needs 3.11).
const MIN_PYTHON: (u32, u32) = (3, 11);
/// The Java release ansible-rulebook's rule engine needs.
const MIN_JAVA: u32 = 17;
/// Written last: a directory without it is a broken install and is made again.
const COMPLETE_MARKER: &str = ".cloudkit-testbed-complete";
const ERROR_LINES: usize = 30;

/// The installed environment's programs.
#[derive(Debug, Clone)]
pub struct AnsibleEnv {
    /// The virtual environment's directory.
    pub dir: PathBuf,
    /// Its interpreter: give it to Ansible as `ansible_python_interpreter`, since
    /// interpreter discovery may pick a `python3` from PATH that lacks the modules.
    pub python: PathBuf,
    pub ansible_playbook: PathBuf,
    pub ansible_rulebook: PathBuf,
    /// Installed as a dependency of ansible-rulebook.
    pub ansible_runner: PathBuf,
    /// awxkit's command-line client.
    pub awx: PathBuf,
}

/// Why the environment could not be made or used.
#[derive(thiserror::Error)]
pub enum AnsibleEnvError {
    #[error(
        "no cache directory for the Ansible environment: set CLOUDKIT_TESTBED_CACHE, XDG_CACHE_HOME or HOME ({0})"
    )]
    NoCacheDir(String),
    #[error(
        "{path}: {source} (the Ansible environment is cached here; set CLOUDKIT_TESTBED_CACHE to a writable directory)"
    )]
    Cache {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no Python {}.{}+ found (tried {tried}): install Python 3.11 or set CLOUDKIT_TESTBED_PYTHON to one",
        MIN_PYTHON.0, MIN_PYTHON.1
    )]
    NoPython { tried: String },
    #[error("could not run `{command}`: {source}")]
    Run {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` exited with {status}; last lines of its output:\n{output}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("the installed environment in {dir} lacks {missing}: remove {dir} and run again")]
    Incomplete { dir: PathBuf, missing: PathBuf },
    #[error(
        "java not found on PATH: ansible-rulebook needs Java {MIN_JAVA}; install openjdk-17-jre-headless"
    )]
    NoJava,
    #[error(
        "ansible-rulebook needs Java {MIN_JAVA}+, `java -version` says {found:?}: install openjdk-17-jre-headless"
    )]
    OldJava { found: String },
}

impl std::fmt::Debug for AnsibleEnvError {
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

/// `ansible-venv-<hash of REQUIREMENTS>`: a changed pin gets a new directory.
pub fn cache_key() -> String {
    // FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in REQUIREMENTS.join("\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ansible-venv-{hash:016x}")
}

/// Returns the cached environment, installing it first if needed. Blocking: a few
/// minutes and about 550 MB on a cold cache. A file lock makes parallel test binaries
/// install once and wait for it.
pub fn ensure() -> Result<AnsibleEnv, AnsibleEnvError> {
    let root = cache_root().map_err(|e| AnsibleEnvError::NoCacheDir(e.to_string()))?;
    let key = cache_key();
    let env = AnsibleEnv::at(root.join(&key));
    build_once(
        &root,
        &key,
        || env.dir.join(COMPLETE_MARKER).is_file(),
        || install(&env.dir),
        |path, source| AnsibleEnvError::Cache { path, source },
    )?;
    env.check_complete()?;
    Ok(env)
}

impl AnsibleEnv {
    fn at(dir: PathBuf) -> Self {
        let bin = dir.join("bin");
        Self {
            python: bin.join("python"),
            ansible_playbook: bin.join("ansible-playbook"),
            ansible_rulebook: bin.join("ansible-rulebook"),
            ansible_runner: bin.join("ansible-runner"),
            awx: bin.join("awx"),
            dir,
        }
    }

    fn check_complete(&self) -> Result<(), AnsibleEnvError> {
        let programs = [
            &self.python,
            &self.ansible_playbook,
            &self.ansible_rulebook,
            &self.ansible_runner,
            &self.awx,
        ];
        match programs.into_iter().find(|p| !p.is_file()) {
            Some(missing) => Err(AnsibleEnvError::Incomplete {
                dir: self.dir.clone(),
                missing: missing.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `PATH` with the environment's `bin` first: ansible-rulebook starts
    /// `ansible-runner` / `ansible-playbook` by name.
    pub fn path_var(&self) -> OsString {
        let mut dirs = vec![self.dir.join("bin")];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).unwrap_or_default()
    }

    /// The variables every Ansible program of this environment runs with: its `bin` on
    /// `PATH`, `VIRTUAL_ENV`, and `ANSIBLE_HOME` in `ansible_home` (a throw-away
    /// directory, so nothing is read from or written to the user's `~/.ansible`).
    pub fn envs(&self, ansible_home: &Path) -> Vec<(&'static str, OsString)> {
        vec![
            ("PATH", self.path_var()),
            ("VIRTUAL_ENV", self.dir.clone().into_os_string()),
            ("ANSIBLE_HOME", ansible_home.as_os_str().to_owned()),
            ("ANSIBLE_NOCOLOR", "1".into()),
            ("ANSIBLE_FORCE_COLOR", "0".into()),
        ]
    }
}

/// Makes the virtual environment in `dir` (cleared first: a directory without the
/// marker is a broken install) and installs REQUIREMENTS into it from PyPI.
fn install(dir: &Path) -> Result<(), AnsibleEnvError> {
    let python = find_python()?;
    let what = REQUIREMENTS.join(" ");
    // Visible even when the test harness captures output: it goes straight to fd 2.
    let _ = writeln!(
        io::stderr(),
        "installing {what} into {} (first run only, a few minutes, about 550 MB)...",
        dir.display()
    );
    let started = Instant::now();
    run(Command::new(&python)
        .args(["-m", "venv", "--clear"])
        .arg(dir))?;
    let env = AnsibleEnv::at(dir.to_path_buf());
    run(Command::new(&env.python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(REQUIREMENTS)
        .env_remove("PIP_REQUIRE_VIRTUALENV"))?;
    env.check_complete()?;
    let marker = dir.join(COMPLETE_MARKER);
    fs::write(&marker, format!("{what}\n")).map_err(|source| AnsibleEnvError::Cache {
        path: marker,
        source,
    })?;
    let _ = writeln!(
        io::stderr(),
        "installed the Ansible environment in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

/// Runs `command` to completion; a failure carries the tail of its output.
fn run(command: &mut Command) -> Result<(), AnsibleEnvError> {
    let line = command_line(command);
    let output = command.output().map_err(|source| AnsibleEnvError::Run {
        command: line.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(AnsibleEnvError::Failed {
        command: line,
        status: output.status,
        output: last_lines(&text, ERROR_LINES),
    })
}

fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `$CLOUDKIT_TESTBED_PYTHON`, else the first of `python3.11`, `python3` that runs and
/// is new enough.
fn find_python() -> Result<PathBuf, AnsibleEnvError> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CLOUDKIT_TESTBED_PYTHON") {
        Some(p) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => vec!["python3.11".into(), "python3".into()],
    };
    let check = "import sys; print('%d.%d' % sys.version_info[:2])";
    for candidate in &candidates {
        let Ok(out) = Command::new(candidate).args(["-c", check]).output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && parse_version(version.trim()) >= Some(MIN_PYTHON) {
            return Ok(candidate.clone());
        }
    }
    Err(AnsibleEnvError::NoPython {
        tried: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Checks that `java` runs and is Java 17 or newer, so ansible-rulebook fails with a
/// clear line instead of hanging or dying in its JVM bridge.
pub fn require_java() -> Result<(), AnsibleEnvError> {
    let out = match Command::new("java").arg("-version").output() {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AnsibleEnvError::NoJava),
        Err(source) => {
            return Err(AnsibleEnvError::Run {
                command: "java -version".into(),
                source,
            });
        }
    };
    // `java -version` prints to stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().unwrap_or_default().trim().to_string();
    match java_major(&first) {
        Some(major) if out.status.success() && major >= MIN_JAVA => Ok(()),
        _ => Err(AnsibleEnvError::OldJava { found: first }),
    }
}

/// The major release in `openjdk version "17.0.15" 2025-04-15` (or `"1.8.0_392"`).
fn java_major(line: &str) -> Option<u32> {
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_major_reads_both_numbering_schemes() {
        assert_eq!(
            java_major(r#"openjdk version "17.0.15" 2025-04-15"#),
            Some(17)
        );
        assert_eq!(java_major(r#"java version "1.8.0_392""#), Some(8));
        assert_eq!(java_major(r#"openjdk version "21" 2023-09-19"#), Some(21));
        assert_eq!(java_major("garbage"), None);
    }

    #[test]
    fn python_versions_compare_numerically() {
        assert!(parse_version("3.11") >= Some(MIN_PYTHON));
        assert!(parse_version("3.12") >= Some(MIN_PYTHON));
        assert!(parse_version("3.9") < Some(MIN_PYTHON));
        assert!(parse_version("x") < Some(MIN_PYTHON));
    }

    #[test]
    fn cache_key_names_the_pins() {
        let key = cache_key();
        assert!(key.starts_with("ansible-venv-"));
        assert_eq!(key.len(), "ansible-venv-".len() + 16);
    }
}
