//! The release command (`cargo run -p cloudkit-testbed --bin release`): builds
//! `kubectl-cloudkit` with the release profile for this machine, packs the krew archive
//! `target/krew/kubectl-cloudkit-v<version>-<os>-<arch>.tar.gz` in the layout
//! `manifests/krew/cloudkit.yaml` names, and writes `target/krew/cloudkit.yaml`: the
//! checked-in manifest with this platform's placeholder sha256 replaced by the real one.
//!
//! The manifest is edited as text, one `sha256:` line, so its comments and layout stay
//! as written; the result is then parsed back and checked.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The checked-in manifest, relative to the repository root.
pub const MANIFEST: &str = "manifests/krew/cloudkit.yaml";
/// The plugin's name in krew (`kubectl krew install cloudkit`).
pub const PLUGIN_NAME: &str = "cloudkit";
/// The executable krew links as the plugin.
pub const PLUGIN_BIN: &str = "kubectl-cloudkit";
/// The executable kubectl runs to complete `kubectl cloudkit …`.
pub const COMPLETION_BIN: &str = "kubectl_complete-cloudkit";
/// What the checked-in manifest carries where no archive has been built.
pub const PLACEHOLDER_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The files of the archive, at its root, as the manifest's `files` name them:
/// (name in the archive, mode).
pub const ARCHIVE_FILES: [(&str, u32); 4] = [
    (PLUGIN_BIN, 0o755),
    (COMPLETION_BIN, 0o755),
    ("LICENSE", 0o644),
    ("README.md", 0o644),
];

/// The repository root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The workspace's target directory: `CARGO_TARGET_DIR`, else `target/` at the root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(|v| repo_root().join(v))
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The release tag of this workspace version: `v0.1.0`.
pub fn tag() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

/// An operating system and architecture as krew names them (`linux/amd64`, `darwin/arm64`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// The machine this program was built for, in krew's names.
    pub fn host() -> anyhow::Result<Self> {
        Self::from_rust(std::env::consts::OS, std::env::consts::ARCH)
    }

    /// Rust's `std::env::consts` names to krew's (Go's) names.
    pub fn from_rust(os: &str, arch: &str) -> anyhow::Result<Self> {
        let os = match os {
            "linux" => "linux",
            "macos" => "darwin",
            other => {
                bail!("no krew release for the operating system {other:?} (linux and macOS only)")
            }
        };
        let arch = match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => {
                bail!("no krew release for the architecture {other:?} (x86_64 and aarch64 only)")
            }
        };
        Ok(Self {
            os: os.into(),
            arch: arch.into(),
        })
    }

    /// The archive krew downloads for this platform.
    pub fn archive_name(&self, tag: &str) -> String {
        format!("{PLUGIN_BIN}-{tag}-{}-{}.tar.gz", self.os, self.arch)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

impl std::str::FromStr for Platform {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let (os, arch) = s
            .split_once('/')
            .filter(|(os, arch)| !os.is_empty() && !arch.is_empty() && !arch.contains('/'))
            .with_context(|| format!("{s:?} is not OS/ARCH, e.g. darwin/arm64"))?;
        Ok(Self {
            os: os.into(),
            arch: arch.into(),
        })
    }
}

/// The parts of a krew manifest the release command relies on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub version: String,
    #[serde(default)]
    pub caveats: String,
    pub platforms: Vec<PlatformSpec>,
}

#[derive(Debug, Deserialize)]
pub struct PlatformSpec {
    pub selector: Selector,
    pub uri: String,
    pub sha256: String,
    pub bin: String,
    pub files: Vec<FileOperation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct FileOperation {
    pub from: String,
    pub to: String,
}

impl PlatformSpec {
    /// The platform its `matchLabels` select.
    pub fn platform(&self) -> Option<Platform> {
        Some(Platform {
            os: self.selector.match_labels.get("os")?.clone(),
            arch: self.selector.match_labels.get("arch")?.clone(),
        })
    }
}

impl Manifest {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        serde_saphyr::from_str(text).context("parsing the krew manifest")
    }

    pub fn platform(&self, platform: &Platform) -> Option<&PlatformSpec> {
        self.spec
            .platforms
            .iter()
            .find(|p| p.platform().as_ref() == Some(platform))
    }

