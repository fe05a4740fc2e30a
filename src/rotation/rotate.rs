//! One target's rotation, contract §7 steps 1–6, written against the [`ports`](super::ports).
//!
//! The order of effects is the safety argument, so it is spelled out:
//!
//! 1. list tokens ‖ read the secret — no effects. If the token the latest version names is not
//!    in the list, list again: a concurrent writer's token may simply be newer than the first
//!    list, and `revoked_in_workspace` is decided only from a list taken after the read;
//! 2. decide ([`rules::decide`]);
//! 3. nothing is revoked yet: a rotation whose write fails must leave every token that worked
//!    before working (the one exception: a full token quota, step 4);
//! 4. create a token with a fresh comment `pat-rotator/<target>/<rotation-id>`; after an
//!    ambiguous failure list the tokens and delete the one carrying this attempt's comment
//!    (its value is lost, so it cannot be adopted into the vault), then try again (bounded);
//!    on `QUOTA_EXCEEDED` read everything again, revoke what that proves revocable (nothing if
//!    a read fails) and what is over the per-target cap, and try once more;
//! 5. verify the new token against the workspace; if it fails, delete it;
//! 6. write the secret, unless the token is already older than [`rules::MAX_UNWRITTEN_AGE`]
//!    (then delete it and go back to 4, once). If the write fails, read the secret back: our
//!    version there → success; a newer version by someone else → delete ours and stop; the old
//!    version still there → try again (bounded) or delete the new token (compensation); the
//!    read fails too → keep the token (it may be recorded; if not, it is an orphan that a later
//!    run proves revocable);
//! 7. revoke what the evidence proves revocable ([`rules::revocable`]: what the first read
//!    proved, and what the new version proves) and what is over the cap ([`rules::over_cap`]).

use std::collections::BTreeMap;

use futures::StreamExt;
use time::{Duration, OffsetDateTime};
use tokio::time::Instant;
use tracing::{info, warn};

use super::model::{
    CreateToken, NewToken, Outcome, Reason, SecretView, SecretWrite, StoredSecret, TokenInfo, rfc3339, short_id, tags,
};
use super::ports::{Clock, CreateError, SecretStore, Workspace};
use super::rules::{self, Decision, Evidence, Latest};
use crate::config::Target;
use crate::error::{Code, Error, Result};
use crate::transport::retry::RetryPolicy;

/// What one run was asked to do for one target.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub target: &'a Target,
    pub force: bool,
    pub dry_run: bool,
}

/// The ports one target's rotation talks to, and the retry policy for the secret write (the
/// only retry that needs the domain's judgement: a failed write may have landed).
pub struct Ports<'a> {
    pub workspace: &'a dyn Workspace,
    pub store: &'a dyn SecretStore,
    pub clock: &'a dyn Clock,
    pub retry: &'a RetryPolicy,
}

/// How many tokens are revoked at once during a sweep.
const REVOKE_PARALLELISM: usize = 4;
/// Creates attempted in one run when each outcome was unknown (and cleaned up).
const MAX_AMBIGUOUS_CREATES: u32 = 3;
/// Pause before creating again after an ambiguous create, times the attempt number.
const AMBIGUOUS_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// Tokens created in one run because the previous one grew too old to be written.
const MAX_STALE_CREATES: u32 = 2;

fn past_deadline() -> bool {
    crate::transport::retry::deadline().is_some_and(|d| tokio::time::Instant::now() >= d)
}

/// What a run read: the listing and the latest version, with the clocks to judge them by.
struct Observed {
    tokens: Vec<TokenInfo>,
    /// The workspace's clock when the secret was read, at the earliest.
    tokens_at: OffsetDateTime,
    latest: Option<StoredSecret>,
    view: Option<SecretView>,
    /// Key Vault's clock when it answered the read.
    vault_at: OffsetDateTime,
}

