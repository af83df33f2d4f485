//! Chaos at CI size: the scenario in `cloudkit_testbed::chaos` (runner SIGKILLs, AAP 5xx /
//! 429 / slow answers and slow cancels, one API server restart) must converge with no
//! duplicate job, no provision/deprovision overlap, no orphaned VM, no stuck instance and
//! bounded histories. Prints one line of figures. `testbed soak` runs it ten times larger.
//!
//! Size: `CLOUDKIT_CHAOS_INSTANCES` (default 12), seed: `CLOUDKIT_CHAOS_SEED`.

use cloudkit_testbed::chaos::{self, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_converges_without_duplicates_overlaps_or_orphans() -> anyhow::Result<()> {
    let report = chaos::run(Scenario::ci()).await?;
    println!("{report}");
    let problems = report.problems();
    assert!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}
