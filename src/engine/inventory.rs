//! What the inventory commands read and do: `tokens` (every credential each target's issuer
//! holds, whose it is, and when it was last used where the issuer tells) and `tokens --revoke`
//! (guarded by every configured secret's latest version, contract §10 "Inventory follows
//! §7.4"). `status` is in [`super::health`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Engine;
use super::guard::{self, PassReads, Unread};
use crate::azure::keyvault::KeyVaultStore;
use crate::config::Target;
use crate::error::{ErrorBody, Result};
use crate::rotation::model::{Ownership, rfc3339};
use crate::rotation::ports::{Issuer, SecretStore, Usage};
use crate::rotation::rotate;
use crate::transport::retry;

impl Engine {
    /// The identity the CLI runs as, by the object id of its vault token for `t`'s vault
    /// (`tokens` prints it, contract §10).
    pub async fn identity(&self, t: &Target) -> Option<String> {
        self.clients.vault(t).ok()?.writer().await
    }

    /// The target's issuer and vault, or the error that stops building them.
    pub(super) fn clients_of(&self, t: &Target) -> Result<(Arc<dyn Issuer>, Arc<KeyVaultStore>)> {
        Ok((self.clients.issuer(t)?, self.clients.vault(t)?))
    }

    /// What one target's issuer holds and what its secret's versions record: reads only.
    async fn inventory_one(&self, t: &Target) -> Result<Inventory> {
        let (issuer, store) = self.clients_of(t)?;
        let profile = issuer.profile();
        let (listed, read) = futures::join!(issuer.list(), store.read_latest(&t.secret_name));
        let latest = read.as_ref().ok().and_then(|r| r.latest.clone());
        let tied = read.as_ref().map(|r| r.tied.clone()).unwrap_or_default();
        let named = match &listed {
            Ok(l) => {
                rotate::records(store.as_ref(), &t.secret_name, profile, latest.as_ref(), &tied, &l.credentials).await.0
            }
            Err(_) => BTreeSet::new(),
        };
        let listed = listed.map(|l| l.credentials);
        Ok(Inventory { listed, read: read.map(|_| ()), latest, tied, named })
    }

    /// `pat-rotator tokens`: every credential each target's issuer holds, and whose it is.
    pub async fn inventory(&self, targets: &[&Target], budget: Duration) -> Vec<TokensRow> {
        let deadline = Instant::now() + budget;
        self.each_target(targets, |t| {
            retry::within(deadline, async move {
                let mut row = TokensRow { target: t.name.clone(), tokens: Vec::new(), error: None, notes: Vec::new() };
                let inv = match self.inventory_one(t).await {
                    Ok(i) => i,
                    Err(e) => {
                        row.error = Some(ErrorBody::from(&e));
                        return row;
                    }
                };
                match &inv.read {
                    Err(e) => row.error = Some(ErrorBody::from(e)),
                    Ok(()) if inv.latest.is_none() => row.notes.push(format!(
                        "{}: the secret reads as absent (deleted, soft-deleted or being recovered): `managed` and `in vault` prove nothing about what its consumers hold, and tokens --revoke refuses this target's ids",
                        t.name
                    )),
                    Ok(()) => {}
                }
                // Of versions tied in the newest second, each counts as the latest (contract §7.4).
                let in_vault: BTreeSet<String> = inv
                    .latest
                    .iter()
                    .chain(&inv.tied)
                    .flat_map(|s| guard::named_by(s).collect::<Vec<_>>())
                    .collect();
                match inv.listed {
                    Ok(creds) => {
                        let resolved = crate::rotation::rules::resolve(&creds, &inv.named);
                        row.tokens = resolved
                            .into_iter()
                            .map(|c| TokenRow {
                                in_vault: in_vault.contains(&c.id),
                                last_used_day: None,
                                managed: c.ownership == Ownership::Ours,
                                token_id: c.id,
                                comment: c.comment,
                                created_at: c.created_at.map(rfc3339),
                                expires_at: c.expires_at.map(rfc3339),
                            })
                            .collect();
                    }
                    Err(e) => row.error = Some(ErrorBody::from(&e)),
                }
                let ids: Vec<String> = row.tokens.iter().map(|c| c.token_id.clone()).collect();
                let days = self.last_used_days(t, &ids).await;
                for c in &mut row.tokens {
                    c.last_used_day = days.get(&c.token_id).map(|d| d.to_string());
                }
                row
            })
        })
        .await
    }

