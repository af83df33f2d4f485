//! The runner under test as a child process: the release build, the bed's environment,
//! quiet logging; its `/metrics` and its `/proc` figures.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::machine::kib_field;
use crate::bed::simulator_env;
use crate::runner_process::{METRICS_LISTENING, metrics_addr};

/// Where the runner finds AAP and what it watches.
#[derive(Clone, Debug)]
pub struct RunnerSetup {
    pub aap_url: String,
    pub aap_token_file: PathBuf,
    pub namespace: String,
    pub poll_interval: Duration,
    /// Unique per start, so a new runner never waits for an old one's lease.
    pub lease_name: String,
    /// From [`EXTRA_ENV`], `{n}` already replaced by the runner's number.
    pub extra_env: Vec<(String, String)>,
}

/// The bed's runner environment (see `Bed::runner_env`), with logging at `warn`. The
/// one `info` directive keeps the line with the metrics address, logged once.
pub fn environment(setup: &RunnerSetup) -> Vec<(String, String)> {
    let mut env = simulator_env(&setup.aap_url, &setup.aap_token_file, &setup.namespace);
    env.extend(
        [
            (
                "CLOUDKIT_AAP_STATUS_POLL_INTERVAL",
                format!("{}ms", setup.poll_interval.as_millis()),
            ),
            ("CLOUDKIT_LEASE_NAME", setup.lease_name.clone()),
            ("POD_NAME", format!("bench-{}", setup.lease_name)),
            ("CLOUDKIT_LOG", "warn,cloudkit_runner::http=info".into()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env.extend(setup.extra_env.iter().cloned());
    env
}

/// The variable with extra `KEY=VALUE` pairs (whitespace-separated) for every runner the bench
/// starts: e.g. heaptrack's preload library and output, to profile the runner's memory. `{n}`
/// in a value becomes the runner's number (runner-{n}.log in the bench's directory).
pub const EXTRA_ENV: &str = "CLOUDKIT_BENCH_RUNNER_ENV";

/// Parses [`EXTRA_ENV`]; a pair without `=` is an error naming it.
pub fn parse_extra_env(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "{EXTRA_ENV}: {pair:?} is not KEY=VALUE (e.g. LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so)"
            )),
        })
        .collect()
}

/// What `/metrics` says, the figures the bench reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scrape {
    pub reconciles: u64,
    pub reconcile_errors: u64,
    pub status_writes: u64,
    pub leader: bool,
    pub reconcile_seconds_sum: f64,
    pub reconcile_seconds_count: u64,
}

/// Memory and CPU of the process, from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcStats {
    /// Peak resident set (VmHWM), bytes.
    pub peak_rss: u64,
    /// Current resident set (VmRSS), bytes.
    pub rss: u64,
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
}

/// A running runner; SIGTERMed (then SIGKILLed) when dropped.
pub struct BenchRunner {
    child: Option<Child>,
    log: PathBuf,
    started: Instant,
    metrics_addr: Option<String>,
    http: reqwest::Client,
}

impl BenchRunner {
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        setup: &RunnerSetup,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let started = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .envs(environment(setup))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child: Some(child),
            log,
            started,
            metrics_addr: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The metrics address from the runner's log (waits for the line).
    pub async fn metrics_addr(&mut self, timeout: Duration) -> anyhow::Result<String> {
        if let Some(addr) = &self.metrics_addr {
            return Ok(addr.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(addr) = metrics_addr(&self.logs()) {
                self.metrics_addr = Some(addr.clone());
                return Ok(addr);
            }
            if let Some(status) = self.exited() {
                anyhow::bail!(
                    "the runner exited ({status}) before serving metrics:\n{}",
                    self.log_tail(20)
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the runner logged no {METRICS_LISTENING:?} line within {timeout:?}:\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads `/metrics` once.
    pub async fn scrape(&mut self) -> anyhow::Result<Scrape> {
        let addr = self.metrics_addr(Duration::from_secs(30)).await?;
        let text = self
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(parse_metrics(&text))
    }

    pub fn proc_stats(&self) -> anyhow::Result<ProcStats> {
        let pid = self.pid().context("the runner is not running")?;
        proc_stats(pid)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for BenchRunner {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The runner's figures in the OpenMetrics text.
pub fn parse_metrics(text: &str) -> Scrape {
    let value = |name: &str| -> f64 {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, rest) = l.split_once(' ')?;
                (key == name).then(|| rest.split_whitespace().next()?.parse().ok())?
            })
            .unwrap_or(0.0)
    };
    Scrape {
        reconciles: value("cloudkit_runner_reconciles_total") as u64,
        reconcile_errors: value("cloudkit_runner_reconcile_errors_total") as u64,
        status_writes: value("cloudkit_runner_status_writes_total") as u64,
        leader: value("cloudkit_runner_leader") >= 1.0,
        reconcile_seconds_sum: value("cloudkit_runner_reconcile_duration_seconds_sum"),
        reconcile_seconds_count: value("cloudkit_runner_reconcile_duration_seconds_count") as u64,
    }
}

/// VmHWM, VmRSS and utime + stime of `pid`.
pub fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(ProcStats {
        peak_rss: kib_field(&status, "VmHWM:").unwrap_or(0) * 1024,
        rss: kib_field(&status, "VmRSS:").unwrap_or(0) * 1024,
        cpu_seconds: cpu_seconds(&stat).context("parsing /proc/PID/stat")?,
    })
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`) in seconds.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) as f64 / ticks)
}

/// cloudkit-runner's default `CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS` (the library does
/// not link the runner; the burst's target would show a mismatch).
const RUNNER_DEFAULT_AAP_LIMIT: usize = 8;

/// The runner's `CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS` with `extra` in its environment.
pub fn limit_of(extra: &[(String, String)]) -> usize {
    extra
        .iter()
        .rev()
        .find(|(k, _)| k == "CLOUDKIT_AAP_MAX_CONCURRENT_REQUESTS")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(RUNNER_DEFAULT_AAP_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_env_is_key_value_pairs() {
        assert_eq!(
            parse_extra_env("  A=1 B=x=y C= ").unwrap(),
            [("A", "1"), ("B", "x=y"), ("C", "")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(parse_extra_env("").unwrap().is_empty());
        let err = parse_extra_env("A=1 LD_PRELOAD").unwrap_err();
        assert!(err.contains("\"LD_PRELOAD\" is not KEY=VALUE"), "{err}");
        assert!(parse_extra_env("=1").is_err());
    }

    #[test]
    fn metrics_are_parsed() {
        let text = "# HELP cloudkit_runner_reconciles Reconciles run\n# TYPE cloudkit_runner_reconciles counter\ncloudkit_runner_reconciles_total 1234\ncloudkit_runner_status_writes_total 0\ncloudkit_runner_leader 1\ncloudkit_runner_reconcile_duration_seconds_sum 0.5\ncloudkit_runner_reconcile_duration_seconds_count 1234\ncloudkit_runner_reconcile_duration_seconds_bucket{le=\"0.001\"} 3\n# EOF\n";
        let s = parse_metrics(text);
        assert_eq!(s.reconciles, 1234);
        assert_eq!(s.status_writes, 0);
        assert!(s.leader);
        assert_eq!(s.reconcile_seconds_count, 1234);
        assert!((s.reconcile_seconds_sum - 0.5).abs() < 1e-9);
    }

    #[test]
    fn cpu_seconds_skip_the_command_name() {
        // Fields 14 and 15 are 250 and 150 ticks.
        let stat =
            "42 (cloudkit runner) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 8 0 1 0 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        assert_eq!(cpu_seconds(stat), Some(400.0 / ticks));
    }
}
