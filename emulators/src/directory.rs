//! The shared token directory: who exists, and which bearer tokens were issued to whom.
//!
//! Real Azure services validate a JWT's signature, audience and expiry. The fakes cannot sign
//! like Entra ID, so instead every token the identity and AAD fakes hand out is recorded here,
//! and the Key Vault and workspace fakes look the presented bearer value up. That gives them
//! the same decisions a real service makes (unknown token, wrong audience, expired, which
//! principal is calling) without any cryptography.
//!
//! Token values still look like JWTs (`header.payload.signature`, base64url, with `aud`,
//! `oid`, `appid`, `tid`, `exp` claims) so a client that peeks at claims sees sensible ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::encoding::{b64url_encode, random_bytes, random_hex};

/// Resource (audience) of Azure Key Vault's data plane.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";
/// Application id of Azure Databricks, the audience of workspace tokens in every cloud.
pub const DATABRICKS_RESOURCE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d";
/// The "service management" audience Databricks expects in `X-Databricks-Azure-SP-Management-Token`.
pub const MANAGEMENT_RESOURCE: &str = "https://management.core.windows.net/";
/// Tenant id used unless the options name another.
pub const DEFAULT_TENANT_ID: &str = "7d5c2a9e-4b1f-4c3a-9e8d-6f0a1b2c3d4e";

/// What kind of Entra ID principal this is; only informational.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The system-assigned managed identity of the (fake) Function App.
    SystemAssigned,
    /// A user-assigned managed identity attached to the Function App.
    UserAssigned,
    /// An app registration authenticating with a secret or assertion at the AAD fake.
    ServicePrincipal,
}

/// An Entra ID principal. Authorization in every fake is keyed on `object_id` (`oid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Object id (`oid` claim): what RBAC and Databricks membership are keyed on.
    pub object_id: String,
    /// Client / application id (`appid` claim).
    pub client_id: String,
    /// Kind of principal.
    pub kind: PrincipalKind,
}

/// One token recorded by the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// Audience exactly as requested (`resource` for managed identity, scope minus
    /// `/.default` for the AAD fake).
    pub audience: String,
    /// Object id of the principal the token was issued to.
    pub principal: String,
    /// Client id of that principal.
    pub client_id: String,
    /// Issue time.
    pub issued_at: SystemTime,
    /// Expiry time.
    pub expires_at: SystemTime,
}

impl IssuedToken {
    /// True when the token is expired at `now`, or will be within `margin`.
    pub fn expires_within(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires_at <= now + margin
    }
}

/// Registry of principals and issued bearer tokens shared by all fakes of one [`crate::Emulators`].
#[derive(Debug)]
pub struct Directory {
    tenant_id: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    principals: HashMap<String, Principal>,
    tokens: HashMap<String, IssuedToken>,
    /// Issue order, so `issued_tokens` is deterministic.
    order: Vec<String>,
}

impl Directory {
    /// An empty directory for `tenant_id`.
    pub fn new(tenant_id: &str) -> Arc<Self> {
        Arc::new(Self { tenant_id: tenant_id.to_string(), inner: Mutex::default() })
    }

    /// The tenant every principal lives in.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Registers (or replaces) a principal.
    pub fn add_principal(&self, principal: Principal) {
        self.lock().principals.insert(principal.object_id.clone(), principal);
    }

    /// The principal with this object id.
    pub fn principal(&self, object_id: &str) -> Option<Principal> {
        self.lock().principals.get(object_id).cloned()
    }

    /// The principal with this client id (case-insensitive, as GUIDs are).
    pub fn principal_by_client_id(&self, client_id: &str) -> Option<Principal> {
        self.lock().principals.values().find(|p| p.client_id.eq_ignore_ascii_case(client_id)).cloned()
    }

    /// True when the object id belongs to a registered principal.
    pub fn knows(&self, object_id: &str) -> bool {
        self.lock().principals.contains_key(object_id)
    }

    /// Issues and records a token. Returns the bearer value and its record.
    pub fn issue(&self, audience: &str, principal: &Principal, lifetime: Duration) -> (String, IssuedToken) {
        let now = SystemTime::now();
        let record = IssuedToken {
            audience: audience.to_string(),
            principal: principal.object_id.clone(),
            client_id: principal.client_id.clone(),
            issued_at: now,
            expires_at: now + lifetime,
        };
        let value = self.jwt_like(&record);
        let mut inner = self.lock();
        inner.tokens.insert(value.clone(), record.clone());
        inner.order.push(value.clone());
        (value, record)
    }

    /// The record of a bearer value, if this directory issued it.
    pub fn lookup(&self, token: &str) -> Option<IssuedToken> {
        self.lock().tokens.get(token).cloned()
    }

    /// Every token value ever issued, oldest first (for redaction tests).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    /// Makes every issued token expire now, as if the clock jumped past their lifetime.
    pub fn expire_all(&self) {
        let now = SystemTime::now();
        for t in self.lock().tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
    }

    fn jwt_like(&self, t: &IssuedToken) -> String {
        let secs = |s: SystemTime| s.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "emulator"});
        let claims = serde_json::json!({
            "aud": t.audience,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": secs(t.issued_at),
            "nbf": secs(t.issued_at),
            "exp": secs(t.expires_at),
            "oid": t.principal,
            "sub": t.principal,
            "appid": t.client_id,
            "tid": self.tenant_id,
            "uti": random_hex(22),
            "ver": "1.0",
        });
        format!(
            "{}.{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes()),
            b64url_encode(&random_bytes(64)),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds since the Unix epoch (negative before it, which never happens here).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64url_decode;

    #[test]
    fn issued_tokens_are_jwt_shaped_and_looked_up() {
        let dir = Directory::new(DEFAULT_TENANT_ID);
        let p =
            Principal { object_id: "oid-1".into(), client_id: "cid-1".into(), kind: PrincipalKind::ServicePrincipal };
        dir.add_principal(p.clone());
        let (v, rec) = dir.issue(KEY_VAULT_RESOURCE, &p, Duration::from_secs(60));
        let parts: Vec<&str> = v.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&b64url_decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], KEY_VAULT_RESOURCE);
        assert_eq!(claims["oid"], "oid-1");
        assert_eq!(dir.lookup(&v), Some(rec.clone()));
        assert!(!rec.expires_within(SystemTime::now(), Duration::from_secs(30)));
        assert!(rec.expires_within(SystemTime::now(), Duration::from_secs(61)));
        dir.expire_all();
        assert!(dir.lookup(&v).unwrap().expires_within(SystemTime::now(), Duration::ZERO));
        assert_eq!(dir.issued_tokens(), vec![v]);
    }
}
