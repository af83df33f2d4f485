//! cloudkit's shared core: the `ComputeInstance` API and every lifecycle decision as pure
//! functions, so the runner and the plugin never disagree. No I/O here.

pub mod conditions;
pub mod config_version;
pub mod eda;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod instance;
pub mod jobs;
pub mod lean_meta;
pub mod management;
pub mod names;
pub mod plan;
pub mod read;
pub mod reasons;
mod schema;
pub mod settings;
pub mod signals;
pub mod template_parameters;
pub mod tenant;
pub mod text;

pub use instance::{
    ComputeInstance, ComputeInstanceSpec, ComputeInstanceStatus, DeprovisionFailurePolicy,
    JobEntry, JobFailure, JobProvider, JobState, JobType, Phase, TenantReference,
    VirtualMachineReference,
};

/// Error turning the CRD into YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the ComputeInstance CRD as YAML: {0}")]
pub struct CrdError(#[from] serde_saphyr::SerializeError);

/// The `ComputeInstance` CustomResourceDefinition as YAML (what `crdgen` prints).
pub fn crd_yaml() -> Result<String, CrdError> {
    use kube::CustomResourceExt;
    Ok(serde_saphyr::to_string(&ComputeInstance::crd())?)
}

/// The `Tenant` CustomResourceDefinition as YAML (what `crdgen tenant` prints).
pub fn tenant_crd_yaml() -> Result<String, CrdError> {
    use kube::CustomResourceExt;
    Ok(serde_saphyr::to_string(&tenant::Tenant::crd())?)
}
