//! Hand-written schema pieces the derive cannot express.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Standard `metav1.Condition` list, a map keyed by `type` so server-side apply merges it.
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"type": "string", "maxLength": 316},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "reason": {"type": "string", "maxLength": 1024, "minLength": 1},
                "message": {"type": "string", "maxLength": 32768},
            },
        },
    })
}

/// Job entry fields that reading fills in when absent (provider, correlation key) have no
/// `default` in the schema: the API server would otherwise store a guess ("aap") on an
/// upstream operator's EDA job before the runner infers the right one.
pub fn no_inferred_defaults(schema: &mut Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for field in ["provider", "correlationKey"] {
        if let Some(p) = properties.get_mut(field).and_then(|p| p.as_object_mut()) {
            p.remove("default");
        }
    }
}
