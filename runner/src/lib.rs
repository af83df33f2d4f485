//! cloudkit-runner: turns `ComputeInstance` resources into AAP / EDA jobs, tracks them in
//! status, cancels before deprovisioning and restarts VMs through KubeVirt.
//!
//! The decisions live in `cloudkit_shared::plan`; this crate observes, acts and writes status.
//!
//! Public: only what `main.rs` and the tests (`tests/`, `runner/tests/`) use; the rest is
//! crate-private, so the compiler finds what nothing uses.

pub mod aap;
pub(crate) mod act;
pub(crate) mod caches;
pub(crate) mod compact;
pub mod config;
pub(crate) mod context;
pub(crate) mod controller;
pub mod eda;
pub(crate) mod error;
pub(crate) mod fence;
pub mod http;
pub(crate) mod instances;
pub(crate) mod kubevirt;
pub(crate) mod kubevirt_cache;
pub mod leader;
pub(crate) mod list_page;
pub mod logs;
pub(crate) mod memo;
pub mod metrics;
pub(crate) mod observe;
pub(crate) mod poller;
pub mod readiness;
pub(crate) mod secret;
pub(crate) mod status;
pub(crate) mod tenants;
pub(crate) mod test_hook;
