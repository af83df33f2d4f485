//! Installing with krew, checked with krew itself (built from the Go module proxy by
//! `cloudkit_testbed::krew`): the checked-in manifest passes krew's own
//! `validate-krew-manifest`; the archive the release command builds installs with the
//! real `kubectl krew install` into a throw-away KREW_ROOT, runs as `kubectl cloudkit`
//! through the real kubectl, and completes through `kubectl_complete-cloudkit` once the
//! manifest's caveat is followed. Nothing touches the user's krew: HOME and KREW_ROOT
//! are temporary, and each command gets only the environment written here.

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use cloudkit_testbed::krew::{self, Krew};
use cloudkit_testbed::release::{self, Manifest, Platform};

fn krew() -> Krew {
    krew::ensure().unwrap()
}

/// The real kubectl on the machine (the tests need it, as README says), found as every
/// test finds it.
fn kubectl() -> PathBuf {
    cloudkit_testbed::kubectl::kubectl_path().unwrap_or_else(|e| panic!("{e:#}"))
}

/// A KREW_ROOT and HOME of its own, and a PATH of exactly: krew's bin directory, the
/// built krew (as `kubectl-krew`), kubectl's directory, /usr/bin:/bin (for `sh`, `ln`).
struct Sandbox {
    _dir: tempfile::TempDir,
    home: PathBuf,
    krew_root: PathBuf,
    path: OsString,
}

impl Sandbox {
    fn new(krew: &Krew) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let krew_root = dir.path().join("krew-root");
        fs::create_dir_all(&home).unwrap();
        let kubectl = kubectl();
        let path = std::env::join_paths([
            krew_root.join("bin"),
            krew.dir.clone(),
            kubectl.parent().unwrap().to_path_buf(),
            "/usr/bin".into(),
            "/bin".into(),
        ])
        .unwrap();
        Self {
            _dir: dir,
            home,
            krew_root,
            path,
        }
    }

    /// `program` with only the sandbox's environment (no KUBECONFIG, no proxies).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", &self.home)
            .env("KREW_ROOT", &self.krew_root)
            .env("KREW_NO_UPGRADE_CHECK", "1")
            .env("PATH", &self.path)
            .stdin(Stdio::null());
        command
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.command(kubectl()).args(args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// What one run of the release command produced (run once per test binary).
struct Released {
    manifest: PathBuf,
    archive: PathBuf,
    stdout: String,
}

fn released() -> &'static Released {
    static RELEASED: OnceLock<Released> = OnceLock::new();
    RELEASED.get_or_init(|| {
        let output = Command::new(env!("CARGO_BIN_EXE_release"))
            .current_dir(release::repo_root())
            .output()
            .unwrap();
        assert_success("the release command", &output);
        let out_dir = release::target_dir().join("krew");
        let archive = Platform::host().unwrap().archive_name(&release::tag());
        Released {
            manifest: out_dir.join("cloudkit.yaml"),
            archive: out_dir.join(archive),
            stdout: text(&output.stdout),
        }
    })
}

