//! The official Rust SDK's `ClientSecretCredential` against the AAD fake (via
//! `AZURE_AUTHORITY_HOST`), used by a `SecretClient` against the Key Vault fake, including an
//! RBAC refusal. One test: it sets process-global environment variables.

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_identity::ClientSecretCredential;
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use pat_rotator_emulators::{EmulatorOptions, Emulators, Role};

#[tokio::test]
async fn rust_sdk_client_secret_credential_gets_tokens_from_the_aad_fake() -> azure_core::Result<()> {
    let emu = Emulators::start(EmulatorOptions::default());
    for (k, v) in emu.env() {
        // SAFETY: the only test in this binary; nothing else reads the environment yet.
        unsafe { std::env::set_var(k, v) };
    }
    let oid = emu.aad().add_service_principal("rotator-app", "app-secret");

    let wrong = ClientSecretCredential::new(emu.tenant_id(), "rotator-app".into(), Secret::new("bad"), None)?;
    let err = wrong.get_token(&["https://vault.azure.net/.default"], None).await.unwrap_err();
    assert!(format!("{err:?}").contains("AADSTS7000215"), "{err:?}");

    let credential =
        ClientSecretCredential::new(emu.tenant_id(), "rotator-app".into(), Secret::new("app-secret"), None)?;
    let token = credential.get_token(&["2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"], None).await?;
    let rec = emu.directory().lookup(token.token.secret()).expect("issued by the fake");
    assert_eq!((rec.audience.as_str(), rec.principal.as_str()), ("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d", oid.as_str()));

    let options = SecretClientOptions { verify_challenge_resource: Some(false), ..Default::default() };
    let client = SecretClient::new(emu.vault(0).url(), credential, Some(options))?;
    let params = SetSecretParameters { value: Some("v1".into()), ..Default::default() };
    client.set_secret("sp-secret", params.try_into()?, None).await?;
    assert_eq!(emu.vault(0).latest("sp-secret").map(|v| v.value), Some("v1".into()));

    emu.vault(0).set_role(&oid, Role::User);
    let params = SetSecretParameters { value: Some("v2".into()), ..Default::default() };
    let err = client.set_secret("sp-secret", params.try_into()?, None).await.unwrap_err();
    match err.kind() {
        ErrorKind::HttpResponse { status, error_code, .. } => {
            assert_eq!((*status, error_code.as_deref()), (StatusCode::Forbidden, Some("Forbidden")));
        }
        other => panic!("unexpected error kind {other:?}"),
    }
    assert_eq!(client.get_secret("sp-secret", None).await?.into_model()?.value.as_deref(), Some("v1"));
    Ok(())
}