impl Observed {
    fn evidence<'a>(&'a self, recorded: &'a [&'a str]) -> Evidence<'a> {
        Evidence {
            tokens: &self.tokens,
            tokens_at: self.tokens_at,
            latest: self.latest.as_ref().zip(self.view.as_ref()).map(|(s, v)| Latest::of(v, s.created)),
            vault_at: self.vault_at,
            recorded,
        }
    }

    /// The token the latest version names, if it is ours and still live.
    fn current(&self) -> Option<&TokenInfo> {
        let id = self.view.as_ref().filter(|v| v.managed)?.token_id.as_deref()?;
        self.tokens.iter().find(|t| t.id == id)
    }

    /// What this evidence proves revocable, plus what is over the cap (with `extra` live tokens
    /// not in the list, and at most `limit` to keep).
    fn sweep(&self, prefix: &str, grace: Duration, extra: usize, limit: usize) -> (Vec<String>, Vec<String>) {
        let proven = rules::revocable(prefix, &self.evidence(&[]), grace);
        let keep = self.current().map(|t| t.id.as_str());
        let capped = rules::over_cap(prefix, &self.tokens, keep, &proven, extra, limit);
        (proven, capped)
    }
}

/// Step 1: list ‖ read, and a second list when the first does not show the token the latest
/// version names.
async fn observe(t: &Target, ports: &Ports<'_>) -> Result<Observed> {
    let started = Instant::now();
    let list = async {
        let r = ports.workspace.list_tokens().await;
        (r, Instant::now())
    };
    let ((listing, mut listed), read) = futures::join!(list, ports.store.read_latest(&t.secret_name));
    let read = read.map_err(|e| e.context("reading the secret"))?;
    let mut listing = listing.map_err(|e| e.context("listing the workspace's tokens"))?;
    let view = read.latest.as_ref().map(SecretView::from_stored);
    if let Some(id) = view.as_ref().filter(|v| v.managed).and_then(|v| v.token_id.as_deref())
        && !listing.tokens.iter().any(|tok| tok.id == id)
    {
        listing = ports.workspace.list_tokens().await.map_err(|e| e.context("listing the workspace's tokens again"))?;
        listed = Instant::now();
    }
    let local = ports.clock.now();
    // The listing was answered at most this long after the read was: ages at the read are at
    // least the listed ages minus this.
    let slack = Duration::try_from(listed.saturating_duration_since(started)).unwrap_or(Duration::MAX);
    Ok(Observed {
        tokens: listing.tokens,
        tokens_at: listing.at.unwrap_or(local) - slack,
        latest: read.latest,
        view,
        vault_at: read.at.unwrap_or(local),
    })
}

