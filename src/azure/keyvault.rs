//! Key Vault secrets through the official `azure_security_keyvault_secrets` client.
//!
//! This is where Key Vault's answers become stable error codes: 404 means "no secret",
//! 403 `ForbiddenByRbac` is `keyvault_forbidden` with the role to grant, 409
//! `ObjectIsDeletedButRecoverable` is `keyvault_secret_deleted`, 429/503 are `throttled`.
//! The value read from a vault is dropped on arrival: the domain decides on tags alone.
//!
//! A write's answer: a 408 or any 5xx leaves the outcome unknown (a gateway or front end may
//! answer so for a write it forwarded, which then lands: contract §7.3), like no answer at all.
//! The message of a 4xx answer to a write is dropped (Key Vault's validation messages quote the
//! submitted value); every other text of a write's answer is scrubbed of the value before it is
//! shortened (contract §10).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::RequestContent;
use azure_security_keyvault_secrets::models::{SecretAttributes, SecretProperties, SetSecretParameters};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use serde::Deserialize;
use tracing::debug;

use super::credential::{TokenSource, sdk_client_options, vault_scope};
use crate::error::{Code, Error, Result, excerpt};
use crate::rotation::model::{SecretWrite, StoredSecret};
use crate::rotation::ports::{SecretRead, SecretStore, WriteError};
use crate::secret::Redacted;
use crate::transport::client::Http;
use crate::transport::pacing::{Pace, Reservations};
use crate::transport::retry::{RetryPolicy, parse_retry_after};

/// One vault.
pub struct KeyVaultStore {
    client: SecretClient,
    vault_url: String,
    retry: RetryPolicy,
    /// Secret writes: this vault's budget, then the one all vaults share (contract §11).
    writes: Pace,
    /// Every other operation, likewise.
    reads: Pace,
    /// The identity the client authenticates as, and the scope of its vault token: whose object
    /// id `rotated-by` records (contract §10).
    tokens: Arc<TokenSource>,
    scope: Option<&'static str>,
    writer: OnceLock<String>,
}

/// Room for one secret write, reserved before the credential it will carry is created
/// (contract §11): the write is then sent as soon as the credential is proven.
pub struct WriteSlot(Reservations);

impl KeyVaultStore {
    /// `vault_url` is validated configuration (`https://…`). For a loopback host (a local
    /// emulator) the challenge-resource check is relaxed; nothing else changes.
    pub fn new(
        vault_url: &str,
        tokens: Arc<TokenSource>,
        http: &Http,
        retry: RetryPolicy,
        writes: Pace,
        reads: Pace,
    ) -> Result<KeyVaultStore> {
        let options = SecretClientOptions {
            client_options: sdk_client_options(http),
            verify_challenge_resource: Some(!crate::config::url_is_loopback(vault_url)),
            ..Default::default()
        };
        let client = SecretClient::new(vault_url, tokens.as_credential(), Some(options)).map_err(|e| {
            Error::new(Code::KeyvaultError, format!("Key Vault client for {vault_url}: {}", super::chain(&e)))
        })?;
        Ok(KeyVaultStore {
            client,
            vault_url: vault_url.to_string(),
            retry,
            writes,
            reads,
            scope: vault_scope(vault_url),
            tokens,
            writer: OnceLock::new(),
        })
    }

    fn error(&self, op: &str, name: &str, e: &azure_core::Error) -> Error {
        self.error_holding(op, name, e, None)
    }

