//! `kubectl cloudkit describe NAME`: everything a person needs about one instance, on one screen.

use cloudkit_shared::conditions as cond;
use cloudkit_shared::signals::{Signal, signal};
use cloudkit_shared::template_parameters;
use cloudkit_shared::{ComputeInstance, ComputeInstanceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::cli::NameArg;
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::output::Output;
use crate::render::{self, Cell, Paint, Palette};

/// Jobs shown; `kubectl cloudkit jobs` has the rest.
const RECENT_JOBS: usize = 5;

pub async fn run(target: &Target, args: &NameArg, out: &Output) -> Result<(), Error> {
    let ci = Instances::namespaced(target).get(&args.name).await?;
    if out.format.is_data() {
        return crate::print_object(&ci, out);
    }
    out.data(&render(&ci, Timestamp::now(), out.palette))
}

pub fn render(ci: &ComputeInstance, now: Timestamp, palette: Palette) -> String {
    let empty = ComputeInstanceStatus::default();
    let status = ci.status.as_ref().unwrap_or(&empty);
    let dash = || "-".to_string();
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", ci.metadata.name.clone().unwrap_or_default()),
        (
            "Namespace",
            ci.metadata.namespace.clone().unwrap_or_default(),
        ),
        ("Template", ci.spec.template_id.clone()),
        (
            "Parameters",
            parameters(ci.spec.template_parameters.as_deref()),
        ),
        (
            "Phase",
            status.phase.map_or_else(
                || "- (not seen by the runner yet)".into(),
                |p| palette.paint(&p.to_string(), render::phase_paint(Some(p))),
            ),
        ),
        (
            "Created",
            ci.metadata
                .creation_timestamp
                .as_ref()
                .map_or_else(dash, |t| at_and_age(t, now)),
        ),
    ];
    if let Some(t) = &ci.metadata.deletion_timestamp {
        fields.push(("Deleting since", at_and_age(t, now)));
    }
    fields.push((
        "VM",
        status.virtual_machine_reference.as_ref().map_or_else(
            || "- (none yet)".into(),
            |r| format!("{}/{}", r.namespace, r.kube_virt_virtual_machine_name),
        ),
    ));
    fields.push(("Config", config_line(status)));
    if let Some(tenant) = tenant_line(ci) {
        fields.push(("Tenant", tenant));
    }

    let mut text = String::new();
    for (label, value) in &fields {
        text.push_str(&format!("{:<15}{value}\n", format!("{label}:")));
    }

    let requests = pending_requests(ci, now);
    if requests.is_empty() {
        text.push_str("Requests:      none pending\n");
    } else {
        text.push_str("Requests:\n");
        for line in requests {
            text.push_str(&format!("  {line}\n"));
        }
    }

    if status.conditions.is_empty() {
        text.push_str("Conditions:    none\n");
    } else {
        text.push_str("Conditions:\n");
        let rows: Vec<Vec<Cell>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    Cell::from(c.type_.as_str()),
                    Cell::painted(c.status.as_str(), condition_paint(c)),
                    Cell::from(c.reason.as_str()),
                    Cell::from(render::age(now, c.last_transition_time.0)),
                    Cell::from(c.message.as_str()),
                ]
            })
            .collect();
        let table = render::table(
            &["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"],
            &rows,
            palette,
        );
        text.push_str(&indent(&table));
    }

    let total = status.jobs.len();
    if total == 0 {
        text.push_str("Jobs:          none yet\n");
    } else {
        let recent: Vec<_> = crate::jobs::newest_first(&status.jobs)
            .into_iter()
            .take(RECENT_JOBS)
            .rev()
            .cloned()
            .collect();
        if total > RECENT_JOBS {
            text.push_str(&format!(
                "Jobs (last {RECENT_JOBS} of {total}; kubectl cloudkit jobs {} for all):\n",
                ci.metadata.name.as_deref().unwrap_or_default()
            ));
        } else {
            text.push_str("Jobs:\n");
        }
        text.push_str(&indent(&crate::jobs::table(&recent, now, false, palette)));
        // Failures of the recent jobs, and the newest job's page.
        for (i, job) in recent.iter().rev().enumerate() {
            let id = job.job_id.as_deref().unwrap_or("-");
            if let Some(failure) = &job.failure {
                text.push_str(&format!(
                    "Failed at:     {} job {id}: {}\n",
                    job.job_type,
                    failure.summary()
                ));
            }
            if let Some(url) = job.url.as_ref().filter(|_| i == 0 || job.failure.is_some()) {
                text.push_str(&format!("Job page:      {url}\n"));
            }
        }
    }
    text
}

