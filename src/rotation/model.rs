//! Domain types: credentials as an issuer lists them, secret versions as the store returns
//! them, what a kind of credential looks like in the vault ([`Profile`]), and the outcome
//! object of contract §4.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, ErrorBody};
use crate::secret::Redacted;

/// The tag names every version carries whatever its kind (contract §6, §9, §10). The tags that
/// name a kind's credential belong to its [`Profile`]; the Databricks ones live with the issuers
/// (`databricks::tags`).
pub mod tags {
    pub const MANAGED_BY: &str = "managed-by";
    pub const MANAGED_BY_VALUE: &str = "pat-rotator";
    pub const TARGET: &str = "target";
    pub const ROTATED_AT: &str = "rotated-at";
    /// The lower-case object id of the identity that wrote the version (contract §10).
    pub const ROTATED_BY: &str = "rotated-by";
    /// `rotated-by` when the writer's object id could not be read.
    pub const UNKNOWN_WRITER: &str = "unknown";
    /// Who started the run that wrote it: `RotatePat`, `ProvisionPat`, `SecretEvent` or `cli`.
    pub const ROTATED_VIA: &str = "rotated-via";
}

/// What one kind of credential looks like to the rotation: how it is named, recorded and
/// bounded. Each issuer owns one (`databricks::pat::PROFILE`, `databricks::oauth_secret::PROFILE`);
/// the order of effects is the same for every kind.
#[derive(Debug)]
pub struct Profile {
    /// For messages: "token", "OAuth secret".
    pub noun: &'static str,
    /// `contentType` of every version written; a latest version with another one is foreign.
    pub content_type: &'static str,
    /// The tag naming the credential a version holds, and the one naming its predecessor.
    pub id_tag: &'static str,
    pub previous_tag: &'static str,
    /// A tag carrying the credential's expiry (RFC 3339), if the kind writes one.
    pub expires_tag: Option<&'static str>,
    /// At most this many live credentials of the target (contract §7 step 4; for OAuth secrets
    /// the principal's limit of five).
    pub cap: usize,
    /// Whether the rotation itself revokes the oldest above `cap` (PATs: the quota is shared by
    /// 600 tokens of the identity; OAuth secrets: the issuer refuses a sixth, so nothing is
    /// revoked inside its grace).
    pub revokes_over_cap: bool,
    /// Whether a credential carries the create attempt that made it ([`Credential::attempt`]),
    /// so that one whose create answer was lost can be found and deleted, and the create tried
    /// again. Without it a lost create is never retried.
    pub labels_attempts: bool,
    /// Whether credentials the listing cannot attribute (recorded by no version) are reported
    /// as a leak to clean up by hand (OAuth secrets: a crash between create and write leaves
    /// one that nothing can identify). Such a kind's credential that this run could not delete
    /// stays behind until an operator removes it; the other kind's is revoked by a later run
    /// once it is [`super::rules::ORPHAN_WINDOW`] old.
    pub reports_unrecorded: bool,
    /// Every tag by which a version may name a credential, of this kind or another (contract
    /// §7.4(a): a latest version protects what it names "under either tag" — a target whose kind
    /// changed still has versions naming the old kind's credential).
    pub naming_tags: &'static [&'static str],
}

/// Whose a listed credential is, as far as the listing tells (contract §6, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Provably this target's and this secret's (a PAT whose comment names both).
    Ours,
    /// This target's only while a version of this secret names it: a PAT whose comment names
    /// the target but predates the secret key, and every OAuth secret of the principal.
    IfRecorded,
    /// Never touched by this target.
    NotOurs,
}

/// A credential as the issuer lists it (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    /// The PAT's comment (OAuth secrets have none).
    pub comment: Option<String>,
    /// By the issuer's clock; `None` when the issuer did not say (then no age is provable).
    pub created_at: Option<OffsetDateTime>,
    /// `None`: never expires (or unknown).
    pub expires_at: Option<OffsetDateTime>,
    pub ownership: Ownership,
    /// The create attempt that made it, when the credential carries it (a PAT's comment).
    pub attempt: Option<String>,
}