    /// The error of an answer to a request that carried `value` (a write): every text of the
    /// answer is scrubbed of it before it is shortened, and the message of a 4xx answer (other
    /// than 408) is dropped altogether, status and code kept (contract §10).
    fn error_holding(&self, op: &str, name: &str, e: &azure_core::Error, value: Option<&Redacted>) -> Error {
        let what = format!("Key Vault {op} of secret \"{name}\" in {}", self.vault_url);
        let held: Vec<&Redacted> = value.into_iter().collect();
        let clean = |text: &str| crate::secret::scrub(text, &held);
        match e.kind() {
            ErrorKind::HttpResponse { status, error_code, raw_response } => {
                let status = u16::from(*status);
                let body =
                    raw_response.as_ref().map(|r| String::from_utf8_lossy(r.body()).to_string()).unwrap_or_default();
                let parsed: Option<KvErrorBody> = serde_json::from_str(&body).ok();
                let code = parsed.as_ref().and_then(|b| b.error.code.clone()).or_else(|| error_code.clone());
                let inner = parsed.as_ref().and_then(|b| b.error.innererror.as_ref()).and_then(|i| i.code.clone());
                let message = if value.is_some() && (400..500).contains(&status) && status != 408 {
                    "(the message of a refused write is not shown: Key Vault's may quote the submitted value)"
                        .to_string()
                } else {
                    parsed
                        .as_ref()
                        .and_then(|b| b.error.message.clone())
                        .map(|m| excerpt(&clean(&m)))
                        .unwrap_or_else(|| excerpt(&clean(&body)))
                };
                let retry_after = raw_response
                    .as_ref()
                    .and_then(|r| r.headers().get_optional_str(&azure_core::http::headers::RETRY_AFTER))
                    .and_then(|v| parse_retry_after(Some(v)));
                let codes = match (&code, &inner) {
                    (Some(c), Some(i)) => format!("{c}/{i}"),
                    (Some(c), None) => c.clone(),
                    (None, Some(i)) => i.clone(),
                    (None, None) => String::new(),
                };
                let detail = format!("{what}: {status} {codes}: {message}");
                let upstream = inner.clone().or(code.clone());
                let err = match (status, inner.as_deref()) {
                    (401, _) => Error::new(
                        Code::KeyvaultForbidden,
                        format!("{detail} (the vault did not accept the identity's token: wrong tenant or audience?)"),
                    ),
                    (403, Some("ForbiddenByRbac")) => Error::new(
                        Code::KeyvaultForbidden,
                        format!(
                            "{detail} (grant the identity a role with get, read-metadata and set on the vault: infra's custom role, or Key Vault Secrets Officer; new role assignments take minutes to apply)"
                        ),
                    ),
                    (403, _) => Error::new(Code::KeyvaultForbidden, detail),
                    (409, Some("ObjectIsDeletedButRecoverable")) => Error::new(
                        Code::KeyvaultSecretDeleted,
                        format!("{detail} (recover it with `az keyvault secret recover` or purge it, then run again)"),
                    ),
                    (409, Some("ObjectIsBeingDeleted")) => Error::new(Code::KeyvaultError, detail).transient(),
                    (429, _) | (503, _) => {
                        Error::new(Code::Throttled, detail).transient().with_retry_after(retry_after)
                    }
                    (408, _) | (500..=599, _) => Error::new(Code::UpstreamUnavailable, detail).transient(),
                    _ => Error::new(Code::KeyvaultError, detail),
                };
                err.with_status(status).with_upstream_code(upstream)
            }
            ErrorKind::Connection | ErrorKind::Io => {
                Error::new(Code::UpstreamUnavailable, format!("{what}: {}", clean(&super::chain(e)))).transient()
            }
            ErrorKind::Credential => {
                Error::new(Code::IdentityUnavailable, format!("{what}: {}", clean(&super::chain(e))))
            }
            _ => Error::new(Code::KeyvaultError, format!("{what}: {}", clean(&super::chain(e)))),
        }
    }
}

#[derive(Deserialize)]
struct KvErrorBody {
    error: KvError,
}

#[derive(Deserialize)]
struct KvError {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<KvError>>,
}

fn stored(s: azure_security_keyvault_secrets::models::Secret) -> StoredSecret {
    // The value is wrapped and dropped here: nothing downstream needs it.
    let _value = s.value.map(Redacted::new);
    let attrs = s.attributes.unwrap_or_default();
    StoredSecret {
        id: s.id.unwrap_or_default(),
        tags: s.tags.unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>(),
        content_type: s.content_type,
        created: attrs.created,
        enabled: attrs.enabled.unwrap_or(true),
        expires: attrs.expires,
    }
}

