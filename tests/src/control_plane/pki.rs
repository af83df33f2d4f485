//! Certificates and keys for one test control plane, made fresh at every start so no
//! secret is checked in and nothing outlives the data directory.
//!
//! Two CAs, as in a real cluster: one signs the API server's serving certificate, the
//! other signs client certificates. A client certificate's CN is the user name and
//! its O is the group (rcgen keeps one value per attribute type, so at most one
//! group), so any test can mint an identity without restarting the server.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::Error;

/// The name aggregated APIs accept from kube-apiserver (`--requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

pub struct Pki {
    pub serving_ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub client_ca_pem: String,
    /// The front proxy's CA (`--requestheader-client-ca-file`) and the client certificate
    /// kube-apiserver presents to aggregated APIs (CN [`FRONT_PROXY_CLIENT`]).
    pub front_proxy_ca_pem: String,
    pub front_proxy_client: ClientCert,
    /// Private key (PKCS#8) that signs service account tokens.
    pub service_account_key_pem: String,
    /// Its public half, which verifies them.
    pub service_account_pub_pem: String,
    client_ca: Issuer<'static, KeyPair>,
}

/// A client identity: certificate and key, both PEM.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn generate() -> Result<Self, Error> {
        let (serving_ca_pem, serving_ca) = ca("cloudkit-testbed serving CA")?;
        let (client_ca_pem, client_ca) = ca("cloudkit-testbed client CA")?;

        // Clients reach the server as https://127.0.0.1:PORT or https://localhost:PORT.
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        params.distinguished_name = dn("kube-apiserver", None);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let serving_key = KeyPair::generate()?;
        let serving_cert = params.signed_by(&serving_key, &serving_ca)?;

        let service_account_key = KeyPair::generate()?;
        let (front_proxy_ca_pem, front_proxy_ca) = ca("cloudkit-testbed front-proxy CA")?;
        let front_proxy_client = signed_client(&front_proxy_ca, FRONT_PROXY_CLIENT, None)?;

        Ok(Self {
            front_proxy_ca_pem,
            front_proxy_client,
            serving_ca_pem,
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            client_ca_pem,
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_pub_pem: service_account_key.public_key_pem(),
            client_ca,
        })
    }

    /// A client certificate the API server maps to `user`, in `group` if given.
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> Result<ClientCert, Error> {
        signed_client(&self.client_ca, user, group)
    }
}

fn signed_client(
    issuer: &Issuer<'static, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<ClientCert, Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(user, group);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(ClientCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

fn dn(common_name: &str, organization: Option<&str>) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}
