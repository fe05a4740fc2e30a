//! `status` as a health check (contract §1, §10 "Health"): for each target, what its secret and
//! its issuer say, and which of the §10 reasons need an operator's attention. Reads only; the
//! CLI prints the rows, the `Status` function serves them (`handler::status`).
//!
//! What can be judged depends on who runs it (§10 "Running as someone else"): a PAT of the
//! service's own identity is listed only to that identity, so when another identity wrote the
//! latest version than the one `status` runs as, the token's existence is unknown (`null`, not
//! `token_missing`) and nothing is judged unrecorded or over the cap. And what proves nothing
//! judges nothing (§10 "Inventory follows §7.4"): after a failed or absent read of the secret,
//! no credential is called unrecorded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::Engine;
use crate::config::{Kind, Target};
use crate::error::{Code, Error, ErrorBody};
use crate::rotation::model::{Credential, Ownership, Profile, SecretView, StoredSecret, rfc3339};
use crate::rotation::ports::{Issuer, Listing, SecretRead, SecretStore, Usage};
use crate::rotation::rules;
use crate::transport::retry;

/// An OAuth secret no version records is reported once it is this old by the workspace's clock
/// (younger ones may be a rotation in flight: created, not yet written).
const UNRECORDED_SECRET_AGE: time::Duration = time::Duration::hours(1);
/// A PAT of the target no version records is reported once it is this old: a rotation revokes
/// such an orphan after an hour once the grace allows, and the timer runs daily.
const UNRECORDED_PAT_AGE: time::Duration = time::Duration::hours(25);
/// `expires_soon` once the rotation is this far overdue (past `next_rotation_at`): a daily timer
/// plus its retries had their chance.
const OVERDUE: time::Duration = time::Duration::hours(26);

/// Why a target needs attention (contract §10), in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    NoSecret,
    SecretUnreadable,
    CredentialsUnlisted,
    ForeignSecret,
    DisabledSecret,
    TokenMissing,
    ExpiresSoon,
    Unrecorded,
    OverCap,
    RotatedByAnotherIdentity,
    /// `keep_while_used`: a superseded token past its grace that a consumer used today or
    /// yesterday (the Token Management API's `last_used_day`, the workspace's clock).
    SupersededInUse,
    /// `keep_while_used`, but the identity may not read the Token Management API (`403`).
    UsageUnreadable,
}

impl Attention {
    pub fn as_str(self) -> &'static str {
        match self {
            Attention::NoSecret => "no_secret",
            Attention::SecretUnreadable => "secret_unreadable",
            Attention::CredentialsUnlisted => "credentials_unlisted",
            Attention::ForeignSecret => "foreign_secret",
            Attention::DisabledSecret => "disabled_secret",
            Attention::TokenMissing => "token_missing",
            Attention::ExpiresSoon => "expires_soon",
            Attention::Unrecorded => "unrecorded",
            Attention::OverCap => "over_cap",
            Attention::RotatedByAnotherIdentity => "rotated_by_another_identity",
            Attention::SupersededInUse => "superseded_in_use",
            Attention::UsageUnreadable => "usage_unreadable",
        }
    }
}

/// One row of `pat-rotator status` (contract §1): every field is present, `null` when unknown.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub target: String,
    /// `pat` or `sp_oauth_secret`.
    pub kind: String,
    /// Who owns the target's tokens: `service identity` or `app <client_id>` (contract §8).
    pub owner: String,
    pub secret_id: Option<String>,
    pub secret_version: Option<String>,
    /// Whether the latest version was written by pat-rotator.
    pub managed: Option<bool>,
    pub token_id: Option<String>,
    pub expires_at: Option<String>,
    pub days_left: Option<i64>,
    /// Whether the credential the vault names is listed (`None`: not checked, or not visible
    /// to the identity `status` runs as).
    pub token_exists: Option<bool>,
    /// When the latest managed version was written.
    pub rotated_at: Option<String>,
    /// `expires_at` − `renew_before_days`.
    pub next_rotation_at: Option<String>,
    /// The latest managed version's `rotated-by`: an object id, or `unknown`.
    pub rotated_by: Option<String>,
    /// The UTC day the credential the vault names was last used (`YYYY-MM-DD`), from the Token
    /// Management API where the identity may read it (PATs); `None` otherwise.
    pub last_used_day: Option<String>,
    /// No attention and every read it needed succeeded.
    pub healthy: bool,
    pub attention: Vec<Attention>,
    /// Reason → the credential ids it concerns (`unrecorded`, `over_cap`, `superseded_in_use`).
    pub details: BTreeMap<&'static str, Vec<String>>,
    pub error: Option<ErrorBody>,
    /// Whether `rotated_by` is the identity it is judged against (`PAT_SERVICE_OBJECT_ID`, or
    /// the identity `status` runs as); `None` when either is unknown. For the `Status`
    /// function, which says `self`/`other` instead of an object id.
    #[serde(skip)]
    pub rotated_by_reference: Option<bool>,
}

