//! `kubectl-cloudkit`: run by kubectl as `kubectl cloudkit …`. Everything lives in the lib.

use std::process::ExitCode;

// One thread: the plugin makes a handful of sequential requests, and a single-threaded
// runtime starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    kubectl_cloudkit::run(std::env::args_os()).await
}