#[test]
fn checked_in_manifest_passes_krews_validator() {
    let krew = krew();
    let manifest = release::repo_root().join(release::MANIFEST);
    // -skip-install: installing would download every platform's release uri.
    let output = krew
        .validate_command(&manifest, false, &std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    assert_success(
        "validate-krew-manifest manifests/krew/cloudkit.yaml",
        &output,
    );
    let log = text(&output.stderr);
    for step in [
        "structural validation OK",
        "all spec.platform[] items are used",
        "no overlapping spec.platform[].selector",
    ] {
        assert!(log.contains(step), "{step:?} not in:\n{log}");
    }
}

/// The validator really checks: the same manifest under another file name is refused
/// (krew-index requires `<plugin name>.yaml`).
#[test]
fn krews_validator_refuses_a_misnamed_manifest() {
    let krew = krew();
    let dir = tempfile::tempdir().unwrap();
    let misnamed = dir.path().join("kubectl-cloudkit.yaml");
    fs::copy(release::repo_root().join(release::MANIFEST), &misnamed).unwrap();
    let output = krew
        .validate_command(&misnamed, false, &std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr)
            .contains(r#"plugin should be named "kubectl-cloudkit", not "cloudkit""#),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn release_archive_installs_with_krew_and_runs_through_kubectl() {
    let krew = krew();
    let released = released();
    let tag = release::tag();
    assert!(
        released.stdout.contains(&format!(
            "install:  kubectl krew install --manifest=target/krew/cloudkit.yaml --archive=target/krew/{}",
            released.archive.file_name().unwrap().to_string_lossy()
        )) || std::env::var_os("CARGO_TARGET_DIR").is_some(),
        "{}",
        released.stdout
    );

    // The written manifest is still valid for krew, with this platform's real digest.
    let sandbox = Sandbox::new(&krew);
    let output = krew
        .validate_command(&released.manifest, false, &sandbox.path)
        .output()
        .unwrap();
    assert_success("validate-krew-manifest target/krew/cloudkit.yaml", &output);
    let manifest = Manifest::parse(&fs::read_to_string(&released.manifest).unwrap()).unwrap();
    let host = Platform::host().unwrap();
    assert_eq!(
        manifest.platform(&host).unwrap().sha256,
        release::sha256_file(&released.archive).unwrap()
    );

    // The user's command, with the real krew: no index, no network.
    let install = sandbox
        .command(kubectl())
        .arg("krew")
        .arg("install")
        .arg(format!("--manifest={}", released.manifest.display()))
        .arg(format!("--archive={}", released.archive.display()))
        .output()
        .unwrap();
    assert_success("kubectl krew install --manifest --archive", &install);
    assert!(text(&install.stderr).contains("Installed plugin: cloudkit"));
    // krew shows the caveats, completion step included.
    assert!(text(&install.stderr).contains("kubectl_complete-cloudkit"));

    let store = sandbox.krew_root.join("store").join("cloudkit").join(&tag);
    for (name, _) in release::ARCHIVE_FILES {
        assert!(
            store.join(name).is_file(),
            "{name} not extracted into {}",
            store.display()
        );
    }
    let completion = store.join(release::COMPLETION_BIN);
    let mode = fs::metadata(&completion).unwrap().permissions().mode();
    assert!(
        mode & 0o111 != 0,
        "{} is not executable ({mode:o})",
        completion.display()
    );

    // kubectl finds the plugin krew linked, and only that one.
    let list = sandbox.kubectl(&["plugin", "list"]);
    let linked = sandbox.krew_root.join("bin").join(release::PLUGIN_BIN);
    let found: Vec<String> = text(&list.stdout)
        .lines()
        .filter(|l| l.ends_with(&format!("/{}", release::PLUGIN_BIN)))
        .map(str::to_string)
        .collect();
    assert_eq!(
        found,
        vec![linked.display().to_string()],
        "{}",
        text(&list.stderr)
    );

    let version = sandbox.kubectl(&["cloudkit", "version"]);
    assert_success("kubectl cloudkit version", &version);
    assert_eq!(
        text(&version.stdout),
        format!("kubectl-cloudkit {}\n", env!("CARGO_PKG_VERSION"))
    );

    // Follow the caveat word for word, then complete through the real kubectl.
    let caveat = manifest
        .spec
        .caveats
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ln -sf "))
        .expect("the caveats show the ln -s step");
    let link = sandbox
        .command("sh")
        .arg("-c")
        .arg(caveat)
        .output()
        .unwrap();
    assert_success(caveat, &link);
    let complete = sandbox.kubectl(&["__complete", "cloudkit", ""]);
    assert_success("kubectl __complete cloudkit ''", &complete);
    let candidates = text(&complete.stdout);
    for verb in ["restart", "jobs", "cancel", "version"] {
        assert!(
            candidates.lines().any(|l| l == verb),
            "{verb} not completed:\n{candidates}\n{}",
            text(&complete.stderr)
        );
    }
}

/// krew-index's full check, installing too: the validator runs `kubectl krew install`
/// for the platform and requires a LICENSE among the extracted files. The archive is
/// served on 127.0.0.1, from a copy of the written manifest that keeps this platform.
#[test]
fn release_archive_passes_krews_validator_with_install() {
    let krew = krew();
    let released = released();
    let server = serve_file(released.archive.clone());

    let text = fs::read_to_string(&released.manifest).unwrap();
    let mut manifest: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let host = Platform::host().unwrap();
    let platforms = manifest["spec"]["platforms"].as_array_mut().unwrap();
    platforms.retain(|p| {
        p["selector"]["matchLabels"]["os"] == host.os.as_str()
            && p["selector"]["matchLabels"]["arch"] == host.arch.as_str()
    });
    assert_eq!(platforms.len(), 1);
    let name = released
        .archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    platforms[0]["uri"] = format!("http://{server}/{name}").into();

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("cloudkit.yaml");
    // JSON is YAML; krew reads either.
    fs::write(&local, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let sandbox = Sandbox::new(&krew);
    let output = krew
        .validate_command(&local, true, &sandbox.path)
        .output()
        .unwrap();
    assert_success("validate-krew-manifest (with install)", &output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("all 1 spec.platforms installed fine"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Serves `file` to every GET on a loopback port, for the life of the test binary.
fn serve_file(file: PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            // Read the request head up to its blank line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = fs::read(&file).unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}
