//! Kubeconfig documents for the test control plane: one shape serves both kube-rs
//! clients built in-process and kubeconfig files handed to kubectl and the plugin.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::Error;
use super::pki::ClientCert;

/// The cluster and context name in every kubeconfig the test bed writes.
pub const CONTEXT: &str = "cloudkit-testbed";

/// A kubeconfig for `user` authenticating with `cert`, trusting `ca_pem`.
pub fn document(
    server_url: &str,
    ca_pem: &str,
    user: &str,
    cert: &ClientCert,
    namespace: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": STANDARD.encode(&cert.cert_pem),
                "client-key-data": STANDARD.encode(&cert.key_pem),
            },
        }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": user, "namespace": namespace },
        }],
        "current-context": CONTEXT,
    })
}

/// The document as YAML, the form people and kubectl expect to read.
pub fn to_yaml(user: &str, document: &Value) -> Result<String, Error> {
    serde_saphyr::to_string(document).map_err(|e| Error::Kubeconfig {
        user: user.to_string(),
        message: e.to_string(),
    })
}

/// A kube-rs client configuration from the document.
pub async fn to_config(user: &str, document: Value) -> Result<kube::Config, Error> {
    let err = |message: String| Error::Kubeconfig {
        user: user.to_string(),
        message,
    };
    let kubeconfig: Kubeconfig =
        serde_json::from_value(document).map_err(|e| err(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))
}
