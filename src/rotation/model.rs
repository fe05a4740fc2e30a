//! Domain types: tokens as the workspace lists them, secrets as the store returns them, and the
//! outcome object of contract §4.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, ErrorBody};
use crate::secret::Redacted;

/// Tag names of contract §6.
pub mod tags {
    pub const MANAGED_BY: &str = "managed-by";
    pub const MANAGED_BY_VALUE: &str = "pat-rotator";
    pub const TARGET: &str = "target";
    pub const HOST: &str = "databricks-host";
    pub const TOKEN_ID: &str = "databricks-token-id";
    pub const EXPIRES_AT: &str = "token-expires-at";
    pub const ROTATED_AT: &str = "rotated-at";
    pub const PREVIOUS_TOKEN_ID: &str = "previous-token-id";
    /// The target's `client_id` (lower case), when the target's PATs belong to an app (§8).
    pub const CLIENT_ID: &str = "databricks-client-id";
    /// `contentType` of every version we write.
    pub const CONTENT_TYPE: &str = "databricks-pat";
}

/// A PAT as the Token API lists it (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub comment: Option<String>,
    pub created_at: OffsetDateTime,
    /// `None`: the token never expires.
    pub expires_at: Option<OffsetDateTime>,
}

/// A token just created: the only moment its value is known.
#[derive(Debug)]
pub struct NewToken {
    pub value: Redacted,
    pub info: TokenInfo,
}

/// What to ask the Token API for.
#[derive(Debug, Clone)]
pub struct CreateToken {
    pub comment: String,
    pub lifetime_seconds: u64,
    pub scopes: Option<Vec<String>>,
    /// `autoscope_enabled`; `None` sends nothing (the workspace's default applies).
    pub autoscope: Option<bool>,
}

/// The latest version of a secret, without its value (the domain never needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// Full id including the version: `https://…/secrets/<name>/<version>`.
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// `attributes.created`: when Key Vault stored this version, by Key Vault's clock. It is
    /// the moment the version before it was superseded.
    pub created: Option<OffsetDateTime>,
}

impl StoredSecret {
    /// The version part of [`StoredSecret::id`].
    pub fn version(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or_default()
    }
}

/// A new version to write.
#[derive(Debug)]
pub struct SecretWrite {
    pub name: String,
    pub value: Redacted,
    pub content_type: String,
    pub expires: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
}

/// What the tags of a stored secret say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub id: String,
    pub managed: bool,
    pub token_id: Option<String>,
    pub token_expires_at: Option<OffsetDateTime>,
    pub rotated_at: Option<OffsetDateTime>,
    pub previous_token_id: Option<String>,
}

impl SecretView {
    pub fn from_stored(s: &StoredSecret) -> SecretView {
        let tag = |k: &str| s.tags.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let time = |k: &str| tag(k).and_then(|v| parse_rfc3339(&v));
        SecretView {
            id: s.id.clone(),
            managed: tag(tags::MANAGED_BY).as_deref() == Some(tags::MANAGED_BY_VALUE),
            token_id: tag(tags::TOKEN_ID),
            token_expires_at: time(tags::EXPIRES_AT),
            rotated_at: time(tags::ROTATED_AT),
            previous_token_id: tag(tags::PREVIOUS_TOKEN_ID),
        }
    }
}

/// `action` of contract §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Rotated,
    Unchanged,
    Reprovisioned,
    Planned,
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Rotated => "rotated",
            Action::Unchanged => "unchanged",
            Action::Reprovisioned => "reprovisioned",
            Action::Planned => "planned",
            Action::Failed => "failed",
        }
    }
}

/// `reason` of contract §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NoSecret,
    Expiring,
    RevokedInWorkspace,
    ForeignSecret,
    Forced,
    Fresh,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoSecret => "no_secret",
            Reason::Expiring => "expiring",
            Reason::RevokedInWorkspace => "revoked_in_workspace",
            Reason::ForeignSecret => "foreign_secret",
            Reason::Forced => "forced",
            Reason::Fresh => "fresh",
        }
    }

    /// The action a completed rotation for this reason reports.
    pub fn action(self) -> Action {
        match self {
            Reason::NoSecret => Action::Created,
            Reason::RevokedInWorkspace => Action::Reprovisioned,
            Reason::Fresh => Action::Unchanged,
            Reason::Expiring | Reason::ForeignSecret | Reason::Forced => Action::Rotated,
        }
    }
}

/// The result object of contract §4: one per target and run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub target: String,
    pub action: Action,
    pub reason: Option<Reason>,
    pub secret_id: Option<String>,
    pub token_id: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_token_ids: Vec<String>,
    pub error: Option<ErrorBody>,
    /// The full error, for the HTTP layer (status code, `Retry-After`); not serialised.
    #[serde(skip)]
    pub failure: Option<Error>,
}

impl Outcome {
    pub fn failed(target: &str, reason: Option<Reason>, err: Error) -> Outcome {
        Outcome {
            target: target.to_string(),
            action: Action::Failed,
            reason,
            secret_id: None,
            token_id: None,
            expires_at: None,
            revoked_token_ids: Vec::new(),
            error: Some(ErrorBody::from(&err)),
            failure: Some(err),
        }
    }

    pub fn ok(&self) -> bool {
        self.action != Action::Failed
    }

    /// One line for logs and the host's `Logs` array.
    pub fn log_line(&self) -> String {
        let mut s = format!("{}: {}", self.target, self.action.as_str());
        if let Some(r) = self.reason {
            s.push_str(&format!(" ({})", r.as_str()));
        }
        if let Some(id) = &self.token_id {
            s.push_str(&format!(", token {}", short_id(id)));
        }
        if let Some(e) = &self.expires_at {
            s.push_str(&format!(", expires {e}"));
        }
        if !self.revoked_token_ids.is_empty() {
            s.push_str(&format!(", revoked {}", self.revoked_token_ids.len()));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(", error {}: {}", e.code, e.message));
        }
        s
    }
}

/// The first 12 characters of a token id: enough to tell tokens apart in a table. Counts
/// characters, not bytes: ids come from tags anyone with write access can set.
pub fn short_id(id: &str) -> String {
    match id.char_indices().nth(12) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_string(),
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    // Whole seconds, UTC, `Z`: the form Key Vault tags and the contract's examples use.
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Epoch milliseconds (the Token API's unit) to a time; `-1` or other negatives mean "never".
pub fn from_epoch_ms(ms: i64) -> Option<OffsetDateTime> {
    if ms < 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
}