    /// What the release command needs to hold before it packs anything: the manifest
    /// is for this plugin at `tag`, and every platform downloads its own archive of this
    /// release, links `kubectl-cloudkit` and extracts exactly the files the archive has.
    pub fn check(&self, tag: &str) -> anyhow::Result<()> {
        ensure!(
            self.metadata.name == PLUGIN_NAME,
            "the manifest is for plugin {:?}, not {PLUGIN_NAME:?}",
            self.metadata.name
        );
        ensure!(
            self.spec.version == tag,
            "the manifest's version is {} but the workspace version is {tag}: update {MANIFEST} \
             (version, every uri and the caveats)",
            self.spec.version
        );
        let install_dir = format!("/store/{PLUGIN_NAME}/{tag}/{COMPLETION_BIN}");
        ensure!(
            self.spec.caveats.contains(&install_dir),
            "the manifest's caveats do not link …{install_dir}: update the completion step for {tag}"
        );
        let archive_files: Vec<&str> = ARCHIVE_FILES.iter().map(|(name, _)| *name).collect();
        for spec in &self.spec.platforms {
            let platform = spec.platform().with_context(|| {
                format!("a platform of the manifest lacks os or arch: {spec:?}")
            })?;
            let archive = platform.archive_name(tag);
            ensure!(
                spec.uri.ends_with(&format!("/{tag}/{archive}")),
                "{platform}: uri {} does not end with /{tag}/{archive}",
                spec.uri
            );
            ensure!(
                spec.bin == PLUGIN_BIN,
                "{platform}: bin is {:?}, not {PLUGIN_BIN:?}",
                spec.bin
            );
            let froms: Vec<&str> = spec.files.iter().map(|f| f.from.as_str()).collect();
            ensure!(
                froms == archive_files && spec.files.iter().all(|f| f.to == "."),
                "{platform}: files must extract {archive_files:?} to \".\", the archive's layout; \
                 the manifest has {froms:?}"
            );
        }
        Ok(())
    }
}

/// `manifest` with the `sha256` of the platform entry that downloads `archive` set to
/// `digest`. Only that one line changes.
pub fn set_sha256(manifest: &str, archive: &str, digest: &str) -> anyhow::Result<String> {
    ensure!(
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{digest:?} is not a sha256 digest (64 lowercase hex digits)"
    );
    let lines: Vec<&str> = manifest.lines().collect();
    let value = |line: &str, key: &str| -> Option<String> {
        let body = line.trim_start().trim_start_matches("- ");
        body.strip_prefix(key)
            .map(|rest| rest.trim().trim_matches('"').to_string())
    };
    let uri_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            value(lines[i], "uri:").is_some_and(|uri| uri.ends_with(&format!("/{archive}")))
        })
        .collect();
    let [uri_line] = uri_lines[..] else {
        bail!(
            "the manifest has {} platforms downloading {archive}, not one",
            uri_lines.len()
        );
    };
    // The list item holding that uri: from its "- " line to the next line indented no
    // deeper than that dash.
    let indent = |line: &str| line.len() - line.trim_start().len();
    let start = (0..=uri_line)
        .rev()
        .find(|&i| {
            lines[i].trim_start().starts_with("- ") && indent(lines[i]) < indent(lines[uri_line])
        })
        .context("the uri is not inside a list item")?;
    let item_indent = indent(lines[start]);
    let end = (start + 1..lines.len())
        .find(|&i| {
            let line = lines[i];
            !line.trim().is_empty()
                && !line.trim_start().starts_with('#')
                && indent(line) <= item_indent
        })
        .unwrap_or(lines.len());
    let sha_lines: Vec<usize> = (start..end)
        .filter(|&i| value(lines[i], "sha256:").is_some())
        .collect();
    let [sha_line] = sha_lines[..] else {
        bail!(
            "the platform downloading {archive} has {} sha256 fields, not one",
            sha_lines.len()
        );
    };
    let old = lines[sha_line];
    let key_at = old.find("sha256:").expect("found above");
    let mut out = String::with_capacity(manifest.len());
    for (i, line) in lines.iter().enumerate() {
        if i == sha_line {
            out.push_str(&old[..key_at]);
            out.push_str(&format!("sha256: \"{digest}\""));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// The hex sha256 of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Writes a gzip-compressed tar of `files` (name in the archive, source, mode), all at
/// the archive's root. The same inputs give the same bytes: owner 0, no user names,
/// mtime `mtime`, no gzip timestamp or file name.
pub fn pack(archive: &Path, files: &[(&str, PathBuf, u32)], mtime: u64) -> anyhow::Result<()> {
    let partial = archive.with_extension("partial");
    let out = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::best()));
    for (name, source, mode) in files {
        let mut data = Vec::new();
        File::open(source)
            .and_then(|mut f| f.read_to_end(&mut data))
            .with_context(|| format!("reading {}", source.display()))?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        tar.append_data(&mut header, name, data.as_slice())
            .with_context(|| format!("adding {name} to {}", partial.display()))?;
    }
    let gz = tar.into_inner().context("finishing the tar stream")?;
    gz.finish()
        .and_then(|file| file.sync_all())
        .with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, archive).with_context(|| format!("writing {}", archive.display()))?;
    Ok(())
}