pub async fn rotate(req: Request<'_>, ports: &Ports<'_>) -> Outcome {
    let t = req.target;
    let obs = match observe(t, ports).await {
        Ok(o) => o,
        Err(e) => return Outcome::failed(&t.name, None, e),
    };
    let prefix = t.comment_prefix();
    let grace = Duration::hours(t.revoke_grace_hours as i64);
    let decision = rules::decide(
        obs.view.as_ref(),
        &obs.tokens,
        Duration::days(t.renew_before_days as i64),
        obs.tokens_at,
        req.force,
    );
    let current_token = obs.current();

    // The outcome that describes the secret as it is (unchanged, or planned in a dry run).
    let as_is = |action, reason| Outcome {
        target: t.name.clone(),
        action,
        reason: Some(reason),
        secret_id: obs.view.as_ref().map(|v| v.id.clone()),
        token_id: current_token.map(|tok| tok.id.clone()),
        expires_at: current_token.and_then(|tok| tok.expires_at).map(rfc3339),
        revoked_token_ids: Vec::new(),
        error: None,
        failure: None,
    };

    let reason = match decision {
        Decision::Keep => {
            let mut out = as_is(super::Action::Unchanged, Reason::Fresh);
            if !req.dry_run {
                let (proven, capped) = obs.sweep(&prefix, grace, 0, rules::MAX_LIVE_TOKENS);
                out.revoked_token_ids = revoke_all(ports.workspace, &t.name, &proven, "superseded").await;
                out.revoked_token_ids.extend(revoke_all(ports.workspace, &t.name, &capped, "over_cap").await);
            }
            return out;
        }
        Decision::Rotate(reason) => reason,
    };

    if reason == Reason::RevokedInWorkspace
        && let Some(change) = owner_change(t, &obs, &prefix)
    {
        warn!(target_name = %t.name, "{change}");
    }

    if req.dry_run {
        let (proven, capped) = obs.sweep(&prefix, grace, 1, rules::MAX_LIVE_TOKENS);
        info!(target_name = %t.name, reason = reason.as_str(), would_revoke = proven.len() + capped.len(), "dry run: rotation planned");
        return as_is(super::Action::Planned, reason);
    }

    // Nothing is revoked before the new version is written: if the write fails (a
    // soft-deleted name, a missing role), every token that worked before still works. A full
    // quota is handled where the workspace reports it, in `create_verified`.
    let mut revoked = Vec::new();
    let failed = |revoked: Vec<String>, e: Error| {
        let mut out = Outcome::failed(&t.name, Some(reason), e);
        out.revoked_token_ids = revoked;
        out
    };
    // The token this rotation supersedes: the current one, if it still exists in the workspace.
    let superseded = current_token.map(|tok| tok.id.clone());
    let based_on = obs.latest.as_ref().map(|s| s.id.as_str());

    let mut stale = 0;
    let (stored, new) = loop {
        let (new, verified) = match create_verified(t, ports, &prefix, grace).await {
            Ok((new, verified, swept)) => {
                revoked.extend(swept);
                (new, verified)
            }
            Err(e) => return failed(revoked, e),
        };
        let write = secret_write(t, &new, superseded.as_deref(), ports.clock.now());
        match write_recorded(t, ports, &write, &new.info, &verified, based_on).await {
            Ok(Written::Recorded(stored)) => break (stored, new.info),
            Ok(Written::Stale) => {
                stale += 1;
                if stale >= MAX_STALE_CREATES || past_deadline() {
                    return failed(
                        revoked,
                        Error::new(
                            Code::Timeout,
                            format!(
                                "{stale} new tokens grew older than {} minutes before they could be written; each was deleted, the secret is unchanged",
                                rules::MAX_UNWRITTEN_AGE.whole_minutes()
                            ),
                        ),
                    );
                }
            }
            Ok(Written::Superseded(latest)) => {
                let mut out = superseded_by(t, &latest);
                out.revoked_token_ids = revoked;
                return out;
            }
            Err(e) => return failed(revoked, e),
        }
    };
    info!(target_name = %t.name, reason = reason.as_str(), token = %short_id(&new.id), "secret written");

    // What the first read proved stays proven (no later version can name a token that was
    // already too old to be written); the new version proves the superseded token revocable
    // once the grace has passed since its creation, i.e. at once with grace 0.
    let recorded: Vec<&str> = superseded.iter().map(String::as_str).collect();
    let after = Evidence {
        tokens: &obs.tokens,
        tokens_at: obs.tokens_at,
        latest: Some(Latest { token_id: Some(new.id.as_str()), created: stored.created }),
        vault_at: stored.created.unwrap_or(obs.vault_at),
        recorded: &recorded,
    };
    let mut proven = rules::revocable(&prefix, &obs.evidence(&[]), grace);
    for id in rules::revocable(&prefix, &after, grace) {
        if !proven.contains(&id) {
            proven.push(id);
        }
    }
    proven.retain(|id| !revoked.contains(id));
    let going: Vec<String> = proven.iter().chain(&revoked).cloned().collect();
    let capped = rules::over_cap(&prefix, &obs.tokens, Some(new.id.as_str()), &going, 1, rules::MAX_LIVE_TOKENS);
    revoked.extend(revoke_all(ports.workspace, &t.name, &proven, "superseded").await);
    revoked.extend(revoke_all(ports.workspace, &t.name, &capped, "over_cap").await);

    Outcome {
        target: t.name.clone(),
        action: reason.action(),
        reason: Some(reason),
        secret_id: Some(stored.id),
        token_id: Some(new.id.clone()),
        expires_at: new.expires_at.map(rfc3339),
        revoked_token_ids: revoked,
        error: None,
        failure: None,
    }
}