fn stored_properties(p: SecretProperties) -> StoredSecret {
    let attrs = p.attributes.unwrap_or_default();
    StoredSecret {
        id: p.id.unwrap_or_default(),
        tags: p.tags.unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>(),
        content_type: p.content_type,
        created: attrs.created,
        enabled: attrs.enabled.unwrap_or(true),
        expires: attrs.expires,
    }
}

/// Key Vault's clock, from the answer's `Date` header.
fn vault_date(headers: &azure_core::http::headers::Headers) -> Option<time::OffsetDateTime> {
    headers
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static("date"))
        .and_then(crate::transport::http_date)
}

/// A `403` for a disabled latest version (`SecretDisabled`): the secret exists, consumers just
/// cannot read it.
fn is_disabled(e: &azure_core::Error) -> bool {
    let ErrorKind::HttpResponse { status, error_code, raw_response } = e.kind() else { return false };
    if u16::from(*status) != 403 {
        return false;
    }
    let body = raw_response.as_ref().map(|r| String::from_utf8_lossy(r.body()).to_string()).unwrap_or_default();
    error_code.as_deref() == Some("SecretDisabled")
        || body.contains("\"SecretDisabled\"")
        || body.to_ascii_lowercase().contains("disabled secret")
}

/// Whether a failed request may have reached Key Vault and may still take effect (contract
/// §7.3): no answer came (a timeout, a connection lost after sending), or the answer was a 408
/// or any 5xx — a gateway or front end may answer so for a request it forwarded, which Key
/// Vault then applies. Only a 4xx other than 408 is a definitive refusal. A refused connection
/// never sent anything.
fn outcome_unknown(e: &azure_core::Error) -> bool {
    match e.kind() {
        // The old defect (issue 21 finding 3), for the simulator to find: only a gateway's
        // timeout was an unknown outcome.
        #[cfg(feature = "sim-bugs")]
        ErrorKind::HttpResponse { status, .. }
            if crate::rotation::bugs::on(crate::rotation::bugs::Bug::FiveXxIsDefinitive) =>
        {
            matches!(u16::from(*status), 408 | 504)
        }
        ErrorKind::HttpResponse { status, .. } => matches!(u16::from(*status), 408 | 500..=599),
        ErrorKind::Credential => false,
        _ => !crate::transport::client::never_sent(e),
    }
}

impl KeyVaultStore {
    /// Waits for room for one secret write in this vault and across all vaults, and holds it.
    pub async fn reserve_write(&self) -> WriteSlot {
        WriteSlot(self.writes.reserve().await)
    }

    /// [`SecretStore::write`] in a slot reserved earlier (or, without one, after waiting for
    /// room now).
    pub async fn write_in(
        &self,
        w: &SecretWrite,
        slot: Option<WriteSlot>,
    ) -> std::result::Result<StoredSecret, WriteError> {
        // One attempt: the domain reads back and decides whether another is safe.
        let params = SetSecretParameters {
            value: Some(w.value.expose().to_string()),
            content_type: Some(w.content_type.clone()),
            tags: Some(w.tags.clone().into_iter().collect::<HashMap<_, _>>()),
            secret_attributes: Some(SecretAttributes { enabled: Some(true), expires: w.expires, ..Default::default() }),
        };
        let body: RequestContent<SetSecretParameters> = params.try_into().map_err(|e: azure_core::Error| {
            WriteError::Failed(self.error_holding("write", &w.name, &e, Some(&w.value)))
        })?;
        let slot = match slot {
            Some(s) => s,
            None => self.reserve_write().await,
        };
        slot.0.stamp();
        let limit = self.retry.attempt_timeout();
        let answer = tokio::time::timeout(limit, async {
            let resp = self.client.set_secret(&w.name, body, None).await?;
            resp.into_model()
        })
        .await;
        match answer {
            Ok(Ok(secret)) => Ok(stored(secret)),
            Ok(Err(e)) if outcome_unknown(&e) => {
                Err(WriteError::Unknown(self.error_holding("write", &w.name, &e, Some(&w.value))))
            }
            Ok(Err(e)) => Err(WriteError::Failed(self.error_holding("write", &w.name, &e, Some(&w.value)))),
            Err(_) => Err(WriteError::Unknown(
                Error::new(
                    Code::Timeout,
                    format!(
                        "Key Vault write of secret \"{}\" in {}: no answer within {} s",
                        w.name,
                        self.vault_url,
                        limit.as_secs_f32()
                    ),
                )
                .transient(),
            )),
        }
    }