/// A credential just created: the only moment its value is known.
#[derive(Debug)]
pub struct NewCredential {
    pub value: Redacted,
    pub info: Credential,
}

/// What to ask the issuer for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Unique per attempt; an issuer that can label credentials puts it on the new one.
    pub attempt: String,
    pub lifetime_seconds: u64,
}

/// A version of a secret, without its value (the domain never needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// Full id including the version: `https://…/secrets/<name>/<version>`.
    pub id: String,
    pub tags: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// `attributes.created`: when Key Vault stored this version, by Key Vault's clock. It is
    /// the moment the version before it was superseded.
    pub created: Option<OffsetDateTime>,
    /// `attributes.enabled`: consumers cannot read a disabled version.
    pub enabled: bool,
    /// `attributes.exp`.
    pub expires: Option<OffsetDateTime>,
}

impl StoredSecret {
    /// The version part of [`StoredSecret::id`].
    pub fn version(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or_default()
    }

    fn tag(&self, k: &str) -> Option<String> {
        self.tags.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// The credential this version names and the one it superseded, by `profile`'s tags. A
    /// version names its credential whatever else its tags say (a retagged version that lost
    /// `managed-by` still holds a token consumers read).
    pub fn names(&self, profile: &Profile) -> (Option<String>, Option<String>) {
        (self.tag(profile.id_tag), self.tag(profile.previous_tag))
    }

    /// Every credential this version names under any of `profile`'s naming tags (this kind's
    /// and the other's): what it protects as a latest version (contract §7.4(a)).
    pub fn protects(&self, profile: &Profile) -> Vec<String> {
        let mut ids: Vec<String> = profile.naming_tags.iter().filter_map(|t| self.tag(t)).collect();
        ids.extend(self.tag(profile.id_tag));
        ids.sort();
        ids.dedup();
        ids
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

/// What the latest version says, read with a kind's [`Profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub id: String,
    /// Written by pat-rotator for this kind: `managed-by=pat-rotator` and the kind's
    /// `contentType`.
    pub managed: bool,
    pub enabled: bool,
    /// The credential it names (whether or not `managed`).
    pub credential_id: Option<String>,
    pub previous_id: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub rotated_at: Option<OffsetDateTime>,
    /// Its `rotated-by` tag, lower case (`None`: written before the tag existed, or not by
    /// pat-rotator).
    pub rotated_by: Option<String>,
}

impl SecretView {
    pub fn of(s: &StoredSecret, profile: &Profile) -> SecretView {
        let (credential_id, previous_id) = s.names(profile);
        let time = |k: &str| s.tag(k).and_then(|v| parse_rfc3339(&v));
        SecretView {
            id: s.id.clone(),
            managed: s.tag(tags::MANAGED_BY).as_deref() == Some(tags::MANAGED_BY_VALUE)
                && s.content_type.as_deref() == Some(profile.content_type),
            enabled: s.enabled,
            credential_id,
            previous_id,
            expires_at: profile.expires_tag.and_then(time).or(s.expires),
            rotated_at: time(tags::ROTATED_AT),
            rotated_by: s.tag(tags::ROTATED_BY).map(|v| v.to_ascii_lowercase()),
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
    DisabledSecret,
    Forced,
    RecentlyRotated,
    Fresh,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoSecret => "no_secret",
            Reason::Expiring => "expiring",
            Reason::RevokedInWorkspace => "revoked_in_workspace",
            Reason::ForeignSecret => "foreign_secret",
            Reason::DisabledSecret => "disabled_secret",
            Reason::Forced => "forced",
            Reason::RecentlyRotated => "recently_rotated",
            Reason::Fresh => "fresh",
        }
    }

    /// The action a completed rotation for this reason reports.
    pub fn action(self) -> Action {
        match self {
            Reason::NoSecret => Action::Created,
            Reason::RevokedInWorkspace => Action::Reprovisioned,
            Reason::Fresh | Reason::RecentlyRotated => Action::Unchanged,
            Reason::Expiring | Reason::ForeignSecret | Reason::DisabledSecret | Reason::Forced => Action::Rotated,
        }
    }
}

/// What a warning is about. The operator's log and the CLI carry the warning's own text; a
/// ProvisionPat body carries only a fixed sentence per kind (contract §3), since the text may
/// quote upstream detail (RBAC text, object ids, vault URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// The versions list could not be read; credentials only a record could attribute are
    /// left alone.
    VersionsUnreadable,
    /// Credentials of the kind that is reported by hand (OAuth secrets) that no version records.
    Unrecorded,
    /// The credential the vault names belongs to another owner (contract §8).
    OwnerChanged,
    /// The issuer granted a shorter lifetime than requested.
    LifetimeShortened,
    /// A credential this run created could not be deleted, or may still be recorded by a write
    /// whose outcome is unknown: it stays behind for now.
    LeftBehind,
    /// A new credential grew too old to be written and was replaced.
    Stale,
    /// A create's outcome is unknown and cannot be cleaned up automatically.
    CreateOutcomeUnknown,
    /// Credentials above the cap were revoked inside their grace.
    OverCap,
    /// The cap could not be kept because latest versions name the credentials above it.
    OverCapProtected,
    /// The credentials could not be listed again to count them against the cap right before a
    /// cap revocation: none was revoked for the cap.
    CapUncounted,
    /// Another configured secret could not be read, so nothing was revoked (contract §7.4(a)).
    ProtectionUnreadable,
    /// A credential was kept because the latest version of a configured secret names it.
    Protected,
    /// `--revoke-superseded` (CLI only).
    RevokeSuperseded,
    /// A superseded credential past its grace was kept because a consumer still uses it
    /// (`keep_while_used`, contract §10).
    KeptInUse,
    /// A superseded credential past its grace was kept this run because its use could not be
    /// told (`keep_while_used`).
    UsageUnknown,
    /// The identity may not read how credentials are used, so `keep_while_used` fell back to
    /// the plain grace.
    UsageUnreadable,
    /// `--take-ownership` wrote over a version another identity wrote (CLI only).
    TakeOwnership,
    /// An event-started run left a target whose latest version another identity wrote
    /// (contract §10).
    RotatedByAnotherIdentity,
}

impl WarningKind {
    /// Every kind, for what must cover them all (ProvisionPat's sentence per kind).
    pub const ALL: [WarningKind; 18] = {
        use WarningKind::*;
        [
            VersionsUnreadable,
            Unrecorded,
            OwnerChanged,
            LifetimeShortened,
            LeftBehind,
            Stale,
            CreateOutcomeUnknown,
            OverCap,
            OverCapProtected,
            CapUncounted,
            ProtectionUnreadable,
            Protected,
            RevokeSuperseded,
            KeptInUse,
            UsageUnknown,
            UsageUnreadable,
            TakeOwnership,
            RotatedByAnotherIdentity,
        ]
    };
}

/// One warning of a run: its kind and the operator's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
}

impl std::ops::Deref for Warning {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Serialised as its text: the CLI's `--json` keeps the detail.
impl Serialize for Warning {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.message)
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
    /// The run's warnings for this target (also logged as they happen).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// The full error, for the HTTP layer (status code, `Retry-After`); not serialised.
    #[serde(skip)]
    pub failure: Option<Error>,
    /// The issuer refused to tell how credentials were used (contract §10 "Usage": a `403`),
    /// naming what it refused; the engine warns once per pass for it. Not serialised.
    #[serde(skip)]
    pub usage_unreadable: Option<String>,
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
            warnings: Vec::new(),
            failure: Some(err),
            usage_unreadable: None,
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
        if !self.warnings.is_empty() {
            s.push_str(&format!(", {} warning(s)", self.warnings.len()));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(", error {}: {}", e.code, e.message));
        }
        s
    }
}

/// The first 12 characters of an id: enough to tell credentials apart in a table. Counts
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