/// What one run is asked to do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where the archive and manifest go; `<target>/krew` when `None`.
    pub out_dir: Option<PathBuf>,
    /// Digests of archives built on other machines, written into the manifest too.
    pub digests: Vec<(Platform, String)>,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Released {
    pub platform: Platform,
    pub archive: PathBuf,
    pub sha256: String,
    pub manifest: PathBuf,
    /// Platforms whose sha256 is still the placeholder.
    pub placeholders: Vec<Platform>,
}

/// Builds, packs and writes the manifest; see the module documentation.
pub fn release(options: &Options) -> anyhow::Result<Released> {
    let root = repo_root();
    let tag = tag();
    let template_path = root.join(MANIFEST);
    let template = fs::read_to_string(&template_path)
        .with_context(|| format!("reading {}", template_path.display()))?;
    Manifest::parse(&template)?
        .check(&tag)
        .with_context(|| format!("{} is not ready for {tag}", template_path.display()))?;
    let platform = Platform::host()?;

    build()?;
    let target = target_dir();
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| target.join("krew"));
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let archive = out_dir.join(platform.archive_name(&tag));
    let files: Vec<(&str, PathBuf, u32)> = ARCHIVE_FILES
        .iter()
        .map(|&(name, mode)| {
            let source = if mode == 0o755 {
                target.join("release").join(name)
            } else {
                root.join(name)
            };
            (name, source, mode)
        })
        .collect();
    pack(&archive, &files, source_date_epoch()?)?;
    let sha256 = sha256_file(&archive)?;

    let mut manifest = set_sha256(&template, &platform.archive_name(&tag), &sha256)?;
    for (other, digest) in &options.digests {
        ensure!(
            other != &platform,
            "--sha256 {other}=… names the platform this run builds; its digest is computed"
        );
        manifest = set_sha256(&manifest, &other.archive_name(&tag), digest)
            .with_context(|| format!("--sha256 {other}"))?;
    }
    let parsed = Manifest::parse(&manifest)?;
    parsed.check(&tag)?;
    let written = parsed
        .platform(&platform)
        .with_context(|| format!("{MANIFEST} has no platform {platform}"))?;
    ensure!(
        written.sha256 == sha256,
        "the digest landed on the wrong platform entry: {platform} has {}",
        written.sha256
    );
    let placeholders: Vec<Platform> = parsed
        .spec
        .platforms
        .iter()
        .filter(|p| p.sha256 == PLACEHOLDER_SHA256)
        .filter_map(PlatformSpec::platform)
        .collect();
    let real: Vec<String> = parsed
        .spec
        .platforms
        .iter()
        .filter(|p| p.sha256 != PLACEHOLDER_SHA256)
        .filter_map(|p| p.platform().map(|p| p.to_string()))
        .collect();
    let header = format!(
        "# Written by `cargo run -p cloudkit-testbed --bin release` from {MANIFEST}.\n\
         # Real sha256: {}. {}\n",
        real.join(", "),
        if placeholders.is_empty() {
            "Every platform is real: ready to publish.".to_string()
        } else {
            format!(
                "Still placeholders: {} (pass --sha256 OS/ARCH=DIGEST).",
                placeholders
                    .iter()
                    .map(Platform::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let manifest_path = out_dir.join(format!("{PLUGIN_NAME}.yaml"));
    // The checked-in file's opening comment is about its placeholders; this one's
    // header says which digests are real.
    let body = without_leading_comments(&manifest);
    fs::write(&manifest_path, header + body)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    Ok(Released {
        platform,
        archive,
        sha256,
        manifest: manifest_path,
        placeholders,
    })
}

/// `text` from its first line that is neither a comment nor blank.
fn without_leading_comments(text: &str) -> &str {
    let mut rest = text;
    while let Some((line, tail)) = rest.split_once('\n') {
        if !(line.trim().is_empty() || line.trim_start().starts_with('#')) {
            break;
        }
        rest = tail;
    }
    rest
}

/// `cargo build --release -p kubectl-cloudkit` (both of its binaries), output shown.
fn build() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "kubectl-cloudkit", "--bins"])
        .current_dir(repo_root())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    ensure!(
        status.success(),
        "cargo build --release -p kubectl-cloudkit --bins failed ({status})"
    );
    Ok(())
}