/// Why the latest version's token may be invisible although nobody revoked it: its owner
/// changed (contract §8). A change of `client_id` is known from the tag `databricks-client-id`.
/// A change of the service's own identity (system- to user-assigned, say) leaves no tag; when
/// the identity holds no token of this target at all, that is the likely cause and is said, as
/// a likelihood. The message says what to do about the old token.
fn owner_change(t: &Target, obs: &Observed, prefix: &str) -> Option<String> {
    let view = obs.view.as_ref().filter(|v| v.managed)?;
    let tag = obs.latest.as_ref()?.tags.get(tags::CLIENT_ID);
    let old = tag.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty());
    let token = view.token_id.as_deref().map(short_id).unwrap_or_else(|| "?".into());
    let expiry = view.token_expires_at.map(rfc3339).unwrap_or_else(|| "unknown expiry".into());
    let who = |c: &Option<String>| match c {
        Some(c) => format!("app {c}"),
        None => "the service identity".to_string(),
    };
    if old != t.client_id {
        return Some(format!(
            "owner changed: the secret's token {token} belongs to {} (tag {}), this target's tokens now belong to {}; \
             the new owner cannot see or revoke it, so a new token is provisioned (reported as revoked_in_workspace). \
             Revoke the old token as its owner, or let it expire ({expiry})",
            who(&old),
            tags::CLIENT_ID,
            who(&t.client_id),
        ));
    }
    rules::ours(prefix, &obs.tokens).next().is_none().then(|| {
        format!(
            "{} holds no token of this target at all, so the secret's token {token} was either revoked out of band or \
             belongs to another identity: if the identity changed (e.g. system- to user-assigned), the old one's tokens \
             cannot be seen or revoked by this one; revoke them as the old identity, or let them expire ({expiry})",
            who(&t.client_id)
        )
    })
}

/// The new version of contract §6.
fn secret_write(t: &Target, new: &NewToken, superseded: Option<&str>, rotated_at: OffsetDateTime) -> SecretWrite {
    let mut tag_map = BTreeMap::new();
    tag_map.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
    tag_map.insert(tags::TARGET.to_string(), t.name.clone());
    tag_map.insert(tags::HOST.to_string(), t.workspace_host());
    tag_map.insert(tags::TOKEN_ID.to_string(), new.info.id.clone());
    tag_map
        .insert(tags::EXPIRES_AT.to_string(), new.info.expires_at.map(rfc3339).unwrap_or_else(|| "never".to_string()));
    tag_map.insert(tags::ROTATED_AT.to_string(), rfc3339(rotated_at));
    if let Some(prev) = superseded {
        tag_map.insert(tags::PREVIOUS_TOKEN_ID.to_string(), prev.to_string());
    }
    if let Some(client_id) = &t.client_id {
        tag_map.insert(tags::CLIENT_ID.to_string(), client_id.clone());
    }
    SecretWrite {
        name: t.secret_name.clone(),
        value: new.value.clone(),
        content_type: tags::CONTENT_TYPE.to_string(),
        expires: new.info.expires_at,
        tags: tag_map,
    }
}

/// The outcome when another run wrote a newer version while this one was writing: this run's
/// token was deleted, and the target holds the other run's.
fn superseded_by(t: &Target, latest: &StoredSecret) -> Outcome {
    let view = SecretView::from_stored(latest);
    if !view.managed {
        return Outcome::failed(
            &t.name,
            None,
            Error::new(
                Code::KeyvaultError,
                format!(
                    "a version that pat-rotator did not write ({}) appeared while this run was writing; this run's token was deleted; run again",
                    latest.version()
                ),
            ),
        );
    }
    info!(target_name = %t.name, secret_version = latest.version(), "a concurrent rotation wrote a newer version; this run's token was deleted and the target keeps that one");
    Outcome {
        target: t.name.clone(),
        action: super::Action::Unchanged,
        reason: Some(Reason::Fresh),
        secret_id: Some(latest.id.clone()),
        token_id: view.token_id.clone(),
        expires_at: view.token_expires_at.map(rfc3339),
        revoked_token_ids: Vec::new(),
        error: None,
        failure: None,
    }
}