impl StatusRow {
    fn new(t: &Target) -> StatusRow {
        StatusRow {
            target: t.name.clone(),
            kind: t.kind.name().as_str().to_string(),
            owner: t.owner(),
            secret_id: None,
            secret_version: None,
            managed: None,
            token_id: None,
            expires_at: None,
            days_left: None,
            token_exists: None,
            rotated_at: None,
            next_rotation_at: None,
            rotated_by: None,
            last_used_day: None,
            healthy: false,
            attention: Vec::new(),
            details: BTreeMap::new(),
            error: None,
            rotated_by_reference: None,
        }
    }

    /// A read this row needed failed: the reason, and its error unless an earlier one is kept.
    fn failed(&mut self, why: Attention, e: &Error) {
        self.attention.push(why);
        if self.error.is_none() {
            self.error = Some(ErrorBody::from(e));
        }
    }

    fn concern(&mut self, why: Attention, ids: Vec<String>) {
        self.attention.push(why);
        self.details.insert(why.as_str(), ids);
    }

    fn finish(mut self) -> StatusRow {
        self.attention.sort();
        self.attention.dedup();
        self.healthy = self.attention.is_empty() && self.error.is_none();
        self
    }
}

impl Engine {
    /// Reads (only) what `status` reports for each target. A target not read by the end of
    /// `budget` is reported `secret_unreadable` with `timeout`.
    pub async fn status(&self, targets: &[&Target], budget: Duration) -> Vec<StatusRow> {
        let deadline = Instant::now() + budget;
        self.each_target(targets, |t| async move {
            match tokio::time::timeout_at(deadline, retry::within(deadline, self.status_one(t))).await {
                Ok(row) => row,
                Err(_) => {
                    let mut row = StatusRow::new(t);
                    let e = Error::new(
                        Code::Timeout,
                        format!("the target was not read within {} s", budget.as_secs_f32().round()),
                    );
                    row.failed(Attention::SecretUnreadable, &e);
                    row.finish()
                }
            }
        })
        .await
    }

