//! One target's rotation, contract §7 steps 1–6, written against the [`ports`](super::ports).
//!
//! The order of effects is the safety argument, so it is spelled out:
//!
//! 1. list tokens ‖ read the secret — no effects;
//! 2. decide ([`rules::decide`]);
//! 3. nothing is revoked yet: a rotation whose write fails must leave every token that worked
//!    before working (the one exception: a full token quota, step 4);
//! 4. create a token with a fresh comment `pat-rotator/<target>/<rotation-id>`; after an
//!    ambiguous failure list the tokens and delete the one carrying this attempt's comment
//!    (its value is lost, so it cannot be adopted into the vault), then try again (bounded);
//!    on `QUOTA_EXCEEDED` revoke what is revocable of this target's tokens and try once more;
//! 5. verify the new token against the workspace; if it fails, delete it;
//! 6. write the secret; if the write fails, read the secret back: if our version landed the
//!    run succeeded, if the old version is still there delete the new token (compensation), if
//!    the read fails too keep the token (it may be recorded) and leave it to the orphan sweep;
//! 7. revoke what the new holders make revocable: old orphans, a previous token past its
//!    grace, and the superseded token when grace is 0.

use std::collections::BTreeMap;

use futures::StreamExt;
use time::Duration;
use tracing::{info, warn};

use super::model::{
    CreateToken, NewToken, Outcome, Reason, SecretView, SecretWrite, StoredSecret, rfc3339, short_id, tags,
};
use super::ports::{Clock, CreateError, SecretStore, Workspace};
use super::rules::{self, Decision, Holders};
use crate::config::Target;
use crate::error::{Code, Error, Result};

/// What one run was asked to do for one target.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub target: &'a Target,
    pub force: bool,
    pub dry_run: bool,
}

/// The ports one target's rotation talks to.
pub struct Ports<'a> {
    pub workspace: &'a dyn Workspace,
    pub store: &'a dyn SecretStore,
    pub clock: &'a dyn Clock,
}

/// How many tokens are revoked at once during a sweep.
const REVOKE_PARALLELISM: usize = 4;
/// Creates attempted in one run when each outcome was unknown (and cleaned up).
const MAX_AMBIGUOUS_CREATES: u32 = 3;
/// Pause before creating again after an ambiguous create, times the attempt number.
const AMBIGUOUS_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

fn past_deadline() -> bool {
    crate::transport::retry::deadline().is_some_and(|d| tokio::time::Instant::now() >= d)
}

