//! A workspace's personal access tokens: issue, look up, expire, revoke.
//!
//! Pure data with Databricks' rules (values shown once, expired and revoked tokens vanish from
//! listings and stop authenticating, use updates last-used); nothing here knows about HTTP or
//! who may call what.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::encoding::random_hex;

/// A token as the workspace knows it (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// 64 lowercase hex characters.
    pub token_id: String,
    /// Object id of the owning principal.
    pub principal: String,
    /// Comment given at creation (may be empty).
    pub comment: String,
    /// Scopes given at creation (empty = unscoped).
    pub scopes: Vec<String>,
    /// `autoscope_enabled` as given at creation (`None`: not sent).
    pub autoscope: Option<bool>,
    /// Creation time.
    pub created: SystemTime,
    /// Expiry; `None` = never.
    pub expiry: Option<SystemTime>,
    /// Last successful authentication with the token.
    pub last_used: Option<SystemTime>,
    /// Revoked (deleted through the API, out of band, or for inactivity).
    pub revoked: bool,
    /// When it was revoked (this machine's clock).
    pub revoked_at: Option<SystemTime>,
}

impl TokenInfo {
    /// Not revoked and not expired at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        !self.revoked && self.expiry.is_none_or(|e| e > now)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    by_id: HashMap<String, TokenInfo>,
    by_value: HashMap<String, String>,
    /// Token ids in creation order, so listings are stable.
    order: Vec<String>,
    /// Every value ever issued, for redaction tests.
    issued_values: Vec<String>,
}

impl Tokens {
    /// Issues a token. Returns `(token_id, value, info)`.
    pub fn create(
        &mut self,
        principal: &str,
        comment: &str,
        scopes: Vec<String>,
        created: SystemTime,
        lifetime: Option<Duration>,
    ) -> (String, String, TokenInfo) {
        let id = random_hex(64);
        let value = format!("dapi{}", random_hex(32));
        let info = TokenInfo {
            token_id: id.clone(),
            principal: principal.to_string(),
            comment: comment.to_string(),
            scopes,
            autoscope: None,
            created,
            expiry: lifetime.map(|l| created + l),
            last_used: None,
            revoked: false,
            revoked_at: None,
        };
        self.by_id.insert(id.clone(), info.clone());
        self.by_value.insert(value.clone(), id.clone());
        self.order.push(id.clone());
        self.issued_values.push(value.clone());
        (id, value, info)
    }

    pub fn get(&self, id: &str) -> Option<TokenInfo> {
        self.by_id.get(id).cloned()
    }

    /// The token a presented value belongs to (live or not).
    pub fn by_value(&self, value: &str) -> Option<TokenInfo> {
        self.by_value.get(value).and_then(|id| self.by_id.get(id)).cloned()
    }

    /// Live tokens of a principal, oldest first.
    pub fn live_for(&self, principal: &str, now: SystemTime) -> Vec<TokenInfo> {
        self.all().into_iter().filter(|t| t.principal == principal && t.is_live(now)).collect()
    }

    /// Every token ever issued, oldest first.
    pub fn all(&self) -> Vec<TokenInfo> {
        self.order.iter().filter_map(|id| self.by_id.get(id)).cloned().collect()
    }

    pub fn revoke(&mut self, id: &str) -> bool {
        match self.by_id.get_mut(id) {
            Some(t) if !t.revoked => {
                t.revoked = true;
                t.revoked_at = Some(SystemTime::now());
                true
            }
            _ => false,
        }
    }

    pub fn touch(&mut self, id: &str, now: SystemTime) {
        self.set_last_used(id, Some(now));
    }

    /// Sets (or clears) a token's last use. False if unknown.
    pub fn set_last_used(&mut self, id: &str, at: Option<SystemTime>) -> bool {
        let Some(t) = self.by_id.get_mut(id) else { return false };
        t.last_used = at;
        true
    }

    pub fn set_autoscope(&mut self, id: &str, autoscope: Option<bool>) {
        if let Some(t) = self.by_id.get_mut(id) {
            t.autoscope = autoscope;
        }
    }

    /// Moves a token's creation, expiry and last use `by` into the past.
    pub fn age(&mut self, id: &str, by: Duration) -> bool {
        let Some(t) = self.by_id.get_mut(id) else { return false };
        t.created -= by;
        t.expiry = t.expiry.map(|e| e - by);
        t.last_used = t.last_used.map(|u| u - by);
        true
    }

    pub fn ids(&self) -> Vec<String> {
        self.order.clone()
    }

    /// Revokes live tokens not used (or, if never used, not created) since `cutoff`.
    pub fn revoke_unused_since(&mut self, cutoff: SystemTime, now: SystemTime) -> Vec<String> {
        let mut revoked = Vec::new();
        for id in &self.order {
            let t = self.by_id.get_mut(id).expect("ordered ids exist");
            if t.is_live(now) && t.last_used.unwrap_or(t.created) < cutoff {
                t.revoked = true;
                t.revoked_at = Some(SystemTime::now());
                revoked.push(id.clone());
            }
        }
        revoked
    }

    pub fn issued_values(&self) -> Vec<String> {
        self.issued_values.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut t = Tokens::default();
        let now = SystemTime::now();
        let (a, va, _) = t.create("p", "a", vec![], now, Some(Duration::from_secs(100)));
        let (b, _, _) = t.create("p", "b", vec![], now, None);
        let (_, _, _) = t.create("q", "c", vec![], now, None);
        assert!(va.starts_with("dapi") && va.len() == 36);
        assert_eq!(a.len(), 64);
        assert_eq!(t.live_for("p", now).len(), 2);
        assert_eq!(t.live_for("p", now + Duration::from_secs(100)).len(), 1, "expired tokens vanish");
        assert!(t.revoke(&b));
        assert!(!t.revoke(&b));
        assert_eq!(t.live_for("p", now).len(), 1);
        assert_eq!(t.by_value(&va).unwrap().token_id, a);

        t.touch(&a, now);
        assert!(t.age(&a, Duration::from_secs(3600)));
        let aged = t.get(&a).unwrap();
        assert_eq!(aged.created, now - Duration::from_secs(3600));
        assert_eq!(aged.expiry, Some(now - Duration::from_secs(3500)));
        assert!(!aged.is_live(now));
    }

    #[test]
    fn inactivity_revocation_uses_last_use_or_creation() {
        let mut t = Tokens::default();
        let now = SystemTime::now();
        let old = now - Duration::from_secs(91 * 86_400);
        let (unused, _, _) = t.create("p", "", vec![], old, None);
        let (used, _, _) = t.create("p", "", vec![], old, None);
        t.touch(&used, now);
        let cutoff = now - Duration::from_secs(90 * 86_400);
        assert_eq!(t.revoke_unused_since(cutoff, now), vec![unused]);
        assert!(t.get(&used).unwrap().is_live(now));
    }
}
