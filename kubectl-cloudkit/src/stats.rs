//! `kubectl cloudkit stats [NAME…|-A]`: how long provisioning and deprovisioning take, per
//! provider, from the job histories the runner keeps (succeeded jobs only: a failed or
//! canceled job's run time says nothing about how long the work takes).

use std::collections::BTreeMap;

use cloudkit_shared::{ComputeInstance, JobProvider, JobState, JobType};
use serde::{Deserialize, Serialize};

use crate::cli::{OutputFormat, StatsArgs};
use crate::client::{Instances, Target};
use crate::error::Error;
use crate::output::Output;
use crate::render::{self, Cell, Palette};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Instances whose histories were read.
    pub instances: usize,
    pub groups: Vec<Group>,
}

/// Durations of one job type run by one provider, in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub provider: JobProvider,
    pub count: usize,
    pub p50_seconds: i64,
    pub p95_seconds: i64,
    pub max_seconds: i64,
}

pub async fn run(target: &Target, args: &StatsArgs, out: &Output) -> Result<(), Error> {
    let items = if args.names.is_empty() {
        let instances = if args.all_namespaces {
            Instances::all(target)
        } else {
            Instances::namespaced(target)
        };
        instances.list(args.selector.as_deref()).await?
    } else {
        let instances = Instances::namespaced(target);
        let mut items = Vec::new();
        for name in &args.names {
            items.push(instances.get(name).await?);
        }
        items
    };
    let stats = compute(&items);
    match out.format {
        OutputFormat::Json => out.data(&render::json(&stats)?),
        OutputFormat::Yaml => out.data(&render::yaml(&stats)?),
        _ if stats.groups.is_empty() => {
            eprintln!(
                "No succeeded provision or deprovision jobs in the histories of {} computeinstance(s).",
                stats.instances
            );
            Ok(())
        }
        _ => out.data(&table(&stats, out.palette)),
    }
}

/// Groups succeeded provision / deprovision jobs by type and provider; duration is
/// finish minus start, or minus creation when the provider never reported a start.
pub fn compute(items: &[ComputeInstance]) -> Stats {
    let mut groups: BTreeMap<(JobType, String), (JobProvider, Vec<i64>)> = BTreeMap::new();
    for ci in items {
        for job in crate::jobs::jobs_of(ci) {
            if job.job_type == JobType::Restart || job.state != JobState::Succeeded {
                continue;
            }
            let Some(finish) = &job.finish_time else {
                continue;
            };
            let start = job.start_time.as_ref().unwrap_or(&job.timestamp);
            let secs = finish.0.duration_since(start.0).as_secs().max(0);
            groups
                .entry((job.job_type, job.provider.to_string()))
                .or_insert_with(|| (job.provider, Vec::new()))
                .1
                .push(secs);
        }
    }
    let groups = groups
        .into_iter()
        .map(|((job_type, _), (provider, mut secs))| {
            secs.sort_unstable();
            Group {
                job_type,
                provider,
                count: secs.len(),
                p50_seconds: percentile(&secs, 50),
                p95_seconds: percentile(&secs, 95),
                max_seconds: secs.last().copied().unwrap_or(0),
            }
        })
        .collect();
    Stats {
        instances: items.len(),
        groups,
    }
}

/// Nearest-rank percentile of sorted values: an observed value, never an interpolation.
pub fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