/// When a new token was proven to work, on both clocks we have.
struct Verified {
    /// The workspace's clock at the verification.
    workspace_at: Option<OffsetDateTime>,
    /// Our monotonic clock (does not jump) and wall clock (counts a suspended laptop).
    instant: Instant,
    wall: OffsetDateTime,
}

impl Verified {
    /// How old the token is now by the workspace's clock, as well as we can tell: its age at
    /// the verification, plus the longer of the two local measures of the time since.
    fn age(&self, token: &TokenInfo, clock: &dyn Clock) -> Duration {
        let at_verify = self.workspace_at.map(|w| w - token.created_at).unwrap_or(Duration::ZERO).max(Duration::ZERO);
        let monotonic = Duration::try_from(self.instant.elapsed()).unwrap_or(Duration::MAX);
        at_verify.saturating_add(monotonic.max(clock.now() - self.wall))
    }
}

/// How a write ended when it did not fail.
enum Written {
    Recorded(StoredSecret),
    /// The token was too old to be written; it was deleted (or left to the orphan sweep).
    Stale,
    /// Someone else wrote a newer version; this run's token was deleted.
    Superseded(StoredSecret),
}

/// Steps 4–5: a new token that is proven to work. Also returns the ids it had to sweep to
/// get under the token quota.
async fn create_verified(
    t: &Target,
    ports: &Ports<'_>,
    prefix: &str,
    grace: Duration,
) -> Result<(NewToken, Verified, Vec<String>)> {
    let ws = ports.workspace;
    let mut swept = Vec::new();
    let mut quota_retry_used = false;
    let mut ambiguous = 0;
    let new = loop {
        let rotation_id = uuid::Uuid::new_v4().simple().to_string();
        let req = CreateToken {
            comment: rules::comment(prefix, &rotation_id),
            lifetime_seconds: t.lifetime_days as u64 * 86_400,
            scopes: t.scopes.clone(),
            autoscope: t.autoscope,
        };
        match ws.create_token(&req).await {
            Ok(new) => break new,
            Err(CreateError::Refused(e)) if e.code == Code::DatabricksQuotaExceeded => {
                if quota_retry_used {
                    return Err(e);
                }
                quota_retry_used = true;
                // Read everything again and revoke only what that proves (and what is over the
                // cap, making room for the new token); if a read fails, revoke nothing.
                let fresh = match observe(t, ports).await {
                    Ok(o) => o,
                    Err(re) => {
                        return Err(e.context(&format!(
                            "nothing was revoked to make room, because the tokens and the secret could not be read again ({re})"
                        )));
                    }
                };
                let ours = rules::ours(prefix, &fresh.tokens).count();
                let (proven, capped) = fresh.sweep(prefix, grace, 0, rules::MAX_LIVE_TOKENS - 1);
                let mut done = revoke_all(ws, &t.name, &proven, "quota").await;
                done.extend(revoke_all(ws, &t.name, &capped, "over_cap").await);
                if done.is_empty() {
                    return Err(Error::new(
                        Code::DatabricksQuotaExceeded,
                        format!(
                            "the workspace refused a new token: the identity holds {} tokens there (quota 600), {ours} of them this target's, none provably revocable yet; delete unused tokens of this identity",
                            fresh.tokens.len()
                        ),
                    )
                    .with_status(e.status.unwrap_or(400))
                    .with_upstream_code(e.upstream_code.clone()));
                }
                swept.extend(done);
            }
            Err(CreateError::Refused(e))
                if e.code == Code::DatabricksLifetimeTooLong
                    || (e.code == Code::DatabricksError && e.status == Some(400)) =>
            {
                return Err(match ws.max_lifetime_days().await {
                    Some(cap) if cap > 0 && t.lifetime_days > cap => Error::new(
                        Code::DatabricksLifetimeTooLong,
                        format!(
                            "lifetime_days {} exceeds the workspace's maximum token lifetime of {cap} days (maxTokenLifetimeDays); set lifetime_days to {cap} or less",
                            t.lifetime_days
                        ),
                    )
                    .with_status(400)
                    .with_upstream_code(e.upstream_code.clone()),
                    _ if e.code == Code::DatabricksLifetimeTooLong => e.context(&format!(
                        "lifetime_days {} is above the workspace's limit (the limit could not be read)",
                        t.lifetime_days
                    )),
                    _ => e,
                });
            }
            Err(CreateError::Refused(e)) => return Err(e),
            Err(CreateError::Ambiguous(e)) => {
                warn!(target_name = %t.name, error = %e, "token create outcome unknown; looking for the token by its comment");
                let cleaned = clean_up_attempt(ws, &t.name, &req.comment).await;
                ambiguous += 1;
                // Trying again is safe only once the workspace is known to hold no token of
                // this attempt; and it is bounded, like every retry.
                if !cleaned || ambiguous >= MAX_AMBIGUOUS_CREATES || past_deadline() {
                    return Err(e.context("creating the token (any token this attempt created is deleted, or swept as an orphan within an hour)"));
                }
                tokio::time::sleep(e.retry_after.unwrap_or(AMBIGUOUS_PAUSE * ambiguous)).await;
            }
        }
    };

    let requested = Duration::days(t.lifetime_days as i64);
    if let Some(exp) = new.info.expires_at {
        let granted = exp - new.info.created_at;
        if granted < requested - Duration::days(1) {
            warn!(target_name = %t.name, granted_days = granted.whole_days(), requested_days = t.lifetime_days,
                "the workspace granted a shorter lifetime than requested");
        }
    }

    match ws.verify_token(&new.value).await {
        Ok(workspace_at) => {
            let verified = Verified { workspace_at, instant: Instant::now(), wall: ports.clock.now() };
            Ok((new, verified, swept))
        }
        Err(e) => {
            warn!(target_name = %t.name, token = %short_id(&new.info.id), "new token failed verification; deleting it");
            let note = match ws.delete_token(&new.info.id).await {
                Ok(()) => "it was deleted".to_string(),
                Err(de) => format!("deleting it failed too ({de}); it is an orphan a later run will revoke"),
            };
            Err(e.context(&format!("verifying the new token {} ({note})", short_id(&new.info.id))))
        }
    }
}

