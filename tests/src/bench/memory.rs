//! Memory: the runner's peak RSS comes from its `/proc` figures at the end of a settle run
//! (see `settle`); this part says what the runner's watch caches hold per instance: the
//! serialized size of one ComputeInstance, VM and VMI, and how much of it is
//! `metadata.managedFields`, which the caches keep although nothing reads it.

use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::aap_sim::effects::instance_resource;
use crate::kubevirt_sim::{vm_resource, vmi_resource};

/// Average JSON bytes per object of a namespace's first `sample` objects of each kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectBytes {
    pub instance: usize,
    pub vm: usize,
    pub vmi: usize,
    /// Of those, `metadata.managedFields` (all three kinds together).
    pub managed_fields: usize,
}

impl ObjectBytes {
    pub fn per_instance(&self) -> usize {
        self.instance + self.vm + self.vmi
    }

    pub async fn measure(
        client: &kube::Client,
        namespace: &str,
        sample: u32,
    ) -> anyhow::Result<Self> {
        let mut out = Self::default();
        let kinds = [instance_resource(), vm_resource(), vmi_resource()];
        for (i, ar) in kinds.iter().enumerate() {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
            let items = api.list(&ListParams::default().limit(sample)).await?.items;
            if items.is_empty() {
                continue;
            }
            let (mut total, mut managed) = (0, 0);
            for item in &items {
                let value = serde_json::to_value(item)?;
                total += serde_json::to_vec(&value)?.len();
                managed += serde_json::to_vec(&value["metadata"]["managedFields"]).map(|v| {
                    if value["metadata"]["managedFields"] == Value::Null {
                        0
                    } else {
                        v.len()
                    }
                })?;
            }
            let (total, managed) = (total / items.len(), managed / items.len());
            match i {
                0 => out.instance = total,
                1 => out.vm = total,
                _ => out.vmi = total,
            }
            out.managed_fields += managed;
        }
        Ok(out)
    }
}