/// `spec.templateParameters` decoded, one `key=value` per parameter (values as JSON).
fn parameters(raw: Option<&str>) -> String {
    match template_parameters::decode(raw) {
        Ok(map) if map.is_empty() => "none".into(),
        Ok(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("unreadable: {e}"),
    }
}

/// The tenant annotation and the Tenant object the runner recorded for it.
fn tenant_line(ci: &ComputeInstance) -> Option<String> {
    let name = ci
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(cloudkit_shared::names::TENANT_ANNOTATION));
    let reference = ci.status.as_ref().and_then(|s| s.tenant_reference.as_ref());
    match (name, reference) {
        (None, None) => None,
        (Some(n), None) => Some(format!("{n} (no Tenant object yet)")),
        (name, Some(r)) => Some(format!(
            "{} (Tenant {}/{})",
            name.map_or("-", String::as_str),
            r.namespace,
            r.name
        )),
    }
}

fn at_and_age(t: &Time, now: Timestamp) -> String {
    format!("{} ({} ago)", render::timestamp(t.0), render::age(now, t.0))
}

fn config_line(status: &ComputeInstanceStatus) -> String {
    let desired = status.desired_config_version.as_deref();
    let reconciled = status.reconciled_config_version.as_deref();
    let verdict = match (desired, reconciled) {
        (None, _) => "",
        (Some(d), Some(r)) if d == r => " (up to date)",
        _ => " (not reconciled yet)",
    };
    format!(
        "desired {}, reconciled {}{verdict}",
        desired.unwrap_or("-"),
        reconciled.unwrap_or("-")
    )
}

/// Signals written in spec that the runner has not finished with.
pub fn pending_requests(ci: &ComputeInstance, now: Timestamp) -> Vec<String> {
    let status = ci.status.as_ref();
    let spec = &ci.spec;
    let t = |t: Option<&Time>| t.map(|t| t.0);
    let signals = [
        (
            "restart",
            t(spec.restart_requested_at.as_ref()),
            crate::restart::last_request(ci),
        ),
        (
            "cancel",
            t(spec.cancel_requested_at.as_ref()),
            status.and_then(|s| t(s.last_cancel_requested_at.as_ref())),
        ),
        (
            "provision",
            t(spec.provision_requested_at.as_ref()),
            status.and_then(|s| t(s.last_provision_requested_at.as_ref())),
        ),
    ];
    signals
        .into_iter()
        .filter_map(
            |(what, requested, acked)| match signal(requested, acked, now) {
                Signal::Scheduled(at) => Some(format!(
                    "{what} scheduled for {at} (in {})",
                    render::human(at.duration_since(now).as_secs())
                )),
                Signal::Due(at) => Some(format!(
                    "{what} requested at {at}: not acknowledged by the runner yet"
                )),
                Signal::Absent | Signal::Done => None,
            },
        )
        .collect()
}