/// After an ambiguous create: find the token carrying `comment` and delete it. True when the
/// state is known to be clean (no such token, or it was deleted).
async fn clean_up_attempt(ws: &dyn Workspace, target: &str, comment: &str) -> bool {
    match ws.list_tokens().await {
        Ok(list) => match list.tokens.iter().find(|tok| tok.comment.as_deref() == Some(comment)) {
            None => true,
            Some(tok) => match ws.delete_token(&tok.id).await {
                Ok(()) => {
                    info!(target_name = %target, token = %short_id(&tok.id), "deleted the token of the ambiguous create (its value was lost)");
                    true
                }
                Err(e) => {
                    warn!(target_name = %target, token = %short_id(&tok.id), error = %e, "could not delete the token of the ambiguous create; it is an orphan a later run will revoke");
                    false
                }
            },
        },
        Err(e) => {
            warn!(target_name = %target, error = %e, "could not list tokens after an ambiguous create; the orphan sweep will clean up");
            false
        }
    }
}

/// Step 6: write while the token is young enough; after a failed attempt, find out from the
/// vault whether it landed or someone else wrote, before deleting the token or trying again.
async fn write_recorded(
    t: &Target,
    ports: &Ports<'_>,
    write: &SecretWrite,
    new: &TokenInfo,
    verified: &Verified,
    based_on: Option<&str>,
) -> Result<Written> {
    let mut attempt = 1;
    loop {
        let age = verified.age(new, ports.clock);
        if age > rules::MAX_UNWRITTEN_AGE {
            warn!(target_name = %t.name, token = %short_id(&new.id), age_minutes = age.whole_minutes(),
                "the new token is too old to be written (a concurrent run may already treat it as an orphan); deleting it and creating another");
            if let Err(e) = ports.workspace.delete_token(&new.id).await {
                warn!(target_name = %t.name, token = %short_id(&new.id), error = %e, "could not delete the stale token; it is an orphan a later run will revoke");
            }
            return Ok(Written::Stale);
        }
        let err = match ports.store.write(write).await {
            Ok(stored) => return Ok(Written::Recorded(stored)),
            Err(e) => e,
        };
        match ports.store.read_latest(&t.secret_name).await {
            Ok(read) => match read.latest {
                Some(s) if s.tags.get(tags::TOKEN_ID).map(String::as_str) == Some(new.id.as_str()) => {
                    warn!(target_name = %t.name, error = %err, "the secret write reported an error but the new version is there");
                    return Ok(Written::Recorded(s));
                }
                Some(s) if Some(s.id.as_str()) != based_on => {
                    if let Err(de) = ports.workspace.delete_token(&new.id).await {
                        warn!(target_name = %t.name, token = %short_id(&new.id), error = %de, "could not delete this run's token; it is an orphan a later run will revoke");
                    }
                    return Ok(Written::Superseded(s));
                }
                _ => {
                    if err.transient
                        && let Ok(wait) = ports.retry.next_wait(attempt, &err)
                    {
                        tracing::debug!(target_name = %t.name, attempt, error = %err, "the write did not land; trying again");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let note = match ports.workspace.delete_token(&new.id).await {
                        Ok(()) => format!(
                            "the new token {} was deleted; the secret and its token are unchanged",
                            short_id(&new.id)
                        ),
                        Err(de) => format!(
                            "deleting the new token {} failed too ({de}); it is an orphan a later run will revoke",
                            short_id(&new.id)
                        ),
                    };
                    warn!(target_name = %t.name, error = %err, "secret write failed; {note}");
                    let attempts = if attempt > 1 { format!(" after {attempt} attempts") } else { String::new() };
                    return Err(err.context(&format!("writing the secret{attempts} ({note})")));
                }
            },
            Err(re) => {
                let note = format!(
                    "whether the new version landed is unknown (reading it back failed: {re}); the new token {} is kept and, if unrecorded, revoked by a later run",
                    short_id(&new.id)
                );
                warn!(target_name = %t.name, error = %err, "{note}");
                return Err(err.context(&format!("writing the secret ({note})")));
            }
        }
    }
}

/// Revokes `ids`, a few at a time; returns those that are gone. Failures are logged, not fatal:
/// the next run sweeps again.
async fn revoke_all(ws: &dyn Workspace, target: &str, ids: &[String], why: &str) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
    }
    if why == "over_cap" {
        warn!(target_name = %target, count = ids.len(), cap = rules::MAX_LIVE_TOKENS,
            "the target holds more live tokens than its cap; revoking the oldest, which may still be inside their grace");
    }
    let results: Vec<(String, Result<()>)> = futures::stream::iter(ids.iter().cloned())
        .map(|id| async move {
            let r = ws.delete_token(&id).await;
            (id, r)
        })
        .buffered(REVOKE_PARALLELISM)
        .collect()
        .await;
    let mut done = Vec::new();
    for (id, r) in results {
        match r {
            Ok(()) => {
                info!(target_name = %target, token = %short_id(&id), why, "revoked");
                done.push(id);
            }
            Err(e) => {
                warn!(target_name = %target, token = %short_id(&id), why, error = %e, "revocation failed; will retry next run")
            }
        }
    }
    done
}
