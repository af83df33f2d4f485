//! `kubectl cloudkit list [-A] [-l SELECTOR]`: instances with their phase and last job.

use cloudkit_shared::ComputeInstance;
use k8s_openapi::jiff::Timestamp;

use crate::cli::{ListArgs, OutputFormat};
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::output::Output;
use crate::render::{self, Cell, Palette};

pub async fn run(target: &Target, args: &ListArgs, out: &Output) -> Result<(), Error> {
    let instances = if args.all_namespaces {
        Instances::all(target)
    } else {
        Instances::namespaced(target)
    };
    let items = instances.list(args.selector.as_deref()).await?;
    match out.format {
        OutputFormat::Json | OutputFormat::Yaml => crate::print_list(&items, out),
        format => {
            if items.is_empty() {
                // kubectl's wording, on stderr so a pipe sees an empty list.
                match instances.namespace {
                    Some(ns) => eprintln!("No computeinstances found in {ns} namespace."),
                    None => eprintln!("No computeinstances found."),
                }
                return Ok(());
            }
            out.data(&table(
                &items,
                Timestamp::now(),
                args.all_namespaces,
                format == OutputFormat::Wide,
                out.palette,
            ))
        }
    }
}

/// NAMESPACE (with -A), NAME, TEMPLATE, PHASE, LAST JOB, JOB STATE, AGE; wide adds TENANT, VM
/// (namespace/name: a tenant's VM lives in the tenant's namespace) and CONFIG.
pub fn table(
    items: &[ComputeInstance],
    now: Timestamp,
    all_namespaces: bool,
    wide: bool,
    palette: Palette,
) -> String {
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "TEMPLATE", "PHASE", "LAST JOB", "JOB STATE", "AGE"]);
    if wide {
        header.extend(["TENANT", "VM", "CONFIG"]);
    }
    let rows: Vec<Vec<Cell>> = items
        .iter()
        .map(|ci| {
            let status = ci.status.as_ref();
            let phase = status.and_then(|s| s.phase);
            // The history is kept oldest first: the last entry is the newest job.
            let last = status.and_then(|s| s.jobs.last());
            let mut row = Vec::new();
            if all_namespaces {
                row.push(Cell::from(
                    ci.metadata.namespace.clone().unwrap_or_default(),
                ));
            }
            row.extend([
                Cell::from(ci.metadata.name.clone().unwrap_or_default()),
                Cell::from(ci.spec.template_id.clone()),
                Cell::painted(
                    phase.map_or_else(|| "-".into(), |p| p.to_string()),
                    render::phase_paint(phase),
                ),
                Cell::from(last.map_or_else(
                    || "-".into(),
                    |j| format!("{} {}", j.job_type, crate::jobs::id_cell(j)),
                )),
                last.map_or_else(
                    || Cell::from("-"),
                    |j| Cell::painted(j.state.to_string(), render::state_paint(j.state)),
                ),
                Cell::from(
                    ci.metadata
                        .creation_timestamp
                        .as_ref()
                        .map_or_else(|| "-".into(), |t| render::age(now, t.0)),
                ),
            ]);
            if wide {
                let vm = status
                    .and_then(|s| s.virtual_machine_reference.as_ref())
                    .map_or_else(
                        || "-".into(),
                        |r| format!("{}/{}", r.namespace, r.kube_virt_virtual_machine_name),
                    );
                let config = match status.map(|s| {
                    (
                        s.desired_config_version.as_deref(),
                        s.reconciled_config_version.as_deref(),
                    )
                }) {
                    Some((Some(d), Some(r))) if d == r => "reconciled",
                    Some((Some(_), _)) => "pending",
                    _ => "-",
                };
                let tenant = ci
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(cloudkit_shared::names::TENANT_ANNOTATION))
                    .cloned()
                    .unwrap_or_else(|| "-".into());
                row.extend([Cell::from(tenant), Cell::from(vm), Cell::from(config)]);
            }
            row
        })
        .collect();
    render::table(&header, &rows, palette)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::history;
    use cloudkit_shared::fixtures::t;
    use cloudkit_shared::{ComputeInstanceSpec, ComputeInstanceStatus, Phase};

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn items() -> Vec<ComputeInstance> {
        let mut a = ComputeInstance::new(
            "vm-a",
            ComputeInstanceSpec {
                template_id: "small".into(),
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("team-a".into());
        a.metadata.creation_timestamp = Some(t("2026-11-22T09:00:00Z"));
        let mut jobs = history();
        jobs.truncate(3);
        a.status = Some(ComputeInstanceStatus {
            phase: Some(Phase::Canceled),
            jobs,
            desired_config_version: Some("1".into()),
            reconciled_config_version: Some("0".into()),
            ..Default::default()
        });
        let mut b = ComputeInstance::new(
            "vm-bb",
            ComputeInstanceSpec {
                template_id: "large_vm".into(),
                ..Default::default()
            },
        );
        b.metadata.namespace = Some("team-b".into());
        b.metadata.creation_timestamp = Some(t("2026-11-22T11:59:20Z"));
        vec![a, b]
    }

    #[test]
    fn golden_list() {
        let golden = "\
NAME    TEMPLATE   PHASE      LAST JOB                  JOB STATE   AGE
vm-a    small      Canceled   provision eda-webhook-3   Canceled    3h
vm-bb   large_vm   -          -                         -           40s
";
        assert_eq!(table(&items(), now(), false, false, Palette::PLAIN), golden);
    }

    #[test]
    fn golden_list_all_namespaces_wide() {
        let golden = "\
NAMESPACE   NAME    TEMPLATE   PHASE      LAST JOB                  JOB STATE   AGE   TENANT   VM   CONFIG
team-a      vm-a    small      Canceled   provision eda-webhook-3   Canceled    3h    -        -    pending
team-b      vm-bb   large_vm   -          -                         -           40s   -        -    -
";
        assert_eq!(table(&items(), now(), true, true, Palette::PLAIN), golden);
    }

    #[test]
    fn colour_only_with_colour() {
        assert!(!table(&items(), now(), true, false, Palette::PLAIN).contains('\u{1b}'));
        let coloured = table(&items(), now(), true, false, Palette::COLOUR);
        assert!(
            coloured.contains("\u{1b}[33mCanceled\u{1b}[39m"),
            "{coloured}"
        );
    }

    #[test]
    fn json_and_yaml_lists_round_trip() {
        let items = items();
        let json = crate::list_document(&items);
        let text = render::json(&json).unwrap();
        let back: kube::core::ObjectList<ComputeInstance> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.items, items);
        let text = render::yaml(&json).unwrap();
        let back: kube::core::ObjectList<ComputeInstance> = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back.items, items);
    }
}