    /// Contract §10: the day each credential was last used, where the issuer tells (a PAT, when
    /// the identity is a workspace admin: the Token Management API), a few lookups at a time.
    /// The first lookup goes alone, so an identity without the right costs one `403`, not one
    /// per credential; a credential whose lookup fails, or whose answer has no day, is left out.
    pub(crate) async fn last_used_days(&self, t: &Target, ids: &[String]) -> BTreeMap<String, time::Date> {
        use futures::StreamExt;
        let mut out = BTreeMap::new();
        let (Some(first), Ok(issuer)) = (ids.first(), self.clients.issuer(t)) else { return out };
        let day = |u: Usage| match u {
            Usage::Read { last_used_day, .. } => last_used_day,
            _ => None,
        };
        match issuer.usage(first).await {
            Usage::Untracked | Usage::Forbidden { .. } => return out,
            u => out.extend(day(u).map(|d| (first.clone(), d))),
        }
        let rest: Vec<(String, Option<time::Date>)> = futures::stream::iter(ids[1..].iter().cloned())
            .map(|id| {
                let issuer = issuer.clone();
                async move {
                    let u = issuer.usage(&id).await;
                    (id, day(u))
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        out.extend(rest.into_iter().filter_map(|(id, d)| d.map(|d| (id, d))));
        out
    }

    /// `pat-rotator tokens --revoke ID…`: revokes each id in every selected target's issuer that
    /// holds it — unless a selected target refuses one of them, then nothing at all (contract
    /// §10). A target refuses an id its issuer holds when the latest version of any configured
    /// secret names it (under either kind's tag), and every id its issuer holds when its own
    /// secret, or the secret of a target sharing its issuer, read as absent. A failed read of
    /// any configured secret revokes nothing. Ids found nowhere are reported.
    pub async fn revoke_ids(&self, targets: &[&Target], ids: &[String], budget: Duration) -> RevokeReport {
        let deadline = Instant::now() + budget;
        retry::within(deadline, self.revoke_ids_inner(targets, ids)).await
    }

    async fn revoke_ids_inner(&self, targets: &[&Target], ids: &[String]) -> RevokeReport {
        let mut report = RevokeReport::default();
        // Every configured secret, not only the selected targets': a credential one of them
        // names is what its consumers read.
        let all: Vec<&Target> = self.config.targets.iter().collect();
        let reads = PassReads::default();
        let (protected, unread) = guard::latest_names(self, &all, &reads).await;
        report.consulted = all.len();
        let mut absent: BTreeSet<&str> = BTreeSet::new();
        for (name, why) in &unread {
            match why {
                Unread::Failed(e) => report.errors.push(format!(
                    "{name}: reading its secret failed ({e}); nothing was revoked, since an id it names cannot be ruled out"
                )),
                Unread::Absent => {
                    absent.insert(name.as_str());
                }
            }
        }
        if !report.errors.is_empty() {
            return report;
        }
        let mut refused: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                protected
                    .get(id)
                    .map(|t| format!("{id} is the credential the latest version of target {t}'s secret names"))
            })
            .collect();
        let mut holders = Vec::new();
        // Targets whose issuer could not be listed: an id not found elsewhere may be theirs.
        let mut unlisted: Vec<&str> = Vec::new();
        for t in targets {
            let (issuer, _) = match self.clients_of(t) {
                Ok(c) => c,
                Err(e) => {
                    report.errors.push(format!("{}: {e}", t.name));
                    unlisted.push(&t.name);
                    continue;
                }
            };
            let listed: BTreeSet<String> = match issuer.list().await {
                Ok(l) => l.credentials.into_iter().map(|c| c.id).collect(),
                Err(e) => {
                    report.errors.push(format!("{}: listing failed ({e})", t.name));
                    unlisted.push(&t.name);
                    continue;
                }
            };
            // A secret that reads as absent proves nothing: soft-deleted or being recovered, its
            // versions may name any credential its consumers will read again (contract §7.4).
            let unproven = if absent.contains(t.name.as_str()) {
                Some(format!(
                    "the secret of target {} reads as absent (deleted, soft-deleted or being recovered)",
                    t.name
                ))
            } else {
                all.iter().find(|o| guard::shares_issuer(t, o) && absent.contains(o.name.as_str())).map(|o| {
                    format!(
                        "the secret of target {}, which may name target {}'s credentials, reads as absent (deleted, soft-deleted or being recovered)",
                        o.name, t.name
                    )
                })
            };
            if let Some(why) = &unproven {
                for id in ids.iter().filter(|id| listed.contains(*id)) {
                    refused.push(format!(
                        "{}: {id} is refused: {why}, so nothing proves that its consumers do not hold it; recover the secret first (or purge it and rotate the target)",
                        t.name
                    ));
                }
            }
            holders.push((*t, issuer, listed));
        }
        if !refused.is_empty() {
            report.errors.extend(refused);
            report.errors.push(
                "nothing was revoked; rotate that target first (pat-rotator rotate --target NAME --force)".into(),
            );
            return report;
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        for (t, issuer, listed) in &holders {
            for id in ids {
                if !listed.contains(id) {
                    continue;
                }
                found.insert(id.clone());
                if report.revoked.iter().any(|(r, _)| r == id) {
                    continue;
                }
                match issuer.revoke(id).await {
                    Ok(()) => {
                        tracing::warn!(target_name = %t.name, token = %crate::rotation::model::short_id(id), "revoked by tokens --revoke");
                        report.revoked.push((id.clone(), t.name.clone()));
                    }
                    Err(e) => report.errors.push(format!("{}: revoking {id} failed ({e})", t.name)),
                }
            }
        }
        for id in ids.iter().filter(|id| !found.contains(*id)) {
            report.errors.push(if unlisted.is_empty() {
                format!("{id} was found in no selected target's workspace")
            } else {
                format!(
                    "{id} was not found where it could be looked for; the credentials of {} could not be listed, so it may be there",
                    unlisted.join(", ")
                )
            });
        }
        report
    }
}

/// What one target's issuer holds and what its secret records.
struct Inventory {
    listed: Result<Vec<crate::rotation::model::Credential>>,
    read: Result<()>,
    latest: Option<crate::rotation::model::StoredSecret>,
    /// Versions tied with `latest` in the newest `created` second (contract §7.4).
    tied: Vec<crate::rotation::model::StoredSecret>,
    /// Ids some version names.
    named: BTreeSet<String>,
}

/// One target of `pat-rotator tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct TokensRow {
    pub target: String,
    pub tokens: Vec<TokenRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// What the operator should know about this target's rows (printed on stderr).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// One credential in `pat-rotator tokens` (contract §1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub token_id: String,
    pub comment: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    /// The target's by contract §6 / §9.
    pub managed: bool,
    /// The latest version of the target's secret names it.
    pub in_vault: bool,
    /// `YYYY-MM-DD`, the UTC day of its last use (contract §10; PATs, when the identity may read
    /// the Token Management API), else `null`.
    pub last_used_day: Option<String>,
}

/// What `tokens --revoke` did.
#[derive(Debug, Clone, Default)]
pub struct RevokeReport {
    /// (id, target whose workspace held it).
    pub revoked: Vec<(String, String)>,
    pub errors: Vec<String>,
    /// How many configured secrets' latest versions were consulted (contract §10).
    pub consulted: usize,
}
