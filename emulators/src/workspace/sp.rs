//! Service principals of a workspace, their Databricks OAuth secrets, and the OAuth access
//! tokens minted from those secrets at `/oidc/v1/token`.
//!
//! Pure data with Databricks' rules (a secret's value is shown once; deleted and expired
//! secrets vanish from listings and stop signing in; at most a limit of live secrets per
//! principal; an access token lives one hour and outlives the secret it was minted with);
//! nothing here knows about HTTP or who may call what.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::encoding::{b64url_encode, random_bytes, random_hex};

/// Who manages a service principal: Azure Databricks itself, or Microsoft Entra ID (an app
/// registration added to the workspace). Only Databricks-managed ones can hold Databricks
/// OAuth secrets by default (see the emulator README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpKind {
    /// Created in Azure Databricks; authenticates with Databricks OAuth secrets (and PATs).
    DatabricksManaged,
    /// An Entra ID app registration added to the workspace; authenticates with Entra ID tokens.
    EntraManaged,
}

impl SpKind {
    /// Short name used in the state document.
    pub fn as_str(self) -> &'static str {
        match self {
            SpKind::DatabricksManaged => "databricks_managed",
            SpKind::EntraManaged => "entra_managed",
        }
    }
}

/// A service principal registered in the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
    /// The workspace's SCIM id (an int64 as a decimal string): what the secrets API takes.
    pub scim_id: String,
    /// Application (client) id, a lowercase GUID: the OAuth `client_id`.
    pub application_id: String,
    /// SCIM `displayName`.
    pub display_name: String,
    /// Who manages it.
    pub kind: SpKind,
    /// The key the workspace's membership, admin and token-ownership sets use for it: the Entra
    /// object id of an Entra-managed principal the directory knows, else the application id.
    pub principal: String,
}

/// One OAuth secret of a service principal, as the workspace knows it (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpSecretInfo {
    /// 64 lowercase hex characters.
    pub id: String,
    /// Application id of the owning service principal.
    pub application_id: String,
    /// `secret_hash` as answered (random hex here, not derived from the value).
    pub secret_hash: String,
    /// Scopes bound at creation (empty = unrestricted).
    pub scopes: Vec<String>,
    /// `create_time` (the workspace's clock).
    pub created: SystemTime,
    /// `update_time`.
    pub updated: SystemTime,
    /// `expire_time`.
    pub expires: SystemTime,
    /// Deleted through the API or out of band.
    pub deleted: bool,
    /// When it was deleted (the workspace's clock).
    pub deleted_at: Option<SystemTime>,
}

impl SpSecretInfo {
    /// Not deleted and not expired at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        !self.deleted && self.expires > now
    }
}

/// An OAuth access token minted at `/oidc/v1/token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthToken {
    /// Application id of the service principal it acts as.
    pub application_id: String,
    /// The secret it was minted with.
    pub secret_id: String,
    /// Granted scopes (space-separated in the wire format).
    pub scopes: Vec<String>,
    /// Issue time (the workspace's clock).
    pub issued: SystemTime,
    /// Expiry (the workspace's clock).
    pub expires: SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct ServicePrincipals {
    sps: Vec<ServicePrincipal>,
    /// Secrets in creation order.
    secrets: Vec<SpSecretInfo>,
    /// Secret value → secret id.
    by_value: HashMap<String, String>,
    tokens: HashMap<String, OAuthToken>,
    issued_secrets: Vec<String>,
    issued_tokens: Vec<String>,
    next_scim_id: u64,
}

/// First SCIM id handed out (16 digits, like real workspace ids).
const FIRST_SCIM_ID: u64 = 7_214_000_000_000_001;

impl ServicePrincipals {
    /// Registers a principal (or returns the existing one with that application id).
    pub fn add(&mut self, application_id: &str, display_name: &str, kind: SpKind, principal: &str) -> ServicePrincipal {
        let application_id = application_id.to_ascii_lowercase();
        if let Some(sp) = self.by_app(&application_id) {
            return sp;
        }
        let scim_id = (FIRST_SCIM_ID + self.next_scim_id).to_string();
        self.next_scim_id += 1;
        let sp = ServicePrincipal {
            scim_id,
            application_id,
            display_name: display_name.to_string(),
            kind,
            principal: principal.to_string(),
        };
        self.sps.push(sp.clone());
        sp
    }