    /// The latest version of each secret of the vault whose name (lower case) is in `wanted`,
    /// from the vault's list of secrets (one paced request per page of 25), keyed by lower-case
    /// name. Stops after `max_items` secrets; the flag says whether the list was read to its end
    /// (only then does a name's absence mean the secret is absent). Metadata only.
    pub async fn latest_of(
        &self,
        wanted: &std::collections::HashSet<String>,
        max_items: usize,
    ) -> Result<(HashMap<String, StoredSecret>, bool)> {
        self.retry
            .run("listing the vault's secrets", || async {
                let mut pages = self
                    .client
                    .list_secret_properties(None)
                    .map_err(|e| self.error("secrets list", "*", &e))?
                    .into_pages();
                let (mut found, mut seen) = (HashMap::new(), 0usize);
                loop {
                    self.reads.acquire().await;
                    let Some(page) = pages.try_next().await.map_err(|e| self.error("secrets list", "*", &e))? else {
                        return Ok((found, true));
                    };
                    let page = page.into_model().map_err(|e| self.error("secrets list", "*", &e))?;
                    for p in page.value {
                        seen += 1;
                        let s = stored_properties(p);
                        let name =
                            s.id.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
                        if wanted.contains(&name) {
                            found.insert(name, s);
                        }
                    }
                    if page.next_link.as_deref().is_none_or(str::is_empty) {
                        return Ok((found, true));
                    }
                    if seen >= max_items {
                        return Ok((found, false));
                    }
                }
            })
            .await
    }

    /// The latest version's metadata when the vault refuses to read it because it is disabled:
    /// the versions list still shows it (in no particular order).
    async fn latest_from_versions(&self, name: &str) -> Result<(Option<StoredSecret>, Vec<StoredSecret>)> {
        Ok(newest_second(self.versions(name).await?))
    }
}

/// The versions of the newest `created` second: Key Vault's `created` has whole seconds, so
/// when several share it, any of them may be the one written last (contract §7.4). Returns the
/// one with the greatest id (whose credential a new version's `previous-*` tag names) and the
/// others. A version without `created` is older than any with one.
fn newest_second(versions: Vec<StoredSecret>) -> (Option<StoredSecret>, Vec<StoredSecret>) {
    let Some(newest) = versions.iter().map(|v| v.created).max() else { return (None, Vec::new()) };
    let mut tied: Vec<StoredSecret> = versions.into_iter().filter(|v| v.created == newest).collect();
    tied.sort_by(|a, b| b.id.cmp(&a.id));
    let latest = if tied.is_empty() { None } else { Some(tied.remove(0)) };
    // The old defect (issue 21 finding 2), for the simulator to find: the greatest id alone.
    #[cfg(feature = "sim-bugs")]
    if crate::rotation::bugs::on(crate::rotation::bugs::Bug::SameSecondTie) {
        return (latest, Vec::new());
    }
    (latest, tied)
}

#[async_trait]
impl SecretStore for KeyVaultStore {
    fn error(&self, message: String) -> Error {
        Error::new(Code::KeyvaultError, format!("{message} (vault {})", self.vault_url))
    }

    /// The `oid` of the Key Vault access token the client presents (the token of the read
    /// that preceded it, from the cache).
    async fn writer(&self) -> Option<String> {
        if let Some(w) = self.writer.get() {
            return Some(w.clone());
        }
        let oid = self.tokens.object_id(self.scope?).await?;
        Some(self.writer.get_or_init(|| oid).clone())
    }

