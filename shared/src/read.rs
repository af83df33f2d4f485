//! Reading a stored `ComputeInstance` that may not fit this version's types.
//!
//! Objects written under another schema (the upstream operator's, an older cloudkit's)
//! can hold any shape. Listing them as typed objects fails the whole list on the first bad
//! one, so the runner and the plugin list them untyped and decode each here: a bad object
//! is named with the field that failed, and the others are served.

use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::instance::ComputeInstance;

/// An object that could not be read as a `ComputeInstance`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ComputeInstance {namespace}/{name} is unreadable: field {field}: {message}")]
pub struct Unreadable {
    pub namespace: String,
    pub name: String,
    /// The path of the field that failed, e.g. `spec.templateParameters`.
    pub field: String,
    pub message: String,
}

/// Decodes one stored object.
pub fn instance(obj: DynamicObject) -> Result<ComputeInstance, Box<Unreadable>> {
    let DynamicObject {
        metadata, mut data, ..
    } = obj;
    let unreadable = |field: String, message: String| {
        Box::new(Unreadable {
            namespace: metadata.namespace.clone().unwrap_or_default(),
            name: metadata.name.clone().unwrap_or_default(),
            field,
            message,
        })
    };
    let spec = part(&mut data, "spec").map_err(|(f, m)| unreadable(f, m))?;
    let status = part(&mut data, "status").map_err(|(f, m)| unreadable(f, m))?;
    let mut ci = ComputeInstance::new(metadata.name.as_deref().unwrap_or_default(), spec);
    ci.metadata = metadata;
    ci.status = status;
    Ok(ci)
}

/// The same object with nothing but its metadata: enough to name it and to drop it from a
/// cache keyed by namespace and name.
pub fn placeholder(obj: &DynamicObject) -> ComputeInstance {
    let mut ci = ComputeInstance::new(
        obj.metadata.name.as_deref().unwrap_or_default(),
        Default::default(),
    );
    ci.metadata = obj.metadata.clone();
    ci
}

fn part<T: DeserializeOwned>(data: &mut Value, key: &str) -> Result<T, (String, String)> {
    let value = data.get_mut(key).map(Value::take).unwrap_or(Value::Null);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            key.to_string()
        } else {
            format!("{key}.{path}")
        };
        (
            field,
            crate::conditions::one_line(&e.into_inner().to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(body: Value) -> DynamicObject {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn upstream_objects_read_and_bad_ones_name_their_field() {
        let good = stored(json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
            "metadata": {"name": "vm-1", "namespace": "ns"},
            "spec": {"templateID": "t", "templateParameters": "{\"cpu_cores\": 2}"},
            "status": {"phase": "Provisioning", "jobs": [
                {"jobID": "17", "type": "provision", "state": "Stalled",
                 "timestamp": "2026-11-01T10:00:00Z"}]}
        }));
        let ci = instance(good).unwrap();
        let status = ci.status.unwrap();
        assert_eq!(status.phase, Some(crate::Phase::Unknown));
        assert_eq!(status.jobs[0].state, crate::JobState::Unknown);
        assert_eq!(status.jobs[0].provider, crate::JobProvider::Aap);

        let bad = stored(json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
            "metadata": {"name": "vm-2", "namespace": "ns"},
            "spec": {"templateID": "t", "templateParameters": {"cpu_cores": 2}}
        }));
        let e = instance(bad).unwrap_err();
        assert_eq!(e.field, "spec.templateParameters");
        assert_eq!(e.name, "vm-2");
        assert!(
            e.to_string()
                .starts_with("ComputeInstance ns/vm-2 is unreadable")
        );

        let no_spec = stored(json!({"metadata": {"name": "vm-3"}}));
        assert_eq!(instance(no_spec).unwrap_err().field, "spec");
    }
}
