//! cloudkit-runner: turns `ComputeInstance` resources into AAP / EDA jobs, tracks them in
//! status, cancels before deprovisioning and restarts VMs through KubeVirt.
//!
//! The decisions live in `cloudkit_shared::plan`; this crate observes, acts and writes status.

pub mod aap;
pub mod act;
pub mod caches;
pub mod config;
pub mod context;
pub mod controller;
pub mod eda;
pub mod error;
pub mod fence;
pub mod http;
pub mod instances;
pub mod kubevirt;
pub mod leader;
pub mod logs;
pub mod memo;
pub mod metrics;
pub mod observe;
pub mod poller;
pub mod readiness;
pub mod secret;
pub mod status;
pub mod tenants;
pub mod test_hook;