    pub fn all(&self) -> &[ServicePrincipal] {
        &self.sps
    }

    pub fn by_app(&self, application_id: &str) -> Option<ServicePrincipal> {
        self.sps.iter().find(|s| s.application_id.eq_ignore_ascii_case(application_id)).cloned()
    }

    pub fn by_principal(&self, principal: &str) -> Option<ServicePrincipal> {
        self.sps.iter().find(|s| s.principal == principal).cloned()
    }

    /// Issues a secret. Returns `(info, value)`.
    pub fn create_secret(
        &mut self,
        application_id: &str,
        scopes: Vec<String>,
        now: SystemTime,
        lifetime: Duration,
    ) -> (SpSecretInfo, String) {
        let info = SpSecretInfo {
            id: random_hex(64),
            application_id: application_id.to_ascii_lowercase(),
            secret_hash: random_hex(64),
            scopes,
            created: now,
            updated: now,
            expires: now + lifetime,
            deleted: false,
            deleted_at: None,
        };
        // Databricks OAuth secrets start with `dose` (AWS Secrets Manager's DatabricksSPSecret
        // docs: "dose followed by the secret value").
        let value = format!("dose{}", random_hex(32));
        self.by_value.insert(value.clone(), info.id.clone());
        self.issued_secrets.push(value.clone());
        self.secrets.push(info.clone());
        (info, value)
    }

    /// Live secrets of a principal, oldest first.
    pub fn live_secrets(&self, application_id: &str, now: SystemTime) -> Vec<SpSecretInfo> {
        self.secrets
            .iter()
            .filter(|s| s.application_id.eq_ignore_ascii_case(application_id) && s.is_live(now))
            .cloned()
            .collect()
    }

    /// Every secret ever issued, oldest first.
    pub fn all_secrets(&self) -> Vec<SpSecretInfo> {
        self.secrets.clone()
    }

    pub fn secret(&self, id: &str) -> Option<SpSecretInfo> {
        self.secrets.iter().find(|s| s.id == id).cloned()
    }

    /// The live secret of `application_id` whose value this is, if any.
    pub fn check_secret(&self, application_id: &str, value: &str, now: SystemTime) -> Option<SpSecretInfo> {
        let id = self.by_value.get(value)?;
        self.secret(id).filter(|s| s.application_id.eq_ignore_ascii_case(application_id) && s.is_live(now))
    }

    /// Deletes a secret. False when unknown or already deleted.
    pub fn delete_secret(&mut self, id: &str, now: SystemTime) -> bool {
        match self.secrets.iter_mut().find(|s| s.id == id) {
            Some(s) if !s.deleted => {
                s.deleted = true;
                s.deleted_at = Some(now);
                s.updated = now;
                true
            }
            _ => false,
        }
    }

    /// Moves a secret's creation, update and expiry `by` into the past.
    pub fn age_secret(&mut self, id: &str, by: Duration) -> bool {
        let Some(s) = self.secrets.iter_mut().find(|s| s.id == id) else { return false };
        s.created -= by;
        s.updated -= by;
        s.expires -= by;
        s.deleted_at = s.deleted_at.map(|d| d - by);
        true
    }

    pub fn secret_ids(&self) -> Vec<String> {
        self.secrets.iter().map(|s| s.id.clone()).collect()
    }

