//! The benchmarks at tiny sizes on the shared control plane: every figure is produced.
//! No timing is asserted; the figures themselves are for `testbed bench`.

use cloudkit_testbed::bench::{self, BenchOptions};
use cloudkit_testbed::control_plane::ControlPlane;
use cloudkit_testbed::stack::Progress;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_is_produced() -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await?;
    let report = bench::run(cp, &BenchOptions::smoke(), &Progress::new()).await?;
    let page = report.render();
    assert!(
        report.missing().is_empty(),
        "not measured: {:?}\n{page}",
        report.missing()
    );
    for section in [
        "Restart latency",
        "Settle time",
        "Runner memory",
        "Runner CPU",
        "AAP requests per poll tick",
        "Plugin wall time",
        "Plugin `list -A`",
        "Control plane memory",
        "Burst of instances",
        "Binary sizes",
        "Creating instances",
    ] {
        assert!(
            report.sections.iter().any(|s| s.title.starts_with(section)),
            "no {section:?} section:\n{page}"
        );
    }
    let figures = report.figures().count();
    // Settle (2), memory (1 + idle), CPU (1), restarts (3), creation (1), poll (1),
    // plugin (6), list (4), control plane memory (1), burst (4), sizes (2).
    assert!(figures >= 26, "{figures} figures:\n{page}");
    for f in report.figures() {
        assert!(
            !f.value.as_deref().unwrap_or_default().is_empty(),
            "{} has an empty value",
            f.what
        );
    }
    assert!(page.contains(cloudkit_testbed::control_plane::KUBERNETES_VERSION));
    assert!(page.contains(cloudkit_testbed::control_plane::ETCD_VERSION));
    Ok(())
}
