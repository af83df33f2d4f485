//! cloudkit-runner: turns `ComputeInstance` resources into AAP / EDA jobs, tracks them in
//! status, cancels before deprovisioning and restarts VMs through KubeVirt.
//!
//! The decisions live in `cloudkit_shared::plan`; this crate observes and acts.

pub mod aap;