pub async fn rotate(req: Request<'_>, ports: &Ports<'_>) -> Outcome {
    let t = req.target;
    let (tokens, secret) = futures::join!(ports.workspace.list_tokens(), ports.store.read_latest(&t.secret_name));
    let (tokens, secret) = match (tokens, secret) {
        (Ok(tokens), Ok(secret)) => (tokens, secret),
        (_, Err(e)) => return Outcome::failed(&t.name, None, e.context("reading the secret")),
        (Err(e), _) => return Outcome::failed(&t.name, None, e.context("listing the workspace's tokens")),
    };
    let view = secret.as_ref().map(SecretView::from_stored);
    let now = ports.clock.now();
    let prefix = t.comment_prefix();
    let grace = Duration::hours(t.revoke_grace_hours as i64);
    let holders = Holders::from_view(view.as_ref());
    let stale = rules::revocable(&prefix, &tokens, holders, grace, now);
    let decision = rules::decide(view.as_ref(), &tokens, Duration::days(t.renew_before_days as i64), now, req.force);

    let current_token = view
        .as_ref()
        .filter(|v| v.managed)
        .and_then(|v| v.token_id.as_ref())
        .and_then(|id| tokens.iter().find(|tok| &tok.id == id));

    // The outcome that describes the secret as it is (unchanged, or planned in a dry run).
    let as_is = |action, reason| Outcome {
        target: t.name.clone(),
        action,
        reason: Some(reason),
        secret_id: view.as_ref().map(|v| v.id.clone()),
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
                out.revoked_token_ids = revoke_all(ports.workspace, &t.name, &stale, "stale").await;
            }
            return out;
        }
        Decision::Rotate(reason) => reason,
    };

    if req.dry_run {
        info!(target_name = %t.name, reason = reason.as_str(), would_revoke = stale.len(), "dry run: rotation planned");
        return as_is(super::Action::Planned, reason);
    }

    // Nothing is revoked before the new version is written: if the write fails (a
    // soft-deleted name, a missing role), every token that worked before still works. A full
    // quota is handled where the workspace reports it, in `create_verified`.
    let mut revoked = Vec::new();

    let new = match create_verified(t, ports, &prefix, grace).await {
        Ok((new, swept)) => {
            revoked.extend(swept);
            new
        }
        Err(e) => {
            let mut out = Outcome::failed(&t.name, Some(reason), e);
            out.revoked_token_ids = revoked;
            return out;
        }
    };

    // The token this rotation supersedes: the current one, if it still exists in the workspace.
    let superseded = current_token.map(|tok| tok.id.clone());
    let rotated_at = ports.clock.now();
    let mut tag_map = BTreeMap::new();
    tag_map.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
    tag_map.insert(tags::TARGET.to_string(), t.name.clone());
    tag_map.insert(tags::HOST.to_string(), t.workspace_host());
    tag_map.insert(tags::TOKEN_ID.to_string(), new.info.id.clone());
    tag_map
        .insert(tags::EXPIRES_AT.to_string(), new.info.expires_at.map(rfc3339).unwrap_or_else(|| "never".to_string()));
    tag_map.insert(tags::ROTATED_AT.to_string(), rfc3339(rotated_at));
    if let Some(prev) = &superseded {
        tag_map.insert(tags::PREVIOUS_TOKEN_ID.to_string(), prev.clone());
    }
    if let Some(client_id) = &t.client_id {
        tag_map.insert(tags::CLIENT_ID.to_string(), client_id.clone());
    }
    let write = SecretWrite {
        name: t.secret_name.clone(),
        value: new.value,
        content_type: tags::CONTENT_TYPE.to_string(),
        expires: new.info.expires_at,
        tags: tag_map,
    };
    let stored = match write_or_compensate(t, ports, &write, &new.info.id).await {
        Ok(stored) => stored,
        Err(e) => {
            let mut out = Outcome::failed(&t.name, Some(reason), e);
            out.revoked_token_ids = revoked;
            return out;
        }
    };
    drop(write);
    info!(target_name = %t.name, reason = reason.as_str(), token = %short_id(&new.info.id), "secret written");

    let holders =
        Holders { current: Some(new.info.id.as_str()), previous: superseded.as_deref().map(|p| (p, Some(rotated_at))) };
    let after: Vec<String> = rules::revocable(&prefix, &tokens, holders, grace, rotated_at)
        .into_iter()
        .filter(|id| !revoked.contains(id))
        .collect();
    revoked.extend(revoke_all(ports.workspace, &t.name, &after, "superseded").await);

    Outcome {
        target: t.name.clone(),
        action: reason.action(),
        reason: Some(reason),
        secret_id: Some(stored.id),
        token_id: Some(new.info.id.clone()),
        expires_at: new.info.expires_at.map(rfc3339),
        revoked_token_ids: revoked,
        error: None,
        failure: None,
    }
}

