//! The `ComputeInstance` custom resource (`cloudkit.openshift.io/v1alpha1`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request for one virtual machine, provisioned by an AAP job template.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cloudkit.openshift.io",
    version = "v1alpha1",
    kind = "ComputeInstance",
    plural = "computeinstances",
    shortname = "ci",
    namespaced,
    status = "ComputeInstanceStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A virtual machine provisioned and deprovisioned through Ansible Automation Platform jobs.",
    printcolumn = r#"{"name": "Template", "type": "string", "jsonPath": ".spec.templateID"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Last Job", "type": "string", "jsonPath": ".status.jobs[-1:].type"}"#,
    printcolumn = r#"{"name": "Job State", "type": "string", "jsonPath": ".status.jobs[-1:].state"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ComputeInstanceSpec {
    /// Name of the provisioning template (an AAP job or workflow template suffix).
    #[serde(rename = "templateID")]
    #[schemars(regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9._]*$"))]
    pub template_id: String,

    /// The template's parameters: a JSON-encoded object in a string (`{"cpu_cores": 2}`), as
    /// the OSAC fulfillment-service writes it; templates decode it with `from_json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_parameters: Option<String>,

    /// Signal: restart the VM once this time is reached and later than `status.lastRestartedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_requested_at: Option<Time>,

    /// Signal: cancel the active provision job in place (the instance is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<Time>,

    /// Signal: provision again after a cancel or a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_requested_at: Option<Time>,

    /// What deletion does when deprovisioning keeps failing (default `Block`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision_failure_policy: Option<DeprovisionFailurePolicy>,
}

/// Whether a failing deprovision keeps the resource (and its finalizer) around.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeprovisionFailurePolicy {
    /// Keep retrying; the resource stays until deprovisioning succeeds (upstream's AAP default).
    #[default]
    Block,
    /// After the retries are used up, remove the finalizer and let deletion finish.
    Proceed,
}

/// Observed state, written only by the runner.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputeInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// Job history, oldest first, bounded by `CLOUDKIT_MAX_JOB_HISTORY`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::jobs::deserialize_history"
    )]
    pub jobs: Vec<JobEntry>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine_reference: Option<VirtualMachineReference>,

    /// The Tenant object of the instance's tenant (not the VM's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_reference: Option<TenantReference>,

    /// FNV-1a 64 (hex) of the spec without signal and policy fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config_version: Option<String>,

    /// The config version the provisioning template reported as done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_config_version: Option<String>,

    /// Acknowledges `spec.restartRequestedAt`: the request the last completed restart served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restarted_at: Option<Time>,

    /// Acknowledges `spec.cancelRequestedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cancel_requested_at: Option<Time>,

    /// Acknowledges `spec.provisionRequestedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_provision_requested_at: Option<Time>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Coarse lifecycle phase, for people and printer columns; conditions carry the detail.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    Starting,
    Running,
    Failed,
    Canceled,
    Deleting,
    /// A phase this version does not know (written by another version); never written.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Where the KubeVirt VM of this instance lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineReference {
    pub namespace: String,
    pub kube_virt_virtual_machine_name: String,
}

/// The Tenant object an instance belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantReference {
    pub name: String,
    pub namespace: String,
}

/// One job in the history. Entries written by the upstream cloudkit-operator carry neither
/// `provider` nor `correlationKey`; reading the history fills both in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::no_inferred_defaults)]
pub struct JobEntry {
    /// The provider's id (AAP job id, `eda-webhook-N`, ...); absent while the launch is in flight.
    #[serde(rename = "jobID", default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub state: JobState,
    /// When the runner created the entry (recorded before launching).
    pub timestamp: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Machine-readable cause of the state (e.g. `TemplateNotFound`), for conditions and tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub provider: JobProvider,
    /// Identifies the launch across crashes: instance UID, job type and what it serves.
    #[serde(default)]
    pub correlation_key: String,
    /// Provision jobs: the config version this job provisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    /// Jobs that serve a signal: the request time they serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Time>,
    /// Set once the cancel POST was sent, so it is never repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at: Option<Time>,
    /// Restart jobs: UID of the VMI that was deleted; done when another UID runs.
    #[serde(rename = "vmiUID", default, skip_serializing_if = "Option::is_none")]
    pub vmi_uid: Option<String>,
    /// Deprovision jobs: whether a failure keeps the resource from being deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_deletion_on_failure: bool,
    /// Failed jobs: where it failed, as the provider reports it. Only the newest failed
    /// job of each type keeps it, so the status stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
    /// The job's page in the provider's UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Where a job failed: the play, task and host of the failing result and its message,
/// one bounded line each.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::schema::no_inferred_defaults)]
pub struct JobFailure {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub play: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl JobFailure {
    /// `task "T" on host H: message` (the parts that are known).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if !self.task.is_empty() {
            out.push_str(&format!("task \"{}\"", self.task));
        }
        if !self.host.is_empty() {
            out.push_str(&format!(" on {}", self.host));
        }
        if !self.message.is_empty() {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&self.message);
        }
        out.trim().to_owned()
    }
}

/// What a job does.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Provision,
    Deprovision,
    Restart,
}

/// A job's state; Succeeded, Failed and Canceled are terminal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobState {
    Pending,
    Waiting,
    Running,
    Succeeded,
    Failed,
    Canceled,
    /// Also what a state this version does not know reads as.
    #[serde(other)]
    Unknown,
}

/// Who runs a job and therefore who is asked about it (lifecycle rule 8).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobProvider {
    /// An AAP job template launch (`/jobs/{id}/`).
    #[default]
    Aap,
    /// An AAP workflow job template launch (`/workflow_jobs/{id}/`).
    AapWorkflow,
    /// An EDA webhook or event stream.
    Eda,
    /// The runner itself, through the KubeVirt API (restarts).
    Kubevirt,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }

    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// Every state, for tables and exhaustive checks.
    pub const ALL: [JobState; 7] = [
        Self::Pending,
        Self::Waiting,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::Unknown,
    ];
}

impl JobType {
    /// Every job type, for tables and exhaustive checks.
    pub const ALL: [JobType; 3] = [Self::Provision, Self::Deprovision, Self::Restart];
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Provision => "provision",
            Self::Deprovision => "deprovision",
            Self::Restart => "restart",
        })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::fmt::Display for JobProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aap => "aap",
            Self::AapWorkflow => "aap-workflow",
            Self::Eda => "eda",
            Self::Kubevirt => "kubevirt",
        })
    }
}