    async fn status_one(&self, t: &Target) -> StatusRow {
        let mut row = StatusRow::new(t);
        let (issuer, store) = match self.clients_of(t) {
            Ok(c) => c,
            Err(e) => {
                // Neither read could happen.
                row.failed(Attention::SecretUnreadable, &e);
                row.attention.push(Attention::CredentialsUnlisted);
                return row.finish();
            }
        };
        let profile = issuer.profile();
        let keep_while_used = matches!(t.kind, Kind::Pat { keep_while_used: true, .. });
        let grace = time::Duration::hours(t.revoke_grace_hours as i64);
        let (listed, read) = futures::join!(issuer.list(), store.read_latest(&t.secret_name));
        // The vault token of the read carries the identity: no extra round trip.
        let me = store.writer().await;
        let reference = self.config.settings.service_object_id.clone().or_else(|| me.clone());
        // Days left and an overdue rotation are shown on the local clock, as `rotated-at` is
        // written; the age of an unrecorded credential is judged on the workspace's.
        let now = self.clock.now();

        let (latest, tied): (Option<StoredSecret>, Vec<StoredSecret>) = match &read {
            Ok(SecretRead { latest, tied, .. }) => (latest.clone(), tied.clone()),
            Err(e) => {
                row.failed(Attention::SecretUnreadable, e);
                (None, Vec::new())
            }
        };
        // Versions of the newest `created` second besides the one read count as the latest too
        // (contract §7.4): for foreign, disabled, a missing credential and the guard.
        let tied_views: Vec<SecretView> = tied.iter().map(|s| SecretView::of(s, profile)).collect();
        if matches!(read, Ok(SecretRead { latest: None, .. })) {
            row.attention.push(Attention::NoSecret);
        }
        let view = latest.as_ref().map(|s| SecretView::of(s, profile));
        // Whether the identity `status` runs as can see the credential the vault names: a PAT
        // of the service's own identity is listed only to the identity that created it.
        let mut blind = false;
        if let (Some(s), Some(v)) = (&latest, &view) {
            row.secret_version = Some(s.version().to_string());
            row.secret_id = Some(s.id.clone());
            row.managed = Some(v.managed);
            row.token_id = v.credential_id.clone();
            row.expires_at = v.expires_at.map(rfc3339);
            let all: Vec<&SecretView> = std::iter::once(v).chain(&tied_views).collect();
            if all.iter().any(|v| !v.managed || v.credential_id.is_none()) {
                row.attention.push(Attention::ForeignSecret);
            }
            if all.iter().any(|v| !v.enabled) {
                row.attention.push(Attention::DisabledSecret);
            }
            if v.managed {
                row.rotated_at = v.rotated_at.or(s.created).map(rfc3339);
                row.rotated_by = v.rotated_by.clone();
                let another = |who: Option<&str>| rules::written_by_another(&all, who).is_some();
                if let (Some(_), Some(r)) = (&v.rotated_by, reference.as_deref()) {
                    row.rotated_by_reference = Some(!another(Some(r)));
                    if another(Some(r)) {
                        row.attention.push(Attention::RotatedByAnotherIdentity);
                    }
                }
                let callers_own = matches!(&t.kind, Kind::Pat { client_id: None, .. });
                blind = callers_own && another(me.as_deref());
            }
        }

        let mut expires = view.as_ref().and_then(|v| v.expires_at);
        match &listed {
            Err(e) => row.failed(Attention::CredentialsUnlisted, e),
            Ok(listing) => {
                if let Some(id) = row.token_id.clone() {
                    // Its last use, where readable (contract §10); for a token another identity
                    // holds, the same lookup tells whether it exists at all.
                    let usage = issuer.usage(&id).await;
                    row.last_used_day = match &usage {
                        Usage::Read { last_used_day, .. } => last_used_day.map(|d| d.to_string()),
                        _ => None,
                    };
                    let found = if blind {
                        match usage {
                            Usage::Read { .. } => Some(true),
                            Usage::Gone => Some(false),
                            _ => None,
                        }
                    } else {
                        let listed = listing.credentials.iter().find(|c| c.id == id);
                        if let Some(c) = listed {
                            expires = c.expires_at.or(expires);
                        }
                        Some(listed.is_some())
                    };
                    row.token_exists = found;
                    // A tied version's credential counts as well (unless this identity cannot see
                    // the service's credentials at all).
                    let tied_missing = !blind
                        && tied_views
                            .iter()
                            .filter_map(|v| v.credential_id.as_deref())
                            .any(|tid| !listing.credentials.iter().any(|c| c.id == tid));
                    if found == Some(false) || (found == Some(true) && tied_missing) {
                        row.attention.push(Attention::TokenMissing);
                    }
                    if matches!(usage, Usage::Forbidden { .. }) && keep_while_used {
                        row.attention.push(Attention::UsageUnreadable);
                    }
                }
                // §10 "Inventory follows §7.4": only a read that found the secret proves which
                // credential is current and what the versions record (the rotation, too, judges
                // the cap only then).
                if let Some(s) = latest.as_ref().filter(|_| !blind) {
                    if let Some(ids) = over_cap(profile, listing, view.as_ref(), now) {
                        row.concern(Attention::OverCap, ids);
                    }
                    if keep_while_used && !row.attention.contains(&Attention::UsageUnreadable) {
                        let vault_now = read.as_ref().ok().and_then(|r| r.at).unwrap_or(now);
                        let past_grace = s.created.is_some_and(|c| vault_now - c >= grace);
                        match superseded_in_use(issuer.as_ref(), listing, view.as_ref(), past_grace).await {
                            Ok(ids) if ids.is_empty() => {}
                            Ok(ids) => row.concern(Attention::SupersededInUse, ids),
                            Err(()) => row.attention.push(Attention::UsageUnreadable),
                        }
                    }
                    match self.unrecorded(t, store.as_ref(), profile, s, &tied, listing).await {
                        Ok(ids) if ids.is_empty() => {}
                        Ok(ids) => row.concern(Attention::Unrecorded, ids),
                        Err(e) => row.failed(Attention::SecretUnreadable, &e),
                    }
                }
            }
        }
        if let Some(exp) = expires {
            let next = exp - time::Duration::days(t.renew_before_days as i64);
            row.expires_at = Some(rfc3339(exp));
            row.days_left = Some((exp - now).whole_days());
            row.next_rotation_at = Some(rfc3339(next));
            if now - next > OVERDUE {
                row.attention.push(Attention::ExpiresSoon);
            }
        }
        row.finish()
    }

