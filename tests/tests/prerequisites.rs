//! End to end: a runner that may not read KubeVirt (its RBAC rules left out, as when the
//! CRDs are missing) says so where users look — `/readyz`, one log line per missing
//! resource naming the fix, and a Warning Event on each instance it cannot serve.

use std::time::{Duration, Instant};

use cloudkit_testbed::bed::Bed;
use cloudkit_testbed::limited_identity;
use cloudkit_testbed::runner_process::metrics_addr;
use cloudkit_testbed::wait::RUNNER as WAIT;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kubevirt_access_is_in_readyz_the_log_and_an_event() -> anyhow::Result<()> {
    let mut bed = Bed::without_runner("prereq").await?;
    let kubeconfig = limited_identity::without_kubevirt(&bed).await?;
    bed.start_runner_as(&kubeconfig, vec![])?;
    let ci = bed.create_default("vm-1").await?;
    let uid = ci.uid().expect("created");

    // The Event on the instance (the runner leads, reads instances, cannot read VMs).
    let events: Api<Event> = Api::namespaced(bed.client.clone(), &bed.namespace);
    let deadline = Instant::now() + WAIT;
    let asked = Instant::now();
    let event = loop {
        let found = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("PrerequisiteMissing")
                    && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str())
            });
        if let Some(e) = found {
            println!("the Event came {:?} after the instance", asked.elapsed());
            break e;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no PrerequisiteMissing event:\n{}",
            bed.runner_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let note = event.note.unwrap_or_default();
    println!("event: {note}");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        note.contains("virtualmachine") && note.contains("kubevirt.io"),
        "{note}"
    );
    assert!(note.contains("install KubeVirt"), "names the fix: {note}");

    // /readyz says what is missing.
    let addr = metrics_addr(&bed.runner_logs()).expect("metrics address logged");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await?;
    assert_eq!(ready.status(), 503);
    let body = ready.text().await?;
    println!("/readyz: {body}");
    assert!(
        body.contains("kubevirt.io") && body.contains("not allowed"),
        "{body}"
    );

    // One ERROR line per missing resource, however often its watch is retried (the
    // Controller backs off all its watches together after an error, so the second
    // resource may not have been tried yet).
    let logs = bed.runner_logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("cannot watch"))
        .collect();
    for line in &errors {
        println!("log: {line}");
    }
    assert!(
        !errors.is_empty(),
        "a log line names the missing resource:\n{logs}"
    );
    for resource in [
        "virtualmachines.kubevirt.io",
        "virtualmachineinstances.kubevirt.io",
    ] {
        let n = errors
            .iter()
            .filter(|l| l.contains(&format!("cannot watch {resource}:")))
            .count();
        assert!(n <= 1, "at most one line for {resource}:\n{logs}");
    }
    Ok(())
}