    /// Mints an access token. `issuer` is the workspace's OIDC root (the `iss` claim).
    pub fn mint_token(
        &mut self,
        secret: &SpSecretInfo,
        scopes: Vec<String>,
        issuer: &str,
        now: SystemTime,
        lifetime: Duration,
    ) -> String {
        let token = OAuthToken {
            application_id: secret.application_id.clone(),
            secret_id: secret.id.clone(),
            scopes,
            issued: now,
            expires: now + lifetime,
        };
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        // Databricks' access tokens are JWTs; clients treat them as opaque. The signature is random.
        let header = serde_json::json!({"alg": "RS256", "kid": "emulator", "typ": "at+jwt"});
        let claims = serde_json::json!({
            "client_id": token.application_id, "sub": token.application_id, "aud": token.application_id,
            "iss": issuer, "scope": token.scopes.join(" "),
            "iat": secs(now), "nbf": secs(now), "exp": secs(token.expires), "jti": random_hex(32),
        });
        let value = format!(
            "{}.{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes()),
            b64url_encode(&random_bytes(64)),
        );
        self.tokens.insert(value.clone(), token);
        self.issued_tokens.push(value.clone());
        value
    }

    pub fn token(&self, value: &str) -> Option<OAuthToken> {
        self.tokens.get(value).cloned()
    }

    /// Makes every minted access token expire at `now`.
    pub fn expire_tokens(&mut self, now: SystemTime) {
        for t in self.tokens.values_mut() {
            t.expires = t.expires.min(now);
        }
    }

    pub fn issued_secrets(&self) -> Vec<String> {
        self.issued_secrets.clone()
    }

    pub fn issued_tokens(&self) -> Vec<String> {
        self.issued_tokens.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_lifecycle() {
        let mut sps = ServicePrincipals::default();
        let now = SystemTime::now();
        let a = sps.add("0A0A0A0A-1111-4111-8111-AAAAAAAAAAAA", "a", SpKind::DatabricksManaged, "k");
        assert_eq!(a.application_id, "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa");
        assert_eq!(a.scim_id.len(), 16);
        assert_eq!(sps.add(&a.application_id, "again", SpKind::EntraManaged, "x"), a, "idempotent");
        let b = sps.add("0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb", "b", SpKind::DatabricksManaged, "kb");
        assert_ne!(a.scim_id, b.scim_id);

        let (s1, v1) = sps.create_secret(&a.application_id, vec![], now, Duration::from_secs(100));
        let (s2, _) = sps.create_secret(&a.application_id, vec![], now, Duration::from_secs(200));
        assert!(v1.starts_with("dose") && v1.len() == 36);
        assert_eq!(s1.id.len(), 64);
        assert_eq!(sps.live_secrets(&a.application_id, now).len(), 2);
        assert!(sps.live_secrets(&b.application_id, now).is_empty());
        assert_eq!(sps.live_secrets(&a.application_id, now + Duration::from_secs(100)), vec![s2.clone()]);
        assert_eq!(sps.check_secret(&a.application_id, &v1, now).map(|s| s.id), Some(s1.id.clone()));
        assert!(sps.check_secret(&b.application_id, &v1, now).is_none(), "another principal's secret");
        assert!(sps.delete_secret(&s1.id, now));
        assert!(!sps.delete_secret(&s1.id, now));
        assert!(sps.check_secret(&a.application_id, &v1, now).is_none());

        assert!(sps.age_secret(&s2.id, Duration::from_secs(150)));
        let aged = sps.secret(&s2.id).unwrap();
        assert_eq!(aged.created, now - Duration::from_secs(150));
        assert!(aged.is_live(now) && !aged.is_live(now + Duration::from_secs(50)));
    }

    #[test]
    fn tokens_outlive_their_secret_until_expired() {
        let mut sps = ServicePrincipals::default();
        let now = SystemTime::now();
        let a = sps.add("0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa", "a", SpKind::DatabricksManaged, "k");
        let (s, _) = sps.create_secret(&a.application_id, vec![], now, Duration::from_secs(100));
        let t = sps.mint_token(&s, vec!["all-apis".into()], "http://x/oidc", now, Duration::from_secs(3600));
        assert_eq!(t.split('.').count(), 3);
        sps.delete_secret(&s.id, now);
        assert_eq!(sps.token(&t).unwrap().expires, now + Duration::from_secs(3600));
        sps.expire_tokens(now);
        assert_eq!(sps.token(&t).unwrap().expires, now);
        assert_eq!(sps.issued_tokens(), vec![t]);
    }
}
