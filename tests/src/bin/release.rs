//! `release`: the krew release of kubectl-cloudkit for this machine.
//!
//!     cargo run -p cloudkit-testbed --bin release [-- --sha256 darwin/arm64=DIGEST ...]
//!
//! Builds kubectl-cloudkit (release profile), packs
//! target/krew/kubectl-cloudkit-v<version>-<os>-<arch>.tar.gz and writes
//! target/krew/cloudkit.yaml with its sha256. See `cloudkit_testbed::release`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cloudkit_testbed::release::{Options, Platform, release};

#[derive(Parser)]
#[command(
    name = "release",
    about = "Build the krew archive of kubectl-cloudkit for this machine and write its krew manifest"
)]
struct Cli {
    /// Where to write the archive and cloudkit.yaml (default: <target dir>/krew).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// The sha256 of an archive built on another machine, as OS/ARCH=DIGEST
    /// (e.g. darwin/arm64=…); repeat for each.
    #[arg(long = "sha256", value_name = "OS/ARCH=DIGEST", value_parser = parse_digest)]
    digests: Vec<(Platform, String)>,
}

fn parse_digest(s: &str) -> Result<(Platform, String), String> {
    let (platform, digest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not OS/ARCH=DIGEST"))?;
    let platform = platform.parse::<Platform>().map_err(|e| e.to_string())?;
    Ok((platform, digest.to_string()))
}

/// `path` relative to the working directory when it is inside it, as a person types it.
fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        out_dir: cli.out_dir,
        digests: cli.digests,
    };
    match release(&options) {
        Ok(released) => {
            println!("platform: {}", released.platform);
            println!("archive:  {}", shown(&released.archive));
            println!("sha256:   {}", released.sha256);
            println!("manifest: {}", shown(&released.manifest));
            if !released.placeholders.is_empty() {
                let names: Vec<String> = released
                    .placeholders
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                println!(
                    "placeholder sha256 left for {}: build there, or pass --sha256 OS/ARCH=DIGEST, before publishing",
                    names.join(", ")
                );
            }
            println!(
                "install:  kubectl krew install --manifest={} --archive={}",
                shown(&released.manifest),
                shown(&released.archive)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("release: {e:#}");
            ExitCode::FAILURE
        }
    }
}
