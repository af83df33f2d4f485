//! Who may talk to the logs API and how it proves itself: kube-apiserver's front-proxy
//! CA and allowed names (ConfigMap kube-system/extension-apiserver-authentication), and
//! a serving certificate kept in a Secret beside the APIService's Service, its CA
//! written into the APIService's caBundle.

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::LogsError;

/// The APIService kube-apiserver routes `logs.cloudkit.openshift.io` requests by.
pub const APISERVICE: &str = "v1alpha1.logs.cloudkit.openshift.io";
/// The serving certificate, shared by all replicas; made by the first one.
pub const SECRET: &str = "cloudkit-runner-logs-tls";

const AUTH_CONFIGMAP: &str = "extension-apiserver-authentication";

pub struct Trust {
    pub server_config: Arc<rustls::ServerConfig>,
    /// Client certificate names accepted; empty means any the CA signed.
    pub allowed_names: Vec<String>,
    /// Headers naming the user, as kube-apiserver sends them.
    pub user_headers: Vec<String>,
}

fn setup(message: String) -> LogsError {
    LogsError::Setup(message)
}

pub async fn establish(client: &kube::Client) -> Result<Trust, LogsError> {
    let services: Api<APIService> = Api::all(client.clone());
    let apiservice = services.get_opt(APISERVICE).await.map_err(|e| {
        setup(format!("cannot read APIService {APISERVICE}: {e}; grant the runner get/patch on it (manifests/logs)"))
    })?.ok_or_else(|| setup(format!(
        "APIService {APISERVICE} does not exist: apply manifests/logs, or set CLOUDKIT_LOGS_ADDR=off"
    )))?;
    let service = apiservice
        .spec
        .as_ref()
        .and_then(|s| s.service.clone())
        .ok_or_else(|| {
            setup(format!(
                "APIService {APISERVICE} names no Service: apply manifests/logs"
            ))
        })?;
    let namespace = service.namespace.unwrap_or_else(|| "default".into());
    let name = service.name.unwrap_or_default();
    let (cert_pem, key_pem, ca_pem) = serving_secret(client, &namespace, &name).await?;
    let current = apiservice.spec.as_ref().and_then(|s| s.ca_bundle.as_ref());
    if current.map(|b| b.0.as_slice()) != Some(ca_pem.as_bytes()) {
        let patch =
            serde_json::json!({ "spec": { "caBundle": ByteString(ca_pem.clone().into_bytes()) } });
        services
            .patch(APISERVICE, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| setup(format!("cannot set the caBundle of APIService {APISERVICE}: {e}; grant the runner patch on it")))?;
        tracing::info!(
            apiservice = APISERVICE,
            "wrote the logs API's CA into the APIService"
        );
    }
    let auth = Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
        .get(AUTH_CONFIGMAP)
        .await
        .map_err(|e| setup(format!(
            "cannot read ConfigMap kube-system/{AUTH_CONFIGMAP}: {e}; bind Role extension-apiserver-authentication-reader to the runner"
        )))?;
    let data = auth.data.unwrap_or_default();
    let ca = data.get("requestheader-client-ca-file").ok_or_else(|| {
        setup(format!(
            "kube-system/{AUTH_CONFIGMAP} has no requestheader-client-ca-file: start kube-apiserver with --requestheader-client-ca-file"
        ))
    })?;
    let list = |key: &str| -> Vec<String> {
        data.get(key)
            .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
            .unwrap_or_default()
    };
    let mut user_headers = list("requestheader-username-headers");
    if user_headers.is_empty() {
        user_headers.push("X-Remote-User".into());
    }
    Ok(Trust {
        server_config: server_config(ca, &cert_pem, &key_pem)?,
        allowed_names: list("requestheader-allowed-names"),
        user_headers,
    })
}

/// Reads the serving Secret, or makes it: replicas race, the first create wins and the
/// others read what it wrote.
async fn serving_secret(
    client: &kube::Client,
    namespace: &str,
    service: &str,
) -> Result<(String, String, String), LogsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let read_err = |e: kube::Error| {
        setup(format!(
            "cannot read Secret {namespace}/{SECRET}: {e}; grant the runner get/create on it"
        ))
    };
    if let Some(found) = secrets.get_opt(SECRET).await.map_err(read_err)? {
        return secret_parts(&found, namespace);
    }
    let made = generate(namespace, service)?;
    let mut data = std::collections::BTreeMap::new();
    data.insert(
        "tls.crt".to_string(),
        ByteString(made.0.clone().into_bytes()),
    );
    data.insert(
        "tls.key".to_string(),
        ByteString(made.1.clone().into_bytes()),
    );
    data.insert(
        "ca.crt".to_string(),
        ByteString(made.2.clone().into_bytes()),
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(
                secret = SECRET,
                namespace,
                "made the logs API's serving certificate"
            );
            Ok(made)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let found = secrets.get(SECRET).await.map_err(read_err)?;
            secret_parts(&found, namespace)
        }
        Err(e) => Err(setup(format!(
            "cannot create Secret {namespace}/{SECRET}: {e}; grant the runner create on secrets there"
        ))),
    }
}

fn secret_parts(secret: &Secret, namespace: &str) -> Result<(String, String, String), LogsError> {
    let data = secret.data.clone().unwrap_or_default();
    let field = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| setup(format!(
                "Secret {namespace}/{SECRET} has no {k}: delete it and the runner makes a new one"
            )))
    };
    Ok((field("tls.crt")?, field("tls.key")?, field("ca.crt")?))
}

/// A CA and a serving certificate for the Service's DNS names (kube-apiserver checks
/// `<service>.<namespace>.svc`) and localhost.
fn generate(namespace: &str, service: &str) -> Result<(String, String, String), LogsError> {
    let rc = |e: rcgen::Error| setup(format!("cannot make the logs API's certificate: {e}"));
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cloudkit-runner logs CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(rc)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_string(),
    ];
    let mut params = CertificateParams::new(names).map_err(rc)?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{service}.{namespace}.svc"));
    let key = KeyPair::generate().map_err(rc)?;
    let cert = params.signed_by(&key, &issuer).map_err(rc)?;
    Ok((
        format!("{}{}", cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
        ca_cert.pem(),
    ))
}

fn server_config(
    client_ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, LogsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| setup(format!("the front-proxy CA is not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| setup(format!("the front-proxy CA is not usable: {e}")))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| setup(format!("cannot check front-proxy client certificates: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("Secret {SECRET}: tls.crt is not PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| setup(format!("Secret {SECRET}: tls.key is not PEM: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS setup: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            setup(format!(
                "Secret {SECRET}: the certificate and key do not fit: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
