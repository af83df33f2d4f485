//! Whether this replica still holds the Lease, checked right before each external effect
//! (launch, cancel, VMI delete, Event): a leader that was paused past its lease — or cut
//! off from the API server — must not act after a standby took over.
//!
//! The watch flag of the lease manager lags behind (it changes only after the next renewal
//! attempt), so the Lease itself is read. A good answer is trusted until shortly before the
//! lease would expire, measured on the monotonic clock from before the read: a pause in
//! between is counted, so a resumed ex-leader always reads the Lease again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use tracing::warn;

use crate::config::LeaderSettings;

/// Kept off the end of a lease: the new leader's clock may run a little ahead.
const MARGIN: Duration = Duration::from_secs(1);

pub struct Fence {
    lease: Option<(Api<Lease>, LeaderSettings)>,
    held_until: Mutex<Option<Instant>>,
}

impl Fence {
    /// Without leader election every check passes.
    pub fn new(client: &kube::Client, leader: Option<&LeaderSettings>) -> Self {
        Self {
            lease: leader.map(|l| (Api::namespaced(client.clone(), &l.namespace), l.clone())),
            held_until: Mutex::new(None),
        }
    }

    /// True while this replica holds an unexpired lease.
    pub async fn holds(&self) -> bool {
        let Some((api, leader)) = &self.lease else {
            return true;
        };
        let asked = Instant::now();
        if self
            .held_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| asked < until)
        {
            return true;
        }
        let remaining = match api.get(&leader.lease_name).await {
            Ok(lease) => remaining(&lease, &leader.identity, Timestamp::now()),
            Err(e) => {
                warn!(error = %e, lease = %leader.lease_name, "cannot read the Lease; no effect until it is confirmed");
                None
            }
        };
        let until = remaining
            .and_then(|r| r.checked_sub(MARGIN))
            .map(|r| asked + r);
        *self.held_until.lock().unwrap_or_else(|e| e.into_inner()) = until;
        until.is_some()
    }
}

/// How long `lease` stays held by `identity` from `now`; `None` if it is not.
fn remaining(lease: &Lease, identity: &str, now: Timestamp) -> Option<Duration> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref()?.0;
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds?).ok()?);
    let expires = renewed.checked_add(duration).ok()?;
    Duration::try_from(expires.duration_since(now)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn held_only_by_its_holder_and_until_it_expires() {
        let now = Timestamp::now();
        let ago = |s: i64| now.checked_sub(jiff_secs(s)).unwrap();
        assert_eq!(
            remaining(&lease("me", ago(1), 4), "me", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(remaining(&lease("other", ago(1), 4), "me", now), None);
        assert_eq!(remaining(&lease("me", ago(5), 4), "me", now), None);
        assert_eq!(remaining(&Lease::default(), "me", now), None);
    }

    fn jiff_secs(s: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(s)
    }
}
