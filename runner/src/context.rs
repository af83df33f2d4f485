//! What every reconcile shares.

use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::aap::AapClient;
use crate::config::Settings;
use crate::eda::EdaClient;
use crate::memo::Memo;
use crate::poller::JobCache;

pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    pub aap: Option<AapClient>,
    pub eda: Option<EdaClient>,
    pub recorder: Recorder,
    /// Whether the instance cache and the caches below hold a full list yet.
    pub caches: std::sync::Arc<crate::caches::Caches>,
    pub vms: crate::kubevirt_cache::Cache<crate::kubevirt_cache::Vm>,
    pub vmis: crate::kubevirt_cache::Cache<crate::kubevirt_cache::Vmi>,
    pub tenants: Store<cloudkit_shared::tenant::Tenant>,
    /// Latest AAP job states, filled by the poller (one list request per tick for all jobs).
    pub aap_jobs: JobCache,
    /// Intents this process recorded and has not launched: no need to look them up in AAP.
    pub fresh_intents: Memo<()>,
    /// resourceVersion of this process's last status write per instance UID, so a stale
    /// cache entry is never planned on (it could re-record an intent already launched).
    pub written: Memo<u64>,
    /// Intents whose launch failed transiently, with the moment to try again (429
    /// `Retry-After`, or a short pause): AAP is not asked again before then.
    pub launch_not_before: Memo<std::time::Instant>,
    /// UIDs of VMIs this process deleted for a restart, with when: until the VMI cache
    /// catches up, `observe` does not report them, so the restart is not sent twice.
    pub deleted_vmis: Memo<std::time::Instant>,
    pub metrics: crate::metrics::Metrics,
    /// Checked right before each external effect: only the Lease holder acts.
    pub fence: crate::fence::Fence,
}
