//! Reading a stored `ComputeInstance` that may not fit this version's types.
//!
//! Objects written under another schema (the upstream operator's, an older cloudkit's)
//! can hold any shape. Listing them as typed objects fails the whole list on the first bad
//! one, so the runner and the plugin list them untyped and decode each here: a bad object
//! is named with the field that failed, and the others are served.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::core::DynamicObject;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::instance::{ComputeInstance, ComputeInstanceSpec, ComputeInstanceStatus};
use crate::lean_meta;

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

/// One page of a `ComputeInstance` list: each object read or named as unreadable, in the
/// server's order, and the token of the next page.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Result<ComputeInstance, Box<Unreadable>>>,
    pub continue_token: Option<String>,
}

/// Decodes a list response body. A page whose objects all fit the types is decoded in one
/// pass straight into them, `managedFields` skipped unread (a list is most of its cost);
/// only a page holding an object that does not fit is decoded again object by object, so
/// that one is named with its field and the others kept.
pub fn page(body: &str) -> Result<Page, serde_json::Error> {
    #[derive(Deserialize)]
    struct List<T> {
        #[serde(default)]
        metadata: ListMeta,
        #[serde(default = "Vec::new")]
        items: Vec<T>,
    }
    #[derive(Deserialize)]
    struct Typed {
        #[serde(default, deserialize_with = "lean_meta::without_managed_fields")]
        metadata: ObjectMeta,
        spec: ComputeInstanceSpec,
        #[serde(default)]
        status: Option<ComputeInstanceStatus>,
    }
    let token = |m: ListMeta| m.continue_.filter(|t| !t.is_empty());
    if let Ok(list) = serde_json::from_str::<List<Typed>>(body) {
        let items = list
            .items
            .into_iter()
            .map(|t| {
                let mut ci = ComputeInstance::new("", t.spec);
                ci.metadata = t.metadata;
                ci.status = t.status;
                Ok(ci)
            })
            .collect();
        return Ok(Page {
            items,
            continue_token: token(list.metadata),
        });
    }
    let list = serde_json::from_str::<List<DynamicObject>>(body)?;
    Ok(Page {
        items: list.items.into_iter().map(instance).collect(),
        continue_token: token(list.metadata),
    })
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

    fn list(items: Vec<Value>, token: &str) -> String {
        json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstanceList",
            "metadata": {"resourceVersion": "7", "continue": token},
            "items": items,
        })
        .to_string()
    }

    fn object(name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "cloudkit.openshift.io/v1alpha1", "kind": "ComputeInstance",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "finalizers": ["f"], "managedFields": [{"manager": "m", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:templateID": {}}}}]},
            "spec": spec,
            "status": {"phase": "Running", "jobs": [
                {"jobID": "17", "type": "provision", "state": "Succeeded",
                 "timestamp": "2026-11-01T10:00:00Z"}]}
        })
    }

    /// The one-pass decode gives what decoding each object alone gives, managedFields aside.
    #[test]
    fn a_page_reads_as_its_objects_do_one_by_one() {
        let good = |n| object(n, json!({"templateID": "t", "templateParameters": "{}"}));
        let body = list(vec![good("a"), good("b")], "next");
        let page = page(&body).unwrap();
        assert_eq!(page.continue_token.as_deref(), Some("next"));
        let one_by_one: Vec<ComputeInstance> = [good("a"), good("b")]
            .into_iter()
            .map(|o| {
                let mut ci = instance(serde_json::from_value(o).unwrap()).unwrap();
                ci.metadata.managed_fields = None;
                ci
            })
            .collect();
        let read: Vec<ComputeInstance> = page.items.into_iter().map(Result::unwrap).collect();
        assert_eq!(read, one_by_one);
        assert_eq!(read[1].metadata.name.as_deref(), Some("b"));
        assert!(read[0].metadata.managed_fields.is_none());
    }

    #[test]
    fn one_unreadable_object_is_named_and_the_rest_of_its_page_kept() {
        let body = list(
            vec![
                object("a", json!({"templateID": "t"})),
                object(
                    "b",
                    json!({"templateID": "t", "templateParameters": {"cpu": 2}}),
                ),
                object("c", json!({"templateID": "t"})),
            ],
            "",
        );
        let page = page(&body).unwrap();
        assert_eq!(page.continue_token, None, "an empty token ends the list");
        let names: Vec<String> = page
            .items
            .iter()
            .map(|r| match r {
                Ok(ci) => ci.metadata.name.clone().unwrap_or_default(),
                Err(e) => format!("unreadable {} at {}", e.name, e.field),
            })
            .collect();
        assert_eq!(names, ["a", "unreadable b at spec.templateParameters", "c"]);
    }

    #[test]
    fn a_body_that_is_no_list_is_an_error() {
        assert!(page("not json").is_err());
        assert!(page(r#"{"items": 3}"#).is_err());
    }

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
