//! The wall clock as tests write it into a spec.

use cloudkit_shared::signals::whole_seconds;
use k8s_openapi::jiff::Timestamp;

/// Now, in whole seconds: what the plugin sends as a request time, and the precision
/// Kubernetes keeps, so a test compares the acknowledgement it reads back exactly.
pub fn now_secs() -> Timestamp {
    whole_seconds(Timestamp::now())
}
