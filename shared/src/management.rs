//! `cloudkit.openshift.io/management-state`: how much of an instance cloudkit manages.

use crate::instance::ComputeInstance;
use crate::names::MANAGEMENT_STATE_ANNOTATION;

/// What the annotation asks for, with the upstream operator's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagementState {
    /// No annotation (or any other value): cloudkit manages everything.
    Managed,
    /// `manual`: no provision or deprovision jobs; deletion releases the finalizer at once.
    Manual,
    /// `unmanaged`: the runner does not touch the instance at all.
    Unmanaged,
}

/// The instance's management state.
pub fn of(ci: &ComputeInstance) -> ManagementState {
    let value = ci
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MANAGEMENT_STATE_ANNOTATION));
    match value.map(|v| v.trim()) {
        Some("manual") => ManagementState::Manual,
        Some("unmanaged") => ManagementState::Unmanaged,
        _ => ManagementState::Managed,
    }
}
