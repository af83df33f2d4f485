//! kube-controller-manager beside the test API server, running only the two controllers
//! the tests rely on: the garbage collector (objects whose owners are gone) and the
//! namespace controller (a deleted namespace's contents, then the namespace itself).
//!
//! Identity: the user `system:kube-controller-manager`, as in a cluster, so its requests
//! read as the controller-manager's in the API server's log; in `system:masters`,
//! because with `--use-service-account-credentials=false` every controller acts as this
//! one user. The bootstrap ClusterRole of that name only lists and watches; in a cluster
//! the rights to delete any resource (custom ones included) and to finalize namespaces
//! come from per-controller service accounts, whose tokens only controllers this bed
//! does not run would mint.
//!
//! Delays that are Kubernetes' own, not the bed's: the namespace controller waits 5 s
//! after a namespace is marked for deletion before emptying it (so deleting a namespace
//! takes a little over 5 s), and the garbage collector reads the served resources at
//! start and then every 30 s (objects of a CRD a test creates itself are collected only
//! after its next look).

use std::path::Path;
use std::time::{Duration, Instant};

use super::Error;
use super::process::ServerProcess;

pub const USER: &str = "system:kube-controller-manager";
pub const GROUP: &str = "system:masters";

/// `--controllers` takes the controllers' short aliases...
const CONTROLLERS: &str = "garbagecollector,namespace";
/// ...and /healthz names them in full. A controller's check appears once it is built,
/// just before its informers and workers start.
const HEALTH_CHECKS: [&str; 2] = ["garbage-collector-controller", "namespace-controller"];

/// Where the controller-manager's files are and which port it serves on.
pub struct Setup<'a> {
    pub kubeconfig: &'a Path,
    pub port: u16,
    pub tls_cert: &'a Path,
    pub tls_key: &'a Path,
}

impl Setup<'_> {
    pub fn args(&self) -> Vec<String> {
        let d = |p: &Path| p.display().to_string();
        vec![
            // No --authentication-kubeconfig / --authorization-kubeconfig: its own
            // endpoint then serves only the always-allowed /healthz, /readyz and /livez,
            // all the bed asks for (with them it would keep logging that the API server
            // publishes no request-header CA).
            format!("--kubeconfig={}", d(self.kubeconfig)),
            format!("--controllers={CONTROLLERS}"),
            "--leader-elect=false".to_string(),
            "--use-service-account-credentials=false".to_string(),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={}", self.port),
            // The API server's own pair: for 127.0.0.1, signed by the serving CA the
            // bed's clients trust (without it, it would make up a self-signed one).
            format!("--tls-cert-file={}", d(self.tls_cert)),
            format!("--tls-private-key-file={}", d(self.tls_key)),
            // No --cloud-provider: the default is none.
        ]
    }
}

/// Waits until `/healthz?verbose` passes and lists both controllers, i.e. they are
/// built and their informers starting. (The garbage collector finishes its first list
/// of every resource a moment later; what changes before that is collected then.)
/// `client` must point at the controller-manager's port.
pub async fn wait_ready(
    process: &mut ServerProcess,
    client: &kube::Client,
    timeout: Duration,
    log_lines: usize,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut last_answer = String::from("none yet");
    loop {
        if let Some(status) = process.exited() {
            return Err(Error::Exited {
                name: process.name,
                status,
                logs: process.log_tail(log_lines),
            });
        }
        if started.elapsed() > timeout {
            return Err(Error::NotReady {
                name: process.name,
                endpoint: "/healthz?verbose",
                timeout,
                last_answer,
                logs: process.log_tail(log_lines),
            });
        }
        let request = http::Request::get("/healthz?verbose")
            .body(Vec::new())
            .expect("a valid request");
        match client.request_text(request).await {
            Ok(body) => match missing_checks(&body) {
                None => return Ok(()),
                Some(missing) => last_answer = format!("no passing check for {missing}"),
            },
            Err(e) => last_answer = e.to_string().replace('\n', "; "),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The controllers whose check is not `[+]NAME ok` in a verbose /healthz body.
fn missing_checks(body: &str) -> Option<String> {
    let missing: Vec<&str> = HEALTH_CHECKS
        .into_iter()
        .filter(|name| {
            !body
                .lines()
                .any(|line| line.trim() == format!("[+]{name} ok"))
        })
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_controllers_must_pass() {
        let early = "[+]ping ok\n[+]log ok\nhealthz check passed\n";
        assert_eq!(
            missing_checks(early).as_deref(),
            Some("garbage-collector-controller, namespace-controller")
        );
        let started = "[+]ping ok\n[+]garbage-collector-controller ok\n\
                       [+]namespace-controller ok\nhealthz check passed\n";
        assert_eq!(missing_checks(started), None);
    }
}