    async fn read_latest(&self, name: &str) -> Result<SecretRead> {
        enum Got {
            Read(SecretRead),
            Disabled(Option<time::OffsetDateTime>),
        }
        let got = self
            .retry
            .run("reading the secret", || async {
                self.reads.acquire().await;
                match self.client.get_secret(name, None).await {
                    Ok(resp) => {
                        let at = vault_date(resp.headers());
                        let secret = resp.into_model().map_err(|e| self.error("read", name, &e))?;
                        Ok(Got::Read(SecretRead { latest: Some(stored(secret)), tied: Vec::new(), at }))
                    }
                    Err(e) => match e.kind() {
                        ErrorKind::HttpResponse { status, raw_response, .. } if u16::from(*status) == 404 => {
                            // "Absent" — or soft-deleted, or being recovered: the domain treats
                            // it as no proof of anything.
                            Ok(Got::Read(SecretRead {
                                latest: None,
                                tied: Vec::new(),
                                at: raw_response.as_ref().and_then(|r| vault_date(r.headers())),
                            }))
                        }
                        ErrorKind::HttpResponse { raw_response, .. } if is_disabled(&e) => {
                            Ok(Got::Disabled(raw_response.as_ref().and_then(|r| vault_date(r.headers()))))
                        }
                        _ => Err(self.error("read", name, &e)),
                    },
                }
            })
            .await?;
        let r = match got {
            Got::Read(r) => r,
            Got::Disabled(at) => {
                let (latest, tied) = self.latest_from_versions(name).await.map_err(|e| {
                    e.context(
                        "the latest version is disabled and the versions list (to see its tags) could not be read",
                    )
                })?;
                SecretRead { latest, tied, at }
            }
        };
        debug!(vault = %self.vault_url, secret = name, found = r.latest.is_some(), "read secret");
        Ok(r)
    }

    async fn versions(&self, name: &str) -> Result<Vec<StoredSecret>> {
        self.retry
            .run("listing the secret's versions", || async {
                self.reads.acquire().await;
                let pager = self
                    .client
                    .list_secret_properties_versions(name, None)
                    .map_err(|e| self.error("versions list", name, &e))?;
                let items: Vec<SecretProperties> =
                    pager.try_collect().await.map_err(|e| self.error("versions list", name, &e))?;
                Ok(items.into_iter().map(stored_properties).collect())
            })
            .await
    }

    async fn write(&self, w: &SecretWrite) -> std::result::Result<StoredSecret, WriteError> {
        self.write_in(w, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn version(id: &str, created: Option<time::OffsetDateTime>) -> StoredSecret {
        StoredSecret {
            id: format!("https://v/secrets/s/{id}"),
            tags: BTreeMap::new(),
            content_type: None,
            created,
            enabled: true,
            expires: None,
        }
    }

    #[test]
    fn every_version_of_the_newest_second_counts_whatever_the_order() {
        let t = datetime!(2026-11-26 03:00:00 UTC);
        let older = version("ffff", Some(t - time::Duration::seconds(1)));
        let a = version("0aaa", Some(t));
        let b = version("9bbb", Some(t));
        let c = version("5ccc", Some(t));
        for order in [
            vec![older.clone(), a.clone(), b.clone(), c.clone()],
            vec![c.clone(), b.clone(), older.clone(), a.clone()],
            vec![b.clone(), a.clone(), c.clone(), older.clone()],
        ] {
            let (latest, tied) = newest_second(order);
            assert_eq!(latest.as_ref(), Some(&b), "the greatest id of the newest second");
            assert_eq!(tied, vec![c.clone(), a.clone()]);
        }
        let (latest, tied) = newest_second(vec![older.clone(), version("0000", None)]);
        assert_eq!((latest, tied.len()), (Some(older), 0), "no created is older than any created");
        assert_eq!(newest_second(Vec::new()), (None, Vec::new()));
    }
}
