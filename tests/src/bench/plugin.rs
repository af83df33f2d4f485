//! The plugin's wall time: `kubectl cloudkit jobs NAME` through the real kubectl (with
//! the built plugin first on `PATH`) beside `kubectl get computeinstance NAME -o json`,
//! on the same server in the same run, interleaved. Two baselines say where the time
//! goes: the plugin binary run directly, and `kubectl version --client` (kubectl's own
//! start-up, which every `kubectl cloudkit` pays before the plugin starts). Then `list -A`
//! over every instance the bench made (the largest population), through kubectl and run
//! directly, beside `kubectl get computeinstances -A -o json`.

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
    pub list: ListFigures,
}

/// `list -A` over the whole cluster.
#[derive(Clone, Debug)]
pub struct ListFigures {
    pub runs: usize,
    /// Lines `list -A` printed, less its header: the instances it listed.
    pub instances: usize,
    pub via_kubectl: Duration,
    pub direct: Duration,
    pub get_json: Duration,
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

/// Runs each command `runs` times (`list_runs` for the cluster-wide lists), after one
/// warm-up run each; blocking.
pub fn measure(
    kubeconfig: &Path,
    plugin_dir: &Path,
    plugin: &Path,
    namespace: &str,
    name: &str,
    runs: usize,
    list_runs: usize,
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
    let direct = |args: &[&str]| {
        let mut c = Command::new(plugin);
        c.args(args)
            .env("KUBECONFIG", kubeconfig)
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
        direct(&["jobs", name, "-n", namespace]),
        kubectl(&["version", "--client"]),
    ];
    let [jobs, get, direct_jobs, startup] = medians(&mut commands, runs)?;
    let mut lists = [
        kubectl(&["cloudkit", "list", "-A"]),
        direct(&["list", "-A"]),
        kubectl(&["get", "computeinstances", "-A", "-o", "json"]),
    ];
    let listed = lists[1].output()?;
    let instances = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    let [list_kubectl, list_direct, list_get] = medians(&mut lists, list_runs)?;
    Ok(PluginFigures {
        runs,
        jobs_via_kubectl: jobs,
        get_json: get,
        jobs_direct: direct_jobs,
        kubectl_startup: startup,
        list: ListFigures {
            runs: list_runs,
            instances,
            via_kubectl: list_kubectl,
            direct: list_direct,
            get_json: list_get,
        },
    })
}

/// The median wall time of each command over `runs` rounds, interleaved, after a warm-up
/// round (kubectl's discovery cache, the page cache).
fn medians<const N: usize>(
    commands: &mut [Command; N],
    runs: usize,
) -> anyhow::Result<[Duration; N]> {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
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
            if round > 0 {
                samples.push(took);
            }
        }
    }
    Ok(times.map(|t| median(t).unwrap_or_default()))
}
