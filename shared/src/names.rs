//! Well-known names shared by the runner, the plugin, the playbooks and the tests.

/// API group of every cloudkit resource.
pub const GROUP: &str = "cloudkit.openshift.io";
/// API version of `ComputeInstance`.
pub const VERSION: &str = "v1alpha1";
/// Finalizer owned by the runner: held until deprovisioning is done.
pub const FINALIZER: &str = "cloudkit.openshift.io/computeinstance";
/// Finalizer set and removed by the EDA / AAP playbooks themselves.
pub const AAP_FINALIZER: &str = "cloudkit.openshift.io/computeinstance-aap";
/// Label on the KubeVirt VM (and VMI) that names the `ComputeInstance` it belongs to.
pub const INSTANCE_LABEL: &str = "cloudkit.openshift.io/computeinstance";
/// Annotation the provisioning template writes when the VM matches a config version.
pub const RECONCILED_CONFIG_VERSION_ANNOTATION: &str =
    "cloudkit.openshift.io/reconciled-config-version";
/// Field manager the runner uses for its status patches.
pub const RUNNER_FIELD_MANAGER: &str = "cloudkit-runner";
/// Field manager the plugin uses for its signal patches.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-cloudkit";
/// Key under `extra_vars` that carries the correlation key of a launch.
pub const CORRELATION_EXTRA_VAR: &str = "cloudkit_correlation_key";
/// Prefix of the job ids the runner gives EDA jobs (`eda-webhook-N`).
pub const EDA_JOB_ID_PREFIX: &str = "eda-webhook-";
/// Annotation that takes an instance out of cloudkit's hands (`unmanaged`, `manual`).
pub const MANAGEMENT_STATE_ANNOTATION: &str = "cloudkit.openshift.io/management-state";
/// Annotation naming the instance's tenant.
pub const TENANT_ANNOTATION: &str = "cloudkit.openshift.io/tenant";