/// The archive entries' mtime: `SOURCE_DATE_EPOCH` (the reproducible-builds
/// convention) when set, else 0, so that packing the same binaries gives the same digest.
fn source_date_epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> String {
        fs::read_to_string(repo_root().join(MANIFEST)).unwrap()
    }

    fn all_platforms() -> Vec<Platform> {
        ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// Bumping the workspace version without the manifest fails here, not at release.
    #[test]
    fn checked_in_manifest_matches_the_workspace_version() {
        let manifest = Manifest::parse(&checked_in()).unwrap();
        manifest.check(&tag()).unwrap();
        assert_eq!(
            manifest.api_version,
            "krew.googlecontainertools.github.com/v1alpha2"
        );
        assert_eq!(manifest.kind, "Plugin");
        let platforms: Vec<Platform> = manifest
            .spec
            .platforms
            .iter()
            .filter_map(PlatformSpec::platform)
            .collect();
        assert_eq!(platforms, all_platforms());
        for p in &manifest.spec.platforms {
            assert_eq!(
                p.sha256, PLACEHOLDER_SHA256,
                "checked-in digests are placeholders"
            );
        }
    }

    #[test]
    fn set_sha256_changes_one_line_of_the_right_platform() {
        let template = checked_in();
        for (n, platform) in all_platforms().iter().enumerate() {
            let digest = format!("{:x}", n + 1).repeat(64);
            let out = set_sha256(&template, &platform.archive_name(&tag()), &digest).unwrap();
            let changed: Vec<(&str, &str)> = template
                .lines()
                .zip(out.lines())
                .filter(|(a, b)| a != b)
                .collect();
            assert_eq!(changed.len(), 1, "{platform}: {changed:?}");
            assert_eq!(template.lines().count(), out.lines().count());
            let parsed = Manifest::parse(&out).unwrap();
            for p in &parsed.spec.platforms {
                let expected = if p.platform().as_ref() == Some(platform) {
                    digest.as_str()
                } else {
                    PLACEHOLDER_SHA256
                };
                assert_eq!(p.sha256, expected, "{platform}");
            }
        }
    }

    #[test]
    fn set_sha256_refuses_unknown_archives_and_bad_digests() {
        let template = checked_in();
        let digest = "a".repeat(64);
        let windows = Platform::from_str_unchecked("windows", "amd64");
        assert!(set_sha256(&template, &windows.archive_name(&tag()), &digest).is_err());
        let linux = Platform::from_rust("linux", "x86_64").unwrap();
        let archive = linux.archive_name(&tag());
        assert!(set_sha256(&template, &archive, "abc").is_err());
        assert!(set_sha256(&template, &archive, &"A".repeat(64)).is_err());
        assert!(set_sha256(&template, &archive, &digest).is_ok());
    }

    #[test]
    fn leading_comments_are_dropped_and_the_rest_kept() {
        let text = "# a\n\n  # b\napiVersion: x # c\n# d\nkind: y\n";
        assert_eq!(
            without_leading_comments(text),
            "apiVersion: x # c\n# d\nkind: y\n"
        );
        assert!(checked_in().starts_with('#'));
        assert!(without_leading_comments(&checked_in()).starts_with("apiVersion: "));
    }

    #[test]
    fn platforms_use_krew_names() {
        assert_eq!(
            Platform::from_rust("linux", "x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::from_rust("macos", "aarch64").unwrap().to_string(),
            "darwin/arm64"
        );
        assert!(Platform::from_rust("windows", "x86_64").is_err());
        assert!(Platform::from_rust("linux", "riscv64").is_err());
        assert_eq!(
            Platform::from_rust("linux", "aarch64")
                .unwrap()
                .archive_name("v0.1.0"),
            "kubectl-cloudkit-v0.1.0-linux-arm64.tar.gz"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/x".parse::<Platform>().is_err());
    }

    #[test]
    fn packing_is_reproducible_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let doc = dir.path().join("doc");
        fs::write(&bin, b"#!/bin/sh\necho hi\n").unwrap();
        fs::write(&doc, b"text").unwrap();
        let files = [("kubectl-x", bin, 0o755), ("LICENSE", doc, 0o644)];
        let (a, b) = (dir.path().join("a.tar.gz"), dir.path().join("b.tar.gz"));
        pack(&a, &files, 0).unwrap();
        pack(&b, &files, 0).unwrap();
        assert_eq!(sha256_file(&a).unwrap(), sha256_file(&b).unwrap());

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(File::open(&a).unwrap()));
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                (path, e.header().mode().unwrap(), e.header().uid().unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            vec![("kubectl-x".into(), 0o755, 0), ("LICENSE".into(), 0o644, 0)]
        );
    }

    impl Platform {
        fn from_str_unchecked(os: &str, arch: &str) -> Self {
            Self {
                os: os.into(),
                arch: arch.into(),
            }
        }
    }
}