/// Steps 4–5: a new token that is proven to work. Also returns the ids it had to sweep to
/// get under the token quota.
async fn create_verified(
    t: &Target,
    ports: &Ports<'_>,
    prefix: &str,
    grace: Duration,
) -> Result<(NewToken, Vec<String>)> {
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
        };
        match ws.create_token(&req).await {
            Ok(new) => break new,
            Err(CreateError::Refused(e)) if e.code == Code::DatabricksQuotaExceeded => {
                if quota_retry_used {
                    return Err(e);
                }
                quota_retry_used = true;
                // Sweep this target's own stale tokens with a fresh list, then try once more.
                let fresh = ws
                    .list_tokens()
                    .await
                    .map_err(|le| e.clone().context(&format!("listing after quota error: {le}")))?;
                let ours =
                    fresh.iter().filter(|tok| tok.comment.as_deref().is_some_and(|c| c.starts_with(prefix))).count();
                let secret = ports.store.read_latest(&t.secret_name).await.ok().flatten();
                let view = secret.as_ref().map(SecretView::from_stored);
                let victims =
                    rules::revocable(prefix, &fresh, Holders::from_view(view.as_ref()), grace, ports.clock.now());
                let done = revoke_all(ws, &t.name, &victims, "quota").await;
                if done.is_empty() {
                    return Err(Error::new(
                        Code::DatabricksQuotaExceeded,
                        format!(
                            "the workspace refused a new token: the identity holds {} tokens there (quota 600), {ours} of them this target's, none revocable yet; delete unused tokens of this identity",
                            fresh.len()
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

    if let Err(e) = ws.verify_token(&new.value).await {
        warn!(target_name = %t.name, token = %short_id(&new.info.id), "new token failed verification; deleting it");
        let note = match ws.delete_token(&new.info.id).await {
            Ok(()) => "it was deleted".to_string(),
            Err(de) => format!("deleting it failed too ({de}); it will be swept as an orphan within an hour"),
        };
        return Err(e.context(&format!("verifying the new token {} ({note})", short_id(&new.info.id))));
    }
    Ok((new, swept))
}

/// After an ambiguous create: find the token carrying `comment` and delete it. True when the
/// state is known to be clean (no such token, or it was deleted).
async fn clean_up_attempt(ws: &dyn Workspace, target: &str, comment: &str) -> bool {
    match ws.list_tokens().await {
        Ok(list) => match list.iter().find(|tok| tok.comment.as_deref() == Some(comment)) {
            None => true,
            Some(tok) => match ws.delete_token(&tok.id).await {
                Ok(()) => {
                    info!(target_name = %target, token = %short_id(&tok.id), "deleted the token of the ambiguous create (its value was lost)");
                    true
                }
                Err(e) => {
                    warn!(target_name = %target, token = %short_id(&tok.id), error = %e, "could not delete the token of the ambiguous create; the orphan sweep will");
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

/// Step 6: write, and if that fails, find out whether it landed before deleting the token.
async fn write_or_compensate(t: &Target, ports: &Ports<'_>, write: &SecretWrite, new_id: &str) -> Result<StoredSecret> {
    let err = match ports.store.write(write).await {
        Ok(stored) => return Ok(stored),
        Err(e) => e,
    };
    match ports.store.read_latest(&t.secret_name).await {
        Ok(Some(s)) if s.tags.get(tags::TOKEN_ID).map(String::as_str) == Some(new_id) => {
            warn!(target_name = %t.name, error = %err, "the secret write reported an error but the new version is there");
            Ok(s)
        }
        Ok(_) => {
            let note = match ports.workspace.delete_token(new_id).await {
                Ok(()) => {
                    format!("the new token {} was deleted; the secret and its token are unchanged", short_id(new_id))
                }
                Err(de) => format!(
                    "deleting the new token {} failed too ({de}); it will be swept as an orphan within an hour",
                    short_id(new_id)
                ),
            };
            warn!(target_name = %t.name, error = %err, "secret write failed; {note}");
            Err(err.clone().context(&format!("writing the secret ({note})")))
        }
        Err(re) => {
            let note = format!(
                "whether the new version landed is unknown (reading it back failed: {re}); the new token {} is kept and, if unrecorded, swept as an orphan within an hour",
                short_id(new_id)
            );
            warn!(target_name = %t.name, error = %err, "{note}");
            Err(err.context(&format!("writing the secret ({note})")))
        }
    }
}

/// Revokes `ids`, a few at a time; returns those that are gone. Failures are logged, not fatal:
/// the next run sweeps again.
async fn revoke_all(ws: &dyn Workspace, target: &str, ids: &[String], why: &str) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
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