fn condition_paint(c: &Condition) -> Paint {
    let truthy = c.status == "True";
    match c.type_.as_str() {
        cond::AVAILABLE if truthy => Paint::Green,
        cond::AVAILABLE => Paint::Yellow,
        cond::RESTART_FAILED | cond::DEPROVISION_FAILED if truthy => Paint::Red,
        _ => Paint::None,
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::history;
    use cloudkit_shared::fixtures::{self, t};
    use cloudkit_shared::{ComputeInstanceSpec, Phase, VirtualMachineReference};

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        fixtures::condition(type_, status, reason, message, t("2026-11-22T10:04:17Z"))
    }

    fn sample() -> ComputeInstance {
        let mut ci = ComputeInstance::new(
            "vm-1",
            ComputeInstanceSpec {
                template_id: "small_vm".into(),
                template_parameters: Some(r#"{"cpu_cores": 2, "disk": "20Gi"}"#.into()),
                restart_requested_at: Some(t("2026-11-22T13:00:00Z")),
                cancel_requested_at: Some(t("2026-11-22T11:59:30Z")),
                ..Default::default()
            },
        );
        ci.metadata.namespace = Some("team-a".into());
        ci.metadata.creation_timestamp = Some(t("2026-11-22T09:59:00Z"));
        let mut jobs = history();
        // Two more so the section says how many are left out.
        jobs.insert(0, jobs[0].clone());
        jobs.insert(0, jobs[0].clone());
        ci.status = Some(ComputeInstanceStatus {
            phase: Some(Phase::Running),
            conditions: vec![
                condition(
                    "Accepted",
                    "True",
                    "Accepted",
                    "the runner accepted the instance",
                ),
                condition(
                    "Available",
                    "True",
                    "Provisioned",
                    "VirtualMachine team-a/vm-1 is provisioned at config version 00ff",
                ),
            ],
            jobs,
            virtual_machine_reference: Some(VirtualMachineReference {
                namespace: "team-a".into(),
                kube_virt_virtual_machine_name: "vm-1".into(),
            }),
            desired_config_version: Some("00ff".into()),
            reconciled_config_version: Some("00ff".into()),
            last_cancel_requested_at: Some(t("2026-11-22T09:00:00Z")),
            ..Default::default()
        });
        ci
    }

    #[test]
    fn golden_describe() {
        let golden = "\
Name:          vm-1
Namespace:     team-a
Template:      small_vm
Parameters:    cpu_cores=2, disk=\"20Gi\"
Phase:         Running
Created:       2026-11-22T09:59:00Z (121m ago)
VM:            team-a/vm-1
Config:        desired 00ff, reconciled 00ff (up to date)
Requests:
  restart scheduled for 2026-11-22T13:00:00Z (in 60m)
  cancel requested at 2026-11-22T11:59:30Z: not acknowledged by the runner yet
Conditions:
  TYPE        STATUS   REASON        AGE    MESSAGE
  Accepted    True     Accepted      115m   the runner accepted the instance
  Available   True     Provisioned   115m   VirtualMachine team-a/vm-1 is provisioned at config version 00ff
Jobs (last 5 of 7; kubectl cloudkit jobs vm-1 for all):
  ID              TYPE          STATE       STARTED   DURATION   MESSAGE
  (launching)     deprovision   Pending     -         -          deprovision requested; launching
  restart-1       restart       Running     10m       10m0s      deleted VMI abc; waiting for KubeVirt to start a new one
  eda-webhook-3   provision     Canceled    99m       1m0s       canceled by request
  102             provision     Failed      -         30s        template not found
  101             provision     Succeeded   119m      4m12s      provision job 101 launched
";
        assert_eq!(render(&sample(), now(), Palette::PLAIN), golden);
    }

    #[test]
    fn fresh_instance_reads_plainly() {
        let mut ci = ComputeInstance::new(
            "new",
            ComputeInstanceSpec {
                template_id: "t".into(),
                ..Default::default()
            },
        );
        ci.metadata.namespace = Some("ns".into());
        let golden = "\
Name:          new
Namespace:     ns
Template:      t
Parameters:    none
Phase:         - (not seen by the runner yet)
Created:       -
VM:            - (none yet)
Config:        desired -, reconciled -
Requests:      none pending
Conditions:    none
Jobs:          none yet
";
        assert_eq!(render(&ci, now(), Palette::PLAIN), golden);
    }

    #[test]
    fn colour_only_with_colour() {
        assert!(!render(&sample(), now(), Palette::PLAIN).contains('\u{1b}'));
        let coloured = render(&sample(), now(), Palette::COLOUR);
        assert!(
            coloured.contains("\u{1b}[32mRunning\u{1b}[39m"),
            "{coloured}"
        );
    }

    #[test]
    fn acknowledged_requests_are_not_pending() {
        let mut ci = sample();
        let status = ci.status.as_mut().unwrap();
        status.last_restarted_at = Some(t("2026-11-22T13:00:00Z"));
        status.last_cancel_requested_at = Some(t("2026-11-22T11:59:30Z"));
        assert!(pending_requests(&ci, now()).is_empty());
    }
}

#[cfg(test)]
mod parameter_tests {
    #[test]
    fn unreadable_parameters_are_named() {
        let line = super::parameters(Some("[1, 2]"));
        assert!(
            line.starts_with("unreadable: spec.templateParameters holds a JSON array"),
            "{line}"
        );
    }
}
