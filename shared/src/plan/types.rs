//! What `plan` reads (`Policy`, `Observed`) and returns (`Plan`, `Effect`), and the outcomes fed back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::instance::{ComputeInstanceStatus, JobProvider, JobType};
use crate::jobs::JobUpdate;

/// Which provider new jobs use (in-flight jobs stay with the one that started them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    Aap,
    Eda,
}

/// The runner's settings that shape decisions.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub provider: ProviderKind,
    pub max_history: usize,
    /// How often in-flight provider jobs are polled.
    pub poll_interval: Duration,
    /// First retry delay after a failed job; doubles per failure up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a cancel may stay unconfirmed before it is reported and sent again.
    pub cancel_deadline: Duration,
    /// How long a restart may take until a new VMI runs.
    pub restart_deadline: Duration,
    /// Failed deprovisions after which policy `Proceed` lets deletion finish.
    pub deprovision_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Aap,
            max_history: crate::settings::DEFAULT_MAX_JOB_HISTORY,
            poll_interval: Duration::from_secs(30),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            cancel_deadline: Duration::from_secs(120),
            restart_deadline: Duration::from_secs(300),
            deprovision_attempts: 3,
        }
    }
}

/// What the provider says about one job, keyed by correlation key in [`Observed::jobs`].
#[derive(Clone, Debug, PartialEq)]
pub enum JobObservation {
    /// The provider knows the job (for an intent: it was launched before a crash).
    Seen {
        job_id: String,
        provider: JobProvider,
        update: JobUpdate,
    },
    /// The provider has no such job: an intent was never launched, a launched job was purged.
    Missing { message: String },
    /// The provider could not be asked this time.
    Unavailable { message: String },
}

/// The KubeVirt VM labelled with the instance's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmInfo {
    pub namespace: String,
    pub name: String,
    /// Run strategy `Halted` (or `running: false`): no VMI will come back by itself.
    pub halted: bool,
}

/// The VMI of that VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmiInfo {
    pub uid: String,
    pub running: bool,
}

/// The Tenant object of an instance's tenant, as the runner found it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TenantInfo {
    /// Phase Ready: its namespace and network exist.
    pub ready: bool,
    /// This instance is among its owners (so garbage collection keeps it while in use).
    pub owned: bool,
}

/// Everything the runner saw just before planning.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub now: Timestamp,
    /// The instance's Tenant object (None: it does not exist, or there is no tenant).
    pub tenant: Option<TenantInfo>,
    pub jobs: BTreeMap<String, JobObservation>,
    pub vm: Option<VmInfo>,
    pub vmi: Option<VmiInfo>,
    /// `cloudkit.openshift.io/reconciled-config-version` on the instance.
    pub reconciled_config_version: Option<String>,
    /// The playbooks' `computeinstance-aap` finalizer is present.
    pub aap_finalizer: bool,
}

/// The provider a launch goes to, with what that provider needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchVia {
    Aap,
    /// EDA has no job ids of its own: the runner records `eda-webhook-N`.
    Eda {
        job_id: String,
    },
}

/// One thing the runner must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Launch the job recorded (as an intent) under `key`.
    Launch {
        key: String,
        job_type: JobType,
        via: LaunchVia,
    },
    /// Ask the provider to cancel a job (check `can_cancel`, POST once).
    Cancel {
        key: String,
        job_id: String,
        provider: JobProvider,
    },
    /// Delete the VMI, with a UID precondition so a recreated VMI is never deleted.
    DeleteVmi {
        key: String,
        namespace: String,
        name: String,
        uid: String,
    },
    /// Create the Tenant object, or add this instance to its owners.
    EnsureTenant {
        /// The tenant's name (`spec.name`).
        tenant: String,
        /// The Tenant object, in the instance's namespace.
        name: String,
    },
    /// Record a Kubernetes Event.
    Event(EventNote),
}

/// A Kubernetes Event to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What `plan` decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to write (the runner skips the write when it equals the stored one).
    pub status: ComputeInstanceStatus,
    pub effects: Vec<Effect>,
    /// Come back after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Deletion may finish: the runner's finalizer can go.
    pub release_finalizer: bool,
}

/// The result of performing an effect, fed back into the status by [`apply_outcome`].
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Launched {
        key: String,
        job_id: String,
        provider: JobProvider,
    },
    /// The launch did not happen. `permanent` failures fail the job (retried with backoff);
    /// transient ones leave the intent to be looked up and launched again.
    LaunchFailed {
        key: String,
        reason: String,
        message: String,
        permanent: bool,
    },
    /// The provider said the job can no longer be canceled, or the cancel could not be sent.
    CancelFailed {
        key: String,
        message: String,
    },
    /// The VMI was deleted (or was already gone).
    VmiDeleted {
        key: String,
    },
    VmiDeleteFailed {
        key: String,
        message: String,
    },
}
