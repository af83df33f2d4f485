//! `spec.templateParameters`: a string holding a JSON object, passed to templates unchanged.

use serde_json::{Map, Value};

/// Why the parameters cannot be handed to a template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateParametersError {
    #[error(
        "spec.templateParameters is not valid JSON ({0}): write a JSON object in the string, e.g. '{{\"cpu_cores\": 2}}'"
    )]
    NotJson(String),
    #[error(
        "spec.templateParameters holds a JSON {0}, not an object: write a JSON object in the string, e.g. '{{\"cpu_cores\": 2}}'"
    )]
    NotAnObject(&'static str),
}

/// Decodes the parameters; absent or empty is an empty object.
pub fn decode(raw: Option<&str>) -> Result<Map<String, Value>, TemplateParametersError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(TemplateParametersError::NotAnObject(kind(&other))),
        Err(e) => Err(TemplateParametersError::NotJson(e.to_string())),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_decode_and_everything_else_is_named() {
        assert!(decode(None).unwrap().is_empty());
        assert!(decode(Some("  ")).unwrap().is_empty());
        assert_eq!(decode(Some(r#"{"cpu_cores": 2}"#)).unwrap()["cpu_cores"], 2);
        assert_eq!(
            decode(Some("[1]")),
            Err(TemplateParametersError::NotAnObject("array"))
        );
        assert_eq!(
            decode(Some("\"x\"")),
            Err(TemplateParametersError::NotAnObject("string"))
        );
        let e = decode(Some("{cpu: 2")).unwrap_err().to_string();
        assert!(
            e.starts_with("spec.templateParameters is not valid JSON"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
