//! The plugin's wall time: `kubectl cloudkit jobs NAME` through the real kubectl (with
//! the built plugin first on `PATH`) beside `kubectl get computeinstance NAME -o json`,
//! on the same server in the same run, interleaved. Two baselines say where the time
//! goes: the plugin binary run directly, and `kubectl version --client` (kubectl's own
//! start-up, which every `kubectl cloudkit` pays before the plugin starts). Apart, at each
//! population: `list -A` over every instance in the cluster, through kubectl and run
//! directly, beside `kubectl get computeinstances -A -o json` and the API server's own
//! time for the same pages, fetched and not decoded.

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

/// `list -A` over the whole cluster.
#[derive(Clone, Debug)]
pub struct ListFigures {
    pub runs: usize,
    /// Lines `list -A` printed, less its header: the instances it listed.
    pub instances: usize,
    pub via_kubectl: Duration,
    pub direct: Duration,
    /// `kubectl get computeinstances -A -o json`, where measured.
    pub get_json: Option<Duration>,
    /// The same pages of 500 as the plugin asks for, fetched by the bench and not decoded.
    pub server: ServerList,
}

/// The API server's share of a list: its pages, fetched and not decoded.
#[derive(Clone, Copy, Debug)]
pub struct ServerList {
    pub time: Duration,
    pub pages: usize,
    pub bytes: usize,
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

fn commands(
    kubeconfig: &Path,
    plugin_dir: &Path,
    plugin: &Path,
) -> (impl Fn(&[&str]) -> Command, impl Fn(&[&str]) -> Command) {
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubeconfig = kubeconfig.to_path_buf();
    let plugin = plugin.to_path_buf();
    let kubectl = {
        let kubeconfig = kubeconfig.clone();
        move |args: &[&str]| {
            let mut c = Command::new("kubectl");
            c.args(args)
                .env("KUBECONFIG", &kubeconfig)
                .env("PATH", &path)
                .env("NO_COLOR", "1");
            c
        }
    };
    let direct = move |args: &[&str]| {
        let mut c = Command::new(&plugin);
        c.args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("NO_COLOR", "1");
        c
    };
    (kubectl, direct)
}

/// Runs each command `runs` times, after one warm-up run each; blocking.
pub fn measure(
    kubeconfig: &Path,
    plugin_dir: &Path,
    plugin: &Path,
    namespace: &str,
    name: &str,
    runs: usize,
) -> anyhow::Result<PluginFigures> {
    let (kubectl, direct) = commands(kubeconfig, plugin_dir, plugin);
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
    Ok(PluginFigures {
        runs,
        jobs_via_kubectl: jobs,
        get_json: get,
        jobs_direct: direct_jobs,
        kubectl_startup: startup,
    })
}

/// `list -A` `runs` times each way (with `kubectl get -A -o json` beside it when `with_get`),
/// and the API server's time for the same pages; blocking.
pub fn measure_list(
    kubeconfig: &Path,
    plugin_dir: &Path,
    plugin: &Path,
    runs: usize,
    with_get: bool,
    server: ServerList,
) -> anyhow::Result<ListFigures> {
    let (kubectl, direct) = commands(kubeconfig, plugin_dir, plugin);
    let listed = direct(&["list", "-A"]).output()?;
    let instances = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    let mut lists = [
        kubectl(&["cloudkit", "list", "-A"]),
        direct(&["list", "-A"]),
    ];
    let [via_kubectl, direct] = medians(&mut lists, runs)?;
    let get_json = if with_get {
        let mut get = [kubectl(&["get", "computeinstances", "-A", "-o", "json"])];
        Some(medians(&mut get, runs)?[0])
    } else {
        None
    };
    Ok(ListFigures {
        runs,
        instances,
        via_kubectl,
        direct,
        get_json,
        server,
    })
}

/// Every page of 500 instances across the cluster, fetched as text and not decoded (only the
/// continue token is read): the
/// API server's (and the connection's) share of `list -A`. The median of `runs` rounds.
pub async fn server_list(client: &kube::Client, runs: usize) -> anyhow::Result<ServerList> {
    use cloudkit_shared::ComputeInstance;
    use kube::Resource;
    let path = ComputeInstance::url_path(&(), None);
    let mut rounds = Vec::new();
    for round in 0..=runs {
        let started = Instant::now();
        let (mut pages, mut bytes) = (0, 0);
        let mut params = kube::api::ListParams::default().limit(500);
        loop {
            let request = kube::core::Request::new(&path).list(&params)?;
            let body = client.request_text(request).await?;
            pages += 1;
            bytes += body.len();
            match continue_token(&body)? {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        if round > 0 {
            rounds.push(ServerList {
                time: started.elapsed(),
                pages,
                bytes,
            });
        }
    }
    rounds.sort_by_key(|r| r.time);
    rounds
        .get(rounds.len() / 2)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no list rounds"))
}

/// The `metadata.continue` of a list body; the items are skipped, not built.
fn continue_token(body: &str) -> anyhow::Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Head {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    }
    let head: Head = serde_json::from_str(body)?;
    Ok(head.metadata.continue_.filter(|t| !t.is_empty()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_continue_token_is_read_and_an_empty_one_ends_the_list() {
        let body = r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"9","continue":"eyJ2Ijo"},"items":[{"metadata":{"name":"a"}}]}"#;
        assert_eq!(
            super::continue_token(body).unwrap().as_deref(),
            Some("eyJ2Ijo")
        );
        let last = r#"{"metadata":{"resourceVersion":"9","continue":""},"items":[]}"#;
        assert_eq!(super::continue_token(last).unwrap(), None);
    }
}
