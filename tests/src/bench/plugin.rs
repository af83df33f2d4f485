//! The plugin's wall time: `kubectl cloudkit jobs NAME` through the real kubectl (with
//! the built plugin first on `PATH`) beside `kubectl get computeinstance NAME -o json`,
//! on the same server in the same run, interleaved. Two baselines say where the time
//! goes: the plugin binary run directly, and `kubectl version --client` (kubectl's own
//! start-up, which every `kubectl cloudkit` pays before the plugin starts).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::stats::median;

#[derive(Clone, Debug)]
pub struct PluginFigures {
    pub runs: usize,
    pub jobs_via_kubectl: Duration,
    pub get_json: Duration,
    pub jobs_direct: Duration,
    pub kubectl_startup: Duration,
}

impl PluginFigures {
    /// `kubectl cloudkit jobs` ÷ `kubectl get -o json` (medians).
    pub fn ratio(&self) -> f64 {
        self.jobs_via_kubectl.as_secs_f64() / self.get_json.as_secs_f64().max(1e-9)
    }

    /// The plugin binary alone ÷ `kubectl get -o json`: the plugin's own share.
    pub fn direct_ratio(&self) -> f64 {
        self.jobs_direct.as_secs_f64() / self.get_json.as_secs_f64().max(1e-9)
    }
}

/// Runs each command `runs` times (after one warm-up run each); blocking.
pub fn measure(
    kubeconfig: &Path,
    plugin_dir: &Path,
    plugin: &Path,
    namespace: &str,
    name: &str,
    runs: usize,
) -> anyhow::Result<PluginFigures> {
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", &path)
            .env("NO_COLOR", "1");
        c
    };
    let mut commands = [
        kubectl(&["cloudkit", "jobs", name, "-n", namespace]),
        kubectl(&[
            "get",
            "computeinstance",
            name,
            "-n",
            namespace,
            "-o",
            "json",
        ]),
        {
            let mut c = Command::new(plugin);
            c.args(["jobs", name, "-n", namespace])
                .env("KUBECONFIG", kubeconfig)
                .env("NO_COLOR", "1");
            c
        },
        kubectl(&["version", "--client"]),
    ];
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..=runs {
        for (command, samples) in commands.iter_mut().zip(times.iter_mut()) {
            let started = Instant::now();
            let out = command.output()?;
            let took = started.elapsed();
            anyhow::ensure!(
                out.status.success() && !out.stdout.is_empty(),
                "{command:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            // Round 0 warms kubectl's discovery cache and the page cache.
            if round > 0 {
                samples.push(took);
            }
        }
    }
    let [jobs, get, direct, startup] = times.map(|t| median(t).unwrap_or_default());
    Ok(PluginFigures {
        runs,
        jobs_via_kubectl: jobs,
        get_json: get,
        jobs_direct: direct,
        kubectl_startup: startup,
    })
}
