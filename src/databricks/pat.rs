//! The PAT issuer: the calling identity's personal access tokens in one workspace (Token API).
//!
//! - **Ownership** (contract §6): a token is this target's when its comment is
//!   `pat-rotator/<target>/<secret-key>/<attempt>` with this target and this secret's key; a
//!   comment `pat-rotator/<target>/<attempt>` (releases before the secret key) is the target's
//!   only while a version of this secret names it; anything else is never touched.
//! - **Refusals**: `QUOTA_EXCEEDED` (600 tokens per identity and workspace) is a full issuer; a
//!   lifetime above `maxTokenLifetimeDays` names the cap.
//! - **Verification**: `GET /api/2.0/preview/scim/v2/Me`, which Databricks lists under every
//!   token scope — a scoped token may call it and an auto-scoped token learns nothing from it.
//!   The Token API itself would not do: it is in the `authentication` scope, which a scoped
//!   token may lack and which would teach an auto-scoped token to mint tokens.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

use super::tags;
use super::{Auth, Body, CreateFailure, DatabricksWorkspace, errors, wire};
use crate::error::{Code, Error, Result};
use crate::rotation::model::{CreateRequest, Credential, NewCredential, Ownership, Profile};
use crate::rotation::ports::{CreateError, Issuer, Listing, Refusal, Usage};
use crate::secret::Redacted;

/// What a PAT looks like in the vault (contract §6).
pub static PROFILE: Profile = Profile {
    noun: "token",
    content_type: "databricks-pat",
    id_tag: tags::TOKEN_ID,
    previous_tag: tags::PREVIOUS_TOKEN_ID,
    expires_tag: Some(tags::EXPIRES_AT),
    cap: 6,
    revokes_over_cap: true,
    labels_attempts: true,
    reports_unrecorded: false,
    naming_tags: tags::NAMING,
};

/// The verification call.
const VERIFY_PATH: &str = "/api/2.0/preview/scim/v2/Me";
/// What a `403` on the Token API asks of the identity.
const FORBIDDEN: &str = "the identity needs the token CAN_USE permission in the workspace";
/// What a `403` on the Token Management API asks of the identity.
const USAGE_FORBIDDEN: &str = "reading a token's last use (Token Management API) needs workspace admin; without it keep_while_used falls back to the plain grace";