pub fn table(stats: &Stats, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = stats
        .groups
        .iter()
        .map(|g| {
            vec![
                Cell::from(g.job_type.to_string()),
                Cell::from(g.provider.to_string()),
                Cell::from(g.count.to_string()),
                Cell::from(render::duration(g.p50_seconds)),
                Cell::from(render::duration(g.p95_seconds)),
                Cell::from(render::duration(g.max_seconds)),
            ]
        })
        .collect();
    render::table(
        &["TYPE", "PROVIDER", "COUNT", "P50", "P95", "MAX"],
        &rows,
        palette,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudkit_shared::ComputeInstanceStatus;
    use cloudkit_shared::fixtures::{instance, job, t};

    fn done(
        job_type: JobType,
        provider: JobProvider,
        state: JobState,
        created: &str,
        start: Option<&str>,
        finish: &str,
    ) -> cloudkit_shared::JobEntry {
        let mut j = job(Some("1"), job_type, state, t(created));
        j.provider = provider;
        j.start_time = start.map(t);
        j.finish_time = Some(t(finish));
        j
    }

    fn with_jobs(jobs: Vec<cloudkit_shared::JobEntry>) -> ComputeInstance {
        instance(
            "x",
            ComputeInstanceStatus {
                jobs,
                ..Default::default()
            },
        )
    }

    fn sample() -> Vec<ComputeInstance> {
        use JobProvider::{Aap, Eda};
        use JobState::{Failed, Succeeded};
        use JobType::{Deprovision, Provision, Restart};
        let base = "2026-11-22T10:00:00Z";
        vec![
            with_jobs(vec![
                // 60s, measured from the start.
                done(
                    Provision,
                    Aap,
                    Succeeded,
                    base,
                    Some("2026-11-22T10:00:10Z"),
                    "2026-11-22T10:01:10Z",
                ),
                // 120s, measured from creation (no start reported).
                done(
                    Provision,
                    Aap,
                    Succeeded,
                    base,
                    None,
                    "2026-11-22T10:02:00Z",
                ),
                // Failed and restart jobs are left out.
                done(Provision, Aap, Failed, base, None, "2026-11-22T10:00:01Z"),
                done(
                    Restart,
                    JobProvider::Kubevirt,
                    Succeeded,
                    base,
                    None,
                    "2026-11-22T10:00:30Z",
                ),
            ]),
            with_jobs(vec![
                done(
                    Provision,
                    Aap,
                    Succeeded,
                    base,
                    Some(base),
                    "2026-11-22T10:05:00Z",
                ),
                done(
                    Provision,
                    Eda,
                    Succeeded,
                    base,
                    Some(base),
                    "2026-11-22T10:00:45Z",
                ),
                done(
                    Deprovision,
                    Aap,
                    Succeeded,
                    base,
                    Some(base),
                    "2026-11-22T10:00:30Z",
                ),
            ]),
            with_jobs(vec![]),
        ]
    }

    #[test]
    fn groups_by_type_and_provider() {
        let stats = compute(&sample());
        assert_eq!(stats.instances, 3);
        let summary: Vec<_> = stats
            .groups
            .iter()
            .map(|g| {
                (
                    g.job_type,
                    g.provider,
                    g.count,
                    g.p50_seconds,
                    g.p95_seconds,
                    g.max_seconds,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (JobType::Provision, JobProvider::Aap, 3, 120, 300, 300),
                (JobType::Provision, JobProvider::Eda, 1, 45, 45, 45),
                (JobType::Deprovision, JobProvider::Aap, 1, 30, 30, 30),
            ]
        );
    }

    #[test]
    fn golden_table() {
        let golden = "\
TYPE          PROVIDER   COUNT   P50    P95    MAX
provision     aap        3       2m0s   5m0s   5m0s
provision     eda        1       45s    45s    45s
deprovision   aap        1       30s    30s    30s
";
        assert_eq!(table(&compute(&sample()), Palette::PLAIN), golden);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 95), 95);
        assert_eq!(percentile(&[7], 95), 7);
        assert_eq!(percentile(&[1, 2], 50), 1);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn json_and_yaml_round_trip() {
        let stats = compute(&sample());
        let json = render::json(&stats).unwrap();
        assert!(json.contains("\"p95Seconds\": 300"), "{json}");
        assert!(json.contains("\"type\": \"provision\""), "{json}");
        assert_eq!(serde_json::from_str::<Stats>(&json).unwrap(), stats);
        let yaml = render::yaml(&stats).unwrap();
        assert_eq!(serde_saphyr::from_str::<Stats>(&yaml).unwrap(), stats);
    }
}