    /// The target's credentials that no version of its secret records and that are old enough
    /// not to be a rotation in flight (contract §10 `unrecorded`): OAuth secrets of the principal
    /// older than an hour (an OAuth secret that another configured target's versions record is
    /// that target's), PATs of the target older than 25 hours. Ages on the workspace's clock:
    /// without its `Date`, nothing is judged. The versions list is read only when the latest
    /// version does not name such a credential.
    async fn unrecorded(
        &self,
        t: &Target,
        store: &dyn SecretStore,
        profile: &'static Profile,
        latest: &StoredSecret,
        tied: &[StoredSecret],
        listing: &Listing,
    ) -> crate::error::Result<Vec<String>> {
        let Some(at) = listing.at else { return Ok(Vec::new()) };
        let (ownership, min_age) = if profile.reports_unrecorded {
            (Ownership::IfRecorded, UNRECORDED_SECRET_AGE)
        } else {
            (Ownership::Ours, UNRECORDED_PAT_AGE)
        };
        let named_by_latest: BTreeSet<String> = std::iter::once(latest)
            .chain(tied)
            .flat_map(|v| {
                let (id, prev) = v.names(profile);
                id.into_iter().chain(prev)
            })
            .collect();
        let old_enough = |c: &Credential| c.created_at.is_some_and(|created| at - created >= min_age);
        let mut candidates: Vec<&Credential> = listing
            .credentials
            .iter()
            .filter(|c| c.ownership == ownership && !named_by_latest.contains(&c.id) && old_enough(c))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let recorded = |versions: &[StoredSecret]| -> BTreeSet<String> {
            versions
                .iter()
                .flat_map(|v| {
                    let (id, prev) = v.names(profile);
                    id.into_iter().chain(prev)
                })
                .collect()
        };
        let named = recorded(&store.versions(&t.secret_name).await.map_err(|e| e.context("reading the versions"))?);
        candidates.retain(|c| !named.contains(&c.id));
        // §9: a principal's secrets are shared with any other target naming it.
        if let Some(sp) = t.service_principal() {
            for other in self.config.targets.iter().filter(|o| o.name != t.name && o.service_principal() == Some(sp)) {
                if candidates.is_empty() {
                    break;
                }
                let versions = self.clients.vault(other)?.versions(&other.secret_name).await.map_err(|e| {
                    e.context(&format!(
                        "reading the versions of target {}'s secret (it shares the principal)",
                        other.name
                    ))
                })?;
                let theirs = recorded(&versions);
                candidates.retain(|c| !theirs.contains(&c.id));
            }
        }
        Ok(candidates.into_iter().map(|c| c.id.clone()).collect())
    }
}

/// Contract §10 `superseded_in_use`: the target's superseded live credentials (not the one the
/// latest version names) that a consumer used today or yesterday by the workspace's clock, once
/// the grace is over (inside it, a superseded token in use is expected). `Err` on a `403`: the
/// identity may not read usage (`usage_unreadable`). A lookup that fails otherwise, or an answer
/// without `last_used_day` or `Date`, judges nothing.
async fn superseded_in_use(
    issuer: &dyn Issuer,
    listing: &Listing,
    view: Option<&SecretView>,
    past_grace: bool,
) -> std::result::Result<Vec<String>, ()> {
    if !past_grace {
        return Ok(Vec::new());
    }
    let current = view.and_then(|v| v.credential_id.as_deref());
    let mut ids = Vec::new();
    for c in listing.credentials.iter().filter(|c| c.ownership == Ownership::Ours && Some(c.id.as_str()) != current) {
        match issuer.usage(&c.id).await {
            Usage::Forbidden { .. } => return Err(()),
            u if rules::in_use(&u) == Some(true) => ids.push(c.id.clone()),
            _ => {}
        }
    }
    Ok(ids)
}

/// Contract §10 `over_cap`: more than the cap of live PATs of the target (the rotation keeps at
/// most 6), or — for OAuth secrets, whose cap is the principal's limit of five — a principal
/// that is full, so the next rotation has no room. The ids, oldest first, without the one the
/// latest version names.
fn over_cap(
    profile: &Profile,
    listing: &Listing,
    view: Option<&SecretView>,
    now: OffsetDateTime,
) -> Option<Vec<String>> {
    let live = |c: &&Credential| c.expires_at.is_none_or(|e| e > now);
    let mut counted: Vec<&Credential> = if profile.revokes_over_cap {
        listing.credentials.iter().filter(|c| c.ownership == Ownership::Ours).filter(live).collect()
    } else {
        listing.credentials.iter().filter(live).collect()
    };
    let over = if profile.revokes_over_cap { counted.len() > profile.cap } else { counted.len() >= profile.cap };
    if !over {
        return None;
    }
    let current = view.and_then(|v| v.credential_id.as_deref());
    counted.retain(|c| Some(c.id.as_str()) != current);
    counted.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Some(counted.into_iter().map(|c| c.id.clone()).collect())
}