/// The first 12 hex digits of the SHA-256 of `<vault host>/<secret name>`, both in lower case
/// (contract §6). The host is the vault URL's authority: a port appears only when the URL names
/// one (loopback emulators), so `KEY_VAULT_NAME` and the equivalent URL give the same key.
pub fn secret_key(key_vault_url: &str, secret_name: &str) -> String {
    let authority = url::Url::parse(key_vault_url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| key_vault_url.to_string());
    let input = format!("{}/{}", authority.to_ascii_lowercase(), secret_name.to_ascii_lowercase());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The comment of a token created by `attempt` for a target and secret.
pub fn comment(target: &str, secret_key: &str, attempt: &str) -> String {
    format!("pat-rotator/{target}/{secret_key}/{attempt}")
}

/// Whose a token with this comment is, and the attempt that made it (contract §6).
pub fn ownership(comment: Option<&str>, target: &str, secret_key: &str) -> (Ownership, Option<String>) {
    let Some(rest) = comment.and_then(|c| c.strip_prefix("pat-rotator/")).and_then(|r| r.strip_prefix(target)) else {
        return (Ownership::NotOurs, None);
    };
    let Some(rest) = rest.strip_prefix('/') else { return (Ownership::NotOurs, None) };
    match rest.split_once('/') {
        // The old defect, for the simulator to find: ownership by target name alone.
        #[cfg(feature = "sim-bugs")]
        Some((_, attempt))
            if crate::rotation::bugs::on(crate::rotation::bugs::Bug::OwnerByName)
                && !attempt.is_empty()
                && !attempt.contains('/') =>
        {
            (Ownership::Ours, Some(attempt.to_string()))
        }
        Some((key, attempt)) if key == secret_key && !attempt.is_empty() && !attempt.contains('/') => {
            (Ownership::Ours, Some(attempt.to_string()))
        }
        Some(_) => (Ownership::NotOurs, None),
        None if !rest.is_empty() => (Ownership::IfRecorded, None),
        None => (Ownership::NotOurs, None),
    }
}

/// How many of `tokens` each target holds (by the target named in a `pat-rotator/<target>/…`
/// comment), largest first, the rest summed: `598 — a: 6, b: 2, … (and 290 more targets with 580),
/// not pat-rotator's: 10`.
pub fn tokens_per_target(tokens: &[wire::Token]) -> String {
    const SHOWN: usize = 20;
    let mut per: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    let mut others = 0;
    for t in tokens {
        match t.comment.as_deref().and_then(|c| c.strip_prefix("pat-rotator/")).and_then(|r| r.split('/').next()) {
            Some(target) if !target.is_empty() => *per.entry(target).or_default() += 1,
            _ => others += 1,
        }
    }
    let mut counts: Vec<(&str, usize)> = per.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = counts.iter().take(SHOWN).map(|(t, n)| format!("{t}: {n}")).collect();
    if counts.len() > SHOWN {
        let rest: usize = counts[SHOWN..].iter().map(|(_, n)| n).sum();
        parts.push(format!("and {} more targets with {rest}", counts.len() - SHOWN));
    }
    parts.push(format!("not pat-rotator's: {others}"));
    format!("{} — {}", tokens.len(), parts.join(", "))
}

/// One target's PATs: the workspace client of its owner, and what names the target's tokens.
pub struct PatIssuer {
    ws: Arc<DatabricksWorkspace>,
    target: String,
    secret_key: String,
    scopes: Option<Vec<String>>,
    autoscope: Option<bool>,
}

impl PatIssuer {
    pub fn new(
        ws: Arc<DatabricksWorkspace>,
        target: &str,
        secret_key: String,
        scopes: Option<Vec<String>>,
        autoscope: Option<bool>,
    ) -> PatIssuer {
        PatIssuer { ws, target: target.to_string(), secret_key, scopes, autoscope }
    }

    fn credential(&self, t: wire::Token) -> Credential {
        let (ownership, attempt) = ownership(t.comment.as_deref(), &self.target, &self.secret_key);
        Credential {
            id: t.id,
            comment: t.comment,
            created_at: t.created_at,
            expires_at: t.expires_at,
            ownership,
            attempt,
        }
    }

    /// The workspace's `maxTokenLifetimeDays`, when it can be read (0 = no limit).
    async fn max_lifetime_days(&self) -> Option<u32> {
        let answer = self
            .ws
            .call("reading workspace-conf", Method::GET, "/api/2.0/workspace-conf?keys=maxTokenLifetimeDays", None, "")
            .await
            .ok()?;
        wire::parse_max_lifetime(&answer.body)
    }

    /// A refusal of a create, read: the quota, the lifetime cap (named when it can be read), or
    /// something else.
    async fn refusal(&self, e: Error, lifetime_days: u64) -> CreateError {
        if e.code == Code::DatabricksQuotaExceeded {
            // Contract §11: say whose tokens fill the quota, per target of this workspace and owner.
            let per_target = match self.list_raw().await {
                Ok((tokens, _)) => format!("; live tokens of this identity here: {}", tokens_per_target(&tokens)),
                Err(le) => format!("; the tokens could not be listed to say whose ({le})"),
            };
            let e = Error {
                message: format!("{} (quota: 600 tokens per identity and workspace{per_target})", e.message),
                ..e
            };
            return CreateError::Refused(Refusal::Full, e);
        }
        // A lifetime above the cap is a 400; its message is not always recognisable.
        if e.code != Code::DatabricksLifetimeTooLong && !(e.code == Code::DatabricksError && e.status == Some(400)) {
            return CreateError::Refused(Refusal::Other, e);
        }
        match self.max_lifetime_days().await {
            Some(cap) if cap > 0 && lifetime_days > cap as u64 => CreateError::Refused(
                Refusal::LifetimeAboveCap,
                Error::new(
                    Code::DatabricksLifetimeTooLong,
                    format!(
                        "lifetime_days {lifetime_days} exceeds the workspace's maximum token lifetime of {cap} days (maxTokenLifetimeDays); set lifetime_days to {cap} or less"
                    ),
                )
                .with_status(400)
                .with_upstream_code(e.upstream_code.clone()),
            ),
            _ if e.code == Code::DatabricksLifetimeTooLong => CreateError::Refused(
                Refusal::LifetimeAboveCap,
                e.context(&format!(
                    "lifetime_days {lifetime_days} is above the workspace's limit (the limit could not be read)"
                )),
            ),
            _ => CreateError::Refused(Refusal::Other, e),
        }
    }

    /// A token's last use, from the Token Management API (`GET
    /// /api/2.0/token-management/tokens/{id}`, workspace admins only), as the identity that
    /// lists the target's tokens: the UTC day of `last_used_day` and the workspace's `Date`.
    pub async fn last_used(&self, id: &str) -> Usage {
        // Token ids are hex; anything else is sent percent-encoded, never as a path.
        let path = format!(
            "/api/2.0/token-management/tokens/{}",
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        match self.ws.call("reading a token's last use", Method::GET, &path, None, USAGE_FORBIDDEN).await {
            Ok(a) => match wire::parse_last_used_day(&a.body) {
                Ok(last_used_day) => Usage::Read { last_used_day, at: a.date },
                Err(e) => Usage::Failed(Error::new(
                    Code::DatabricksError,
                    format!("reading a token's last use in {}: {e}", self.ws.base()),
                )),
            },
            Err(e) if e.status == Some(403) => Usage::Forbidden { scope: self.usage_scope(), error: e },
            // `RESOURCE_DOES_NOT_EXIST`: revoked or expired.
            Err(e) if e.status == Some(404) => Usage::Gone,
            Err(e) => Usage::Failed(e),
        }
    }

    /// What a `403` of the Token Management API concerns: this workspace, as this owner.
    fn usage_scope(&self) -> String {
        format!("workspace {}", self.ws.base())
    }

    /// The identity's tokens, as the workspace lists them (for `tokens`).
    pub async fn list_raw(&self) -> Result<(Vec<wire::Token>, Option<OffsetDateTime>)> {
        let a = self.ws.call("listing tokens", Method::GET, "/api/2.0/token/list", None, FORBIDDEN).await?;
        let tokens = wire::parse_list(&a.body)
            .map_err(|e| Error::new(Code::DatabricksError, format!("listing tokens in {}: {e}", self.ws.base())))?;
        Ok((tokens, a.date))
    }
}

#[async_trait]
impl Issuer for PatIssuer {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    async fn list(&self) -> Result<Listing> {
        let (tokens, at) = self.list_raw().await?;
        Ok(Listing { credentials: tokens.into_iter().map(|t| self.credential(t)).collect(), at })
    }

    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        let mut body = json!({
            "comment": comment(&self.target, &self.secret_key, &req.attempt),
            "lifetime_seconds": req.lifetime_seconds,
        });
        if let Some(scopes) = &self.scopes {
            body["scopes"] = json!(scopes);
        }
        if let Some(autoscope) = self.autoscope {
            body["autoscope_enabled"] = json!(autoscope);
        }
        match self.ws.create_call("creating a token", "/api/2.0/token/create", body, FORBIDDEN).await {
            Ok(a) => wire::parse_create(&a.body)
                .map(|(value, t)| NewCredential { value, info: self.credential(t) })
                .map_err(|e| {
                    CreateError::Ambiguous(Error::new(
                        Code::DatabricksError,
                        format!("creating a token in {}: unreadable answer ({e})", self.ws.base()),
                    ))
                }),
            Err(CreateFailure::Ambiguous(e)) => Err(CreateError::Ambiguous(e)),
            Err(CreateFailure::Refused(e)) => Err(self.refusal(e, req.lifetime_seconds / 86_400).await),
        }
    }

    async fn verify(&self, token: &Redacted) -> Result<Option<OffsetDateTime>> {
        let base = self.ws.base();
        self.ws
            .retry()
            .run("verifying the new token", || async {
                let a = self.ws.exchange(Method::GET, VERIFY_PATH, Body::None, Auth::Bearer(token)).await?;
                if a.status.is_success() || errors::is_missing_scopes(a.status, &a.body) {
                    // A refusal for missing scopes comes only after the token authenticated.
                    Ok(a.date)
                } else {
                    // Scrubbed of the token before anything is shortened (contract §10).
                    let mut e = errors::from_answer_holding(
                        "verifying the new token",
                        base,
                        a.status,
                        a.retry_after.as_deref(),
                        &a.body,
                        false,
                        "",
                        &[token],
                    );
                    // A token that does not authenticate is refused with 403 `Invalid access
                    // token.`; contract §5 calls a failed verification unauthorized.
                    if e.code == Code::DatabricksForbidden {
                        e.code = Code::DatabricksUnauthorized;
                    }
                    Err(e)
                }
            })
            .await
    }

    async fn revoke(&self, id: &str) -> Result<()> {
        let body = json!({ "token_id": id });
        self.ws.delete("revoking a token", Method::POST, "/api/2.0/token/delete", Some(body), FORBIDDEN).await
    }

    async fn usage(&self, id: &str) -> Usage {
        self.last_used(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_is_the_vault_host_and_name_in_lower_case() {
        let a = secret_key("https://MyVault.vault.azure.net", "Databricks-PAT");
        assert_eq!(a, secret_key("https://myvault.vault.azure.net/", "databricks-pat"));
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        // sha256("myvault.vault.azure.net/databricks-pat"), computed independently.
        assert_eq!(a, "0b8343c2e53b");
        assert_ne!(a, secret_key("https://other.vault.azure.net", "databricks-pat"));
        assert_ne!(a, secret_key("https://myvault.vault.azure.net", "databricks-pat-2"));
        assert_ne!(secret_key("https://127.0.0.1:8443", "s"), secret_key("https://127.0.0.1:8444", "s"));
    }

    #[test]
    fn tokens_per_target_names_the_largest_holders() {
        let token = |c: Option<&str>| wire::Token {
            id: "x".into(),
            comment: c.map(str::to_string),
            created_at: None,
            expires_at: None,
        };
        let mut tokens = vec![token(Some("Terraform-generated token")), token(None)];
        for (t, n) in [("a", 3), ("b", 1), ("c", 6)] {
            for i in 0..n {
                tokens.push(token(Some(&format!("pat-rotator/{t}/0123456789ab/{i}"))));
            }
        }
        tokens.push(token(Some("pat-rotator/a/old-attempt")));
        assert_eq!(tokens_per_target(&tokens), "13 — c: 6, a: 4, b: 1, not pat-rotator's: 2");
        let many: Vec<wire::Token> = (0..25).map(|i| token(Some(&format!("pat-rotator/t{i:02}/k/a")))).collect();
        let s = tokens_per_target(&many);
        assert!(s.starts_with("25 — t00: 1, t01: 1"), "{s}");
        assert!(s.ends_with("and 5 more targets with 5, not pat-rotator's: 0"), "{s}");
        // Exactly as many targets as are shown: no "more targets" part.
        let twenty: Vec<wire::Token> = (0..20).map(|i| token(Some(&format!("pat-rotator/t{i:02}/k/a")))).collect();
        let s = tokens_per_target(&twenty);
        assert!(s.ends_with("t19: 1, not pat-rotator's: 0"), "{s}");
        // A comment naming no target is not pat-rotator's.
        assert_eq!(tokens_per_target(&[token(Some("pat-rotator//k/a"))]), "1 — not pat-rotator's: 1");
    }

    #[test]
    fn ownership_by_target_and_secret() {
        let k = "0123456789ab";
        let cases: &[(Option<&str>, Ownership, Option<&str>)] = &[
            (Some("pat-rotator/t/0123456789ab/att1"), Ownership::Ours, Some("att1")),
            (Some("pat-rotator/t/ffffffffffff/att1"), Ownership::NotOurs, None),
            (Some("pat-rotator/t/att1"), Ownership::IfRecorded, None),
            (Some("pat-rotator/tt/0123456789ab/att1"), Ownership::NotOurs, None),
            (Some("pat-rotator/t2/att1"), Ownership::NotOurs, None),
            (Some("pat-rotator/t/"), Ownership::NotOurs, None),
            (Some("pat-rotator/t"), Ownership::NotOurs, None),
            (Some("pat-rotator/t/0123456789ab/a/b"), Ownership::NotOurs, None),
            (Some("pat-rotator/t/0123456789ab/"), Ownership::NotOurs, None),
            (Some("Terraform-generated token"), Ownership::NotOurs, None),
            (None, Ownership::NotOurs, None),
        ];
        for (c, want, attempt) in cases {
            assert_eq!(ownership(*c, "t", k), (*want, attempt.map(str::to_string)), "{c:?}");
        }
        let c = comment("t", k, "att9");
        assert_eq!(ownership(Some(&c), "t", k), (Ownership::Ours, Some("att9".into())));
    }
}
