//! The checked-in CRD is exactly what crdgen prints, and it is a structural schema.

use serde_json::Value;

fn checked_in() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/computeinstance.yaml");
    std::fs::read_to_string(path).expect("crds/computeinstance.yaml is checked in")
}

#[test]
fn checked_in_crd_matches_crdgen() {
    let generated = cloudkit_shared::crd_yaml().expect("CRD renders");
    assert!(
        generated == checked_in(),
        "crds/computeinstance.yaml is stale: run `cargo crdgen > crds/computeinstance.yaml`"
    );
}

#[test]
fn checked_in_tenant_crd_matches_crdgen() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/tenant.yaml");
    let checked_in = std::fs::read_to_string(path).expect("crds/tenant.yaml is checked in");
    let generated = cloudkit_shared::tenant_crd_yaml().expect("CRD renders");
    assert!(
        generated == checked_in,
        "crds/tenant.yaml is stale: run `cargo crdgen tenant > crds/tenant.yaml`"
    );
    // spec.name is immutable, as upstream has it.
    let crd: Value = serde_saphyr::from_str(&checked_in).unwrap();
    let name = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["name"];
    assert_eq!(
        name["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
}

#[test]
fn crd_schema_is_structural() {
    let crd: Value = serde_saphyr::from_str(&checked_in()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "ci");
    let schema = &version["schema"]["openAPIV3Schema"];
    let spec = &schema["properties"]["spec"];
    assert_eq!(
        spec["properties"]["templateID"]["pattern"],
        "^[a-zA-Z_][a-zA-Z0-9._]*$"
    );
    assert_eq!(spec["required"][0], "templateID");
    let status = &schema["properties"]["status"]["properties"];
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["conditions"]["x-kubernetes-list-map-keys"][0],
        "type"
    );
    let job = &status["jobs"]["items"]["properties"];
    assert_eq!(job["state"]["enum"].as_array().unwrap().len(), 7);
    assert_eq!(
        job["type"]["enum"],
        serde_json::json!(["provision", "deprovision", "restart"])
    );
    // kube lists `null` among the values of an optional enum.
    let phases: Vec<_> = status["phase"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(phases.len(), 5);

    // templateParameters is a string, as the upstream API has it.
    assert_eq!(spec["properties"]["templateParameters"]["type"], "string");
    // Job entries the upstream operator wrote (no provider, no correlation key) are valid.
    let job = &status["jobs"]["items"];
    let required: Vec<_> = job["required"].as_array().unwrap().iter().collect();
    assert_eq!(required, ["state", "timestamp", "type"], "{job}");
    // Every object node has a type, and no unknown fields are kept anywhere.
    let mut preserved = Vec::new();
    walk(schema, "", &mut preserved);
    assert!(preserved.is_empty(), "{preserved:?}");
}

fn walk(node: &Value, path: &str, preserved: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    assert!(map.contains_key("type"), "no type at {path:?}");
    for bad in ["anyOf", "oneOf", "allOf", "$ref"] {
        assert!(
            !map.contains_key(bad),
            "{bad} at {path:?} is not structural"
        );
    }
    if map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        preserved.push(path.to_string());
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, &format!("{path}.{k}"), preserved);
        }
    }
    if let Some(items) = map.get("items") {
        walk(items, &format!("{path}[]"), preserved);
    }
}
