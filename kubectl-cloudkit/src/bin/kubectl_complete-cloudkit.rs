//! `kubectl_complete-cloudkit WORD…`: kubectl runs this to complete `kubectl cloudkit WORD…`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let words = std::env::args().skip(1).collect();
    kubectl_cloudkit::complete::main(words).await
}
