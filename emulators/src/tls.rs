//! The emulators' private PKI: one CA, one server certificate for the loopback names.
//!
//! The HTTPS fakes (Key Vault, AAD) must be trusted by unmodified clients through the standard
//! `SSL_CERT_FILE` (Rust) / `REQUESTS_CA_BUNDLE` (Python) variables, so a real chain is made:
//! a CA (`CA:TRUE`) and a leaf it signs (`CA:FALSE`, SANs `127.0.0.1`, `localhost`, `::1`).
//! A self-signed certificate that is also a CA would not do: rustls refuses a CA certificate
//! as an end-entity certificate.
//!
//! Only the aws-lc-rs crypto provider is used, explicitly, because a second provider in the
//! build (e.g. `ring`) makes rustls panic when a default has to be chosen.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A freshly generated CA and the server configuration for its leaf.
pub struct Pki {
    /// PEM of the CA certificate: what clients must trust.
    pub ca_pem: String,
    /// rustls server configuration presenting the leaf (and the CA) certificate.
    pub server_config: rustls::ServerConfig,
}

/// Generates a CA and a loopback server certificate signed by it.
pub fn generate() -> Result<Pki, Box<dyn std::error::Error + Send + Sync>> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "pat-rotator emulators CA");
    ca_params.distinguished_name.push(DnType::OrganizationName, "pat-rotator emulators");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string(), "::1".to_string()])?;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let server_config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    Ok(Pki { ca_pem: ca_cert.pem(), server_config })
}
