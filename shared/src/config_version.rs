//! `desiredConfigVersion`: a fingerprint of the spec that a provisioning job realises.
//!
//! The upstream cloudkit-operator computes it as FNV-1a 64 over Go's `json.Marshal` of its
//! spec (`templateID`, `templateParameters`, `restartRequestedAt`, each omitted when empty).
//! cloudkit uses the same bytes without `restartRequestedAt`, because a restart is not a new
//! configuration; for a spec without a restart request both versions are equal, so the
//! annotation a template wrote under the upstream operator is recognised after a migration.

use k8s_openapi::jiff::Timestamp;

use crate::instance::ComputeInstanceSpec;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// cloudkit's version of the spec: signal and policy fields do not count.
pub fn desired_config_version(spec: &ComputeInstanceSpec) -> String {
    version(spec, None)
}

/// The version the upstream operator computed for this spec (its restart request included).
pub fn upstream_config_version(spec: &ComputeInstanceSpec) -> String {
    version(spec, spec.restart_requested_at.as_ref().map(|t| t.0))
}

/// Whether a `reconciled-config-version` annotation says the current spec is provisioned:
/// it equals cloudkit's version, or the one the upstream operator computed for this spec.
pub fn matches_current(annotation: Option<&str>, spec: &ComputeInstanceSpec) -> bool {
    annotation
        .is_some_and(|a| a == desired_config_version(spec) || a == upstream_config_version(spec))
}

fn version(spec: &ComputeInstanceSpec, restart: Option<Timestamp>) -> String {
    let mut fields = Vec::new();
    if !spec.template_id.is_empty() {
        fields.push(("templateID", spec.template_id.clone()));
    }
    if let Some(p) = spec
        .template_parameters
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        fields.push(("templateParameters", p.to_string()));
    }
    if let Some(at) = restart {
        // metav1.Time marshals as RFC 3339 in UTC, whole seconds.
        fields.push((
            "restartRequestedAt",
            at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ));
    }
    let mut json = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        go_json_string(&mut json, key);
        json.push(':');
        go_json_string(&mut json, value);
    }
    json.push('}');
    format!("{:016x}", fnv1a64(json.as_bytes()))
}

/// Appends `s` as Go's `encoding/json` writes a string: HTML-safe (`<`, `>`, `&` escaped),
/// U+2028 / U+2029 escaped, short escapes for `\b \f \n \r \t`, `\u00xx` for other controls.
fn go_json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
