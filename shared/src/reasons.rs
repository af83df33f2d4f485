//! Condition and Event reasons (CamelCase, as Kubernetes expects).

pub const ACCEPTED: &str = "Accepted";
pub const PROVISIONING: &str = "Provisioning";
pub const PROVISIONED: &str = "Provisioned";
pub const VM_NOT_FOUND: &str = "VirtualMachineNotFound";
pub const CONFIG_NOT_RECONCILED: &str = "ConfigVersionNotReconciled";
pub const JOB_LAUNCHED: &str = "JobLaunched";
pub const JOB_SUCCEEDED: &str = "JobSucceeded";
pub const JOB_FAILED: &str = "JobFailed";
pub const JOB_CANCELED: &str = "JobCanceled";
pub const JOB_PURGED: &str = "JobPurged";
pub const ALREADY_PROVISIONING: &str = "AlreadyProvisioning";

// Launch failures a user can act on.
pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
pub const AUTH_REJECTED: &str = "AAPAuthRejected";
pub const FORBIDDEN: &str = "AAPForbidden";
pub const VARIABLES_IGNORED: &str = "VariablesIgnored";
pub const LAUNCH_REJECTED: &str = "LaunchRejected";
pub const PROVIDER_UNREACHABLE: &str = "ProviderUnreachable";
pub const WEBHOOK_REJECTED: &str = "WebhookRejected";
pub const EDA_DEADLINE: &str = "EDADeadlineExceeded";

// Cancel.
pub const CANCEL_REQUESTED: &str = "CancelRequested";
pub const CANCELED_BY_REQUEST: &str = "CanceledByRequest";
pub const CANCELED_BEFORE_LAUNCH: &str = "CanceledBeforeLaunch";
pub const NOTHING_TO_CANCEL: &str = "NothingToCancel";
pub const CANCEL_NOT_CONFIRMED: &str = "CancelNotConfirmed";
pub const CANCEL_FAILED: &str = "CancelFailed";

// Deletion.
pub const CANCELING_PROVISION: &str = "CancelingProvision";
pub const DEPROVISIONING: &str = "Deprovisioning";
pub const DEPROVISIONED: &str = "Deprovisioned";
pub const NOTHING_TO_DEPROVISION: &str = "NothingToDeprovision";
pub const DEPROVISION_FAILED: &str = "DeprovisionFailed";
pub const DELETION_PROCEEDS: &str = "DeletionProceedsDespiteFailure";

// Restart.
pub const RESTART_REQUESTED: &str = "RestartRequested";
pub const RESTART_SCHEDULED: &str = "RestartScheduled";
pub const RESTARTED: &str = "Restarted";
pub const NO_VM_REFERENCE: &str = "NoVMReference";
pub const VM_HALTED: &str = "VMHalted";
pub const VMI_NOT_FOUND: &str = "VMINotFound";
pub const VMI_DELETION_FAILED: &str = "VMIDeletionFailed";
pub const RESTART_TIMEOUT: &str = "RestartTimeout";

// Taking over from the upstream operator, and what a spec or annotation says.
pub const ADOPTED: &str = "Adopted";
pub const INVALID_TEMPLATE_PARAMETERS: &str = "InvalidTemplateParameters";
pub const MANUALLY_MANAGED: &str = "ManuallyManaged";
pub const NOT_LAUNCHED_MANUAL: &str = "NotLaunchedManual";
pub const TENANT_NOT_READY: &str = "TenantNotReady";
