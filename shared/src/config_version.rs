//! `desiredConfigVersion`: a fingerprint of the spec that a provisioning job realises.

use crate::instance::ComputeInstanceSpec;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// FNV-1a 64 (lower-case hex) of the spec's JSON without signal and policy fields, so a
/// restart or cancel request never counts as a new configuration.
pub fn desired_config_version(spec: &ComputeInstanceSpec) -> String {
    let config = ComputeInstanceSpec {
        template_id: spec.template_id.clone(),
        template_parameters: spec.template_parameters.clone(),
        ..ComputeInstanceSpec::default()
    };
    // Serialising a plain struct of strings and JSON maps cannot fail.
    let json = serde_json::to_vec(&config).unwrap_or_default();
    format!("{:016x}", fnv1a64(&json))
}
