//! What the figures were measured on: the machine (from /proc) and the versions.

use std::process::Command;

use crate::control_plane::{ETCD_VERSION, KUBERNETES_VERSION};

/// The machine, read from `/proc`.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_kib: u64,
    /// `/proc/loadavg` when the run started and when it ended: other work on the machine.
    pub load_at_start: String,
    pub load_at_end: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = kib_field(&meminfo, "MemTotal:").unwrap_or(0);
        Self {
            cores,
            cpu_model,
            memory_kib,
            load_at_start: load_average(),
            load_at_end: String::new(),
        }
    }

    pub fn memory_gib(&self) -> f64 {
        self.memory_kib as f64 / (1024.0 * 1024.0)
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// A `Name:   1234 kB` field of a /proc file, in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Versions of everything measured.
#[derive(Clone, Debug)]
pub struct Versions {
    pub cloudkit: String,
    pub runner: String,
    pub kubernetes: &'static str,
    pub etcd: &'static str,
    pub kubectl: String,
    pub rustc: String,
}

impl Versions {
    pub fn read(runner: String) -> Self {
        let commit = output("git", &["rev-parse", "--short", "HEAD"]);
        let cloudkit = match commit {
            Some(c) => format!("{} (commit {c})", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_string(),
        };
        let kubectl = output("kubectl", &["version", "--client", "-o", "json"])
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
            .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(String::from))
            .unwrap_or_else(|| "not found".into());
        let rustc = output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into());
        Self {
            cloudkit,
            runner,
            kubernetes: KUBERNETES_VERSION,
            etcd: ETCD_VERSION,
            kubectl,
            rustc,
        }
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(kib_field(status, "VmHWM:"), Some(12345));
        assert_eq!(kib_field(status, "VmRSS:"), Some(100));
        assert_eq!(kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_machine_has_cores_and_memory() {
        let m = Machine::read();
        assert!(m.cores >= 1);
        assert!(m.memory_kib > 0);
    }
}
