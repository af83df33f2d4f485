//! The instance's Tenant: ensured before anything is launched.

use std::time::Duration;

use super::*;

impl Planner<'_> {
    /// The instance's Tenant, as upstream: the object exists and lists the instance among
    /// its owners, and `status.tenantReference` names it.
    pub(super) fn tenant(&mut self) {
        let Some(tenant) = self.tenant.clone() else {
            return;
        };
        let name = crate::tenant::object_name(&tenant);
        if !self.obs.tenant.as_ref().is_some_and(|t| t.owned) {
            self.effects.push(Effect::EnsureTenant {
                tenant,
                name: name.clone(),
            });
            // Checked again soon: another instance may have changed the Tenant meanwhile.
            self.requeue_in(Duration::from_secs(2));
        }
        self.st.tenant_reference = Some(crate::instance::TenantReference {
            name,
            namespace: self.ci.metadata.namespace.clone().unwrap_or_default(),
        });
        if !self.tenant_ready() {
            // The Tenant controller's status write wakes the instance; poll in case it does not.
            self.requeue_in(Duration::from_secs(5));
        }
    }

    pub(super) fn tenant_ready(&self) -> bool {
        self.tenant.is_none() || self.obs.tenant.as_ref().is_some_and(|t| t.ready)
    }
}
