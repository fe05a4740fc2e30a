//! The official Rust SDK (azure_identity 1.0 `ManagedIdentityCredential` +
//! azure_security_keyvault_secrets 1.0.1 `SecretClient`) against the identity and Key Vault
//! fakes. Environment variables are process-global, so this file holds a single test and
//! sets them before any credential or client exists (an unset `IDENTITY_ENDPOINT` would
//! send the credential to 169.254.169.254).

use std::collections::HashMap;

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_identity::ManagedIdentityCredential;
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientGetSecretOptions, SecretClientListSecretPropertiesVersionsOptions,
    SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use pat_rotator_emulators::{EmulatorOptions, Emulators, Fault};

fn error_code(e: &azure_core::Error) -> (Option<StatusCode>, Option<String>) {
    match e.kind() {
        ErrorKind::HttpResponse { status, error_code, .. } => (Some(*status), error_code.clone()),
        _ => (None, None),
    }
}

#[tokio::test]
async fn rust_sdk_sets_and_gets_secrets_through_the_challenge() -> azure_core::Result<()> {
    let emu = Emulators::start(EmulatorOptions::default());
    for (k, v) in emu.env() {
        // SAFETY: the only test in this binary; nothing else reads the environment yet.
        unsafe { std::env::set_var(k, v) };
    }
    let credential = ManagedIdentityCredential::new(None)?;
    let options = SecretClientOptions { verify_challenge_resource: Some(false), ..Default::default() };
    let client = SecretClient::new(emu.vault(0).url(), credential, Some(options))?;

    let expires = azure_core::time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let params = SetSecretParameters {
        value: Some("dapi-sdk-value-1".into()),
        content_type: Some("databricks-pat".into()),
        tags: Some(HashMap::from([("managed-by".to_string(), "pat-rotator".to_string())])),
        secret_attributes: Some(SecretAttributes { expires: Some(expires), ..Default::default() }),
    };
    let first = client.set_secret("databricks-pat", params.try_into()?, None).await?.into_model()?;
    assert_eq!(first.value.as_deref(), Some("dapi-sdk-value-1"));
    let first_version = first.resource_id()?.version.expect("set returns a version");
    assert_eq!(first.attributes.as_ref().and_then(|a| a.expires), Some(expires));

    // The first request went out bodiless and got the challenge; the resend carried the token.
    let calls = emu.vault(0).faults().calls();
    assert_eq!((calls[0].op.as_str(), calls[0].status), ("set", 401));
    assert_eq!((calls[1].op.as_str(), calls[1].status), ("set", 200));
    assert_eq!(emu.identity().faults().count("token"), 1);

    let params = SetSecretParameters { value: Some("dapi-sdk-value-2".into()), ..Default::default() };
    client.set_secret("databricks-pat", params.try_into()?, None).await?;
    let latest = client.get_secret("databricks-pat", None).await?.into_model()?;
    assert_eq!(latest.value.as_deref(), Some("dapi-sdk-value-2"));
    assert!(
        emu.vault(0).faults().calls().iter().any(|c| c.path == "/secrets/databricks-pat/"),
        "SDK reads latest with a trailing slash"
    );
    let old = client
        .get_secret(
            "databricks-pat",
            Some(SecretClientGetSecretOptions { secret_version: Some(first_version.clone()), ..Default::default() }),
        )
        .await?
        .into_model()?;
    assert_eq!(old.value.as_deref(), Some("dapi-sdk-value-1"));
    assert_eq!(old.content_type.as_deref(), Some("databricks-pat"));
    assert_eq!(old.tags.as_ref().and_then(|t| t.get("managed-by")).map(String::as_str), Some("pat-rotator"));

    // Paging through versions one item per page via nextLink.
    let mut pager = client.list_secret_properties_versions(
        "databricks-pat",
        Some(SecretClientListSecretPropertiesVersionsOptions { maxresults: Some(1), ..Default::default() }),
    )?;
    let mut versions = Vec::new();
    while let Some(item) = pager.try_next().await? {
        versions.push(item.resource_id()?.version.unwrap_or_default());
    }
    // Listings come in no particular order (as from Key Vault), but each version exactly once
    // across the pages.
    let mut stored: Vec<String> = emu.vault(0).versions("databricks-pat").into_iter().map(|v| v.version).collect();
    versions.sort();
    stored.sort();
    assert_eq!(versions, stored);

    // Disabling a version through the SDK, then reading it: 403 SecretDisabled.
    let patch = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes { enabled: Some(false), ..Default::default() }),
        ..Default::default()
    };
    client
        .update_secret_properties(
            "databricks-pat",
            patch.try_into()?,
            Some(azure_security_keyvault_secrets::models::SecretClientUpdateSecretPropertiesOptions {
                secret_version: Some(first_version.clone()),
                ..Default::default()
            }),
        )
        .await?;
    let err = client
        .get_secret(
            "databricks-pat",
            Some(SecretClientGetSecretOptions { secret_version: Some(first_version), ..Default::default() }),
        )
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), (Some(StatusCode::Forbidden), Some("Forbidden".into())));

    // Errors keep Key Vault's codes.
    let err = client.get_secret("missing", None).await.unwrap_err();
    assert_eq!(error_code(&err), (Some(StatusCode::NotFound), Some("SecretNotFound".into())));
    emu.vault(0).soft_delete("databricks-pat");
    let params = SetSecretParameters { value: Some("x".into()), ..Default::default() };
    let err = client.set_secret("databricks-pat", params.try_into()?, None).await.unwrap_err();
    assert_eq!(error_code(&err), (Some(StatusCode::Conflict), Some("Conflict".into())));

    // A throttled answer is retried by the SDK's own policy (honouring Retry-After).
    emu.vault(0).seed_secret("other", "v", None, &[], None);
    emu.vault(0).faults().inject(
        "get",
        Fault::status(429)
            .header("Retry-After", "1")
            .header("x-ms-error-code", "Throttled")
            .json(serde_json::json!({"error": {"code": "Throttled", "message": "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}})),
        1,
    );
    let got = client.get_secret("other", None).await?.into_model()?;
    assert_eq!(got.value.as_deref(), Some("v"));
    let statuses: Vec<u16> =
        emu.vault(0).faults().calls().iter().filter(|c| c.path == "/secrets/other/").map(|c| c.status).collect();
    assert_eq!(statuses, [429, 200]);
    Ok(())
}
