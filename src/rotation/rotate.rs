//! One target's rotation, contract §7 steps 1–6, written against the [`ports`](super::ports).
//! The same order of effects serves every kind of credential; what differs between kinds is
//! the issuer's business (its [`Profile`], its reading of ownership and refusals).
//!
//! The order of effects is the safety argument, so it is spelled out:
//!
//! 1. list ‖ read the latest version — no effects. If the credential the latest version names
//!    is not in the list, list again: a concurrent writer's credential may simply be newer than
//!    the first list, and `revoked_in_workspace` is decided only from a list taken after the
//!    read. If a credential may be the target's only when recorded ([`Ownership::IfRecorded`])
//!    and the latest version does not name it, read the versions list to settle it;
//! 2. decide ([`rules::decide`]; a forced ProvisionPat first passes [`rules::force_declined`]);
//! 3. nothing is revoked yet: a rotation whose write fails must leave every credential that
//!    worked before working (the one exception: a full issuer, step 4);
//! 4. create a credential; after an ambiguous failure, if the issuer labels attempts, list and
//!    delete the one carrying this attempt's label (its value is lost) and try again (bounded),
//!    else fail and name what appeared; when the issuer is full, read everything again, revoke
//!    what that proves revocable (nothing if a read fails or the secret reads as absent) and
//!    what is over the cap, and try once more;
//! 5. verify the new credential; if it fails, delete it;
//! 6. write the secret, unless the credential is already older than
//!    [`rules::MAX_UNWRITTEN_AGE`] (then delete it and go back to 4, once). If the write fails,
//!    read the secret back: our version there → success; a newer version by someone else →
//!    delete ours and stop; the old version still there → try again (bounded) or delete the
//!    new credential. A write whose outcome is unknown may still land: from then on the new
//!    credential is never deleted — it is kept, and a later run finds it recorded or proves it
//!    an orphan. The read-back fails → keep it too;
//! 7. revoke what the evidence proves revocable ([`rules::revocable`]: what the first read
//!    proved, and what the new version proves) and what is over the cap ([`rules::over_cap`]);
//!    with `--revoke-superseded`, every other credential of the target. Never what the latest
//!    version of any configured secret this issuer's credentials may be in names (contract
//!    §7.4(a): [`OtherSecrets`], read before the first revocation and again before any
//!    revocation more than ten minutes later); nothing at all while one of those reads failed
//!    or said "absent".
//!
//! Every upstream text a result, a warning or a log line of the run carries is scrubbed of the
//! values of the credentials the run created (contract §10), and what the run says about a
//! credential it leaves behind is true for its kind: a PAT carries the target in its comment
//! and is revoked by a later run once it is an hour old; an OAuth secret carries nothing and is
//! reported `unrecorded` for an operator to remove.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use time::{Duration, OffsetDateTime};
use tokio::time::Instant;
use tracing::{info, warn};

use super::model::{
    Action, CreateRequest, Credential, NewCredential, Outcome, Ownership, Profile, Reason, SecretView, SecretWrite,
    StoredSecret, Warning, WarningKind, rfc3339, short_id, tags,
};
use super::ports::{Backoff, Clock, CreateError, Issuer, OtherSecrets, Refusal, SecretStore, Usage, WriteError};
use super::rules::{self, Capped, Decision, Evidence, Latest, Supersession, UseVerdict};
use super::spec::{Force, OtherWriter, Owner, Request, Spec};
use crate::error::{Code, Error, Result};
use crate::secret::Redacted;

/// The ports one target's rotation talks to.
pub struct Ports<'a> {
    pub issuer: &'a dyn Issuer,
    pub store: &'a dyn SecretStore,
    pub clock: &'a dyn Clock,
    pub backoff: &'a dyn Backoff,
    /// The other configured secrets that may name this issuer's credentials (contract §7.4(a)).
    pub others: &'a dyn OtherSecrets,
}

/// How many credentials are revoked at once during a sweep.
const REVOKE_PARALLELISM: usize = 4;
/// Creates attempted in one run when each outcome was unknown (and cleaned up).
const MAX_AMBIGUOUS_CREATES: u32 = 3;
/// Pause before creating again after an ambiguous create, times the attempt number.
const AMBIGUOUS_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// Credentials created in one run because the previous one grew too old to be written.
const MAX_STALE_CREATES: u32 = 2;

/// The old defect of finding 1, for the simulator: an "absent" read taken as proof.
fn absent_is_proof() -> bool {
    #[cfg(feature = "sim-bugs")]
    return super::bugs::on(super::bugs::Bug::AbsentIsProof);
    #[cfg(not(feature = "sim-bugs"))]
    false
}

/// The credentials that versions of secret `name` name (`databricks-token-id` or
/// `previous-token-id`, or the kind's tags), as evidence of whose a listed credential is:
/// the latest version's (and those tied with it, see [`SecretRead::tied`](super::ports::SecretRead))
/// always; the versions list only when a listed credential is the target's by record alone
/// ([`Ownership::IfRecorded`]) and the latest version does not name it, so the steady state
/// stays at one read. The error is the versions list's, when it failed (then such credentials
/// stay unattributed).
///
/// The list is taken after `latest` was read, so it may hold a version written meanwhile,
/// naming a credential whose grace has not even begun: that is no record. When the latest
/// version is still `latest`, nothing was written in between; otherwise only versions older
/// than it (Key Vault's `created` has whole seconds, so one of the same second may be newer)
/// are evidence. The third set is every credential any listed version names, evidence or not:
/// what no warning may call unrecorded.
pub async fn records(
    store: &dyn SecretStore,
    name: &str,
    profile: &Profile,
    latest: Option<&StoredSecret>,
    tied: &[StoredSecret],
    listed: &[Credential],
) -> (BTreeSet<String>, Option<Error>, BTreeSet<String>) {
    let add = |named: &mut BTreeSet<String>, v: &StoredSecret| {
        let (id, prev) = v.names(profile);
        named.extend(id);
        named.extend(prev);
    };
    let mut named = BTreeSet::new();
    let Some(seen) = latest else { return (named, None, BTreeSet::new()) };
    add(&mut named, seen);
    for v in tied {
        add(&mut named, v);
    }
    if !listed.iter().any(|c| c.ownership == Ownership::IfRecorded && !named.contains(&c.id)) {
        let mentioned = named.clone();
        return (named, None, mentioned);
    }
    let versions = match store.versions(name).await {
        Ok(v) => v,
        Err(e) => {
            let mentioned = named.clone();
            return (named, Some(e), mentioned);
        }
    };
    let unchanged = match store.read_latest(name).await {
        Ok(again) => again.latest.as_ref().map(|s| &s.id) == Some(&seen.id),
        Err(_) => false,
    };
    let evidence = |v: &StoredSecret| {
        unchanged
            || v.id == seen.id
            || tied.iter().any(|t| t.id == v.id)
            || matches!((v.created, seen.created), (Some(c), Some(l)) if c < l)
    };
    let mut mentioned = named.clone();
    for v in &versions {
        add(&mut mentioned, v);
        if evidence(v) {
            add(&mut named, v);
        }
    }
    (named, None, mentioned)
}

/// One target's rotation.
pub async fn rotate(spec: &Spec, req: Request, ports: &Ports<'_>) -> Outcome {
    let run = Run {
        spec,
        req,
        ports,
        profile: ports.issuer.profile(),
        warnings: Mutex::new(Vec::new()),
        held: Mutex::new(Vec::new()),
        told_unread: AtomicBool::new(false),
        usage_unreadable: Mutex::new(None),
    };
    let mut out = run.rotate().await;
    // Upstream texts were scrubbed where they were read; this is the last look before the
    // outcome leaves (contract §10).
    if let Some(e) = out.error.as_mut() {
        e.message = run.clean(&e.message);
    }
    if let Some(e) = out.failure.as_mut() {
        e.message = run.clean(&e.message);
    }
    out.warnings = run.warnings.into_inner().unwrap_or_default();
    out.usage_unreadable = run.usage_unreadable.into_inner().unwrap_or_default();
    out
}

/// What a run read: the listing and the latest version, with the clocks to judge them by.
struct Observed {
    /// Ownership resolved ([`rules::resolve`]).
    creds: Vec<Credential>,
    /// The issuer's clock when the secret was read, at the earliest; `None` without `Date`.
    creds_at: Option<OffsetDateTime>,
    /// `None`: the read said "absent", which proves nothing.
    latest: Option<StoredSecret>,
    view: Option<SecretView>,
    /// Versions sharing the latest version's `created` second when it was found from the
    /// versions list: each counts as the latest (contract §7.4).
    tied: Vec<StoredSecret>,
    /// Key Vault's clock when it answered the read.
    vault_at: Option<OffsetDateTime>,
    /// Credentials some version this run read names.
    named: BTreeSet<String>,
    /// Credentials that only versions written after the read name ([`records`]): no evidence
    /// of whose they are, but a version records them and consumers may read it, so this run
    /// revokes none of them, as superseded, orphan or over the cap; the next run orders them.
    unordered: BTreeSet<String>,
}

impl Observed {
    /// The id the latest version names, as protection: whatever its other tags say.
    fn latest_names(&self) -> Option<&str> {
        let v = self.view.as_ref()?;
        // The old defect, for the simulator to find: only a version still tagged `managed-by`
        // protected its credential.
        #[cfg(feature = "sim-bugs")]
        if super::bugs::on(super::bugs::Bug::RetagUnprotected) && !v.managed {
            return None;
        }
        v.credential_id.as_deref()
    }

    /// Everything the secret's own latest versions name (contract §7.4(a)): the latest
    /// version's credential under either kind's tag, and the credentials of the versions tied
    /// with it.
    fn own_protected(&self, profile: &Profile) -> BTreeSet<String> {
        let mut p: BTreeSet<String> = self.latest_names().map(str::to_string).into_iter().collect();
        #[cfg(feature = "sim-bugs")]
        let retag_bug = super::bugs::on(super::bugs::Bug::RetagUnprotected);
        #[cfg(not(feature = "sim-bugs"))]
        let retag_bug = false;
        if let Some(s) = self.latest.as_ref().filter(|_| !retag_bug || self.latest_names().is_some()) {
            p.extend(s.protects(profile));
        }
        for t in &self.tied {
            p.extend(t.protects(profile));
        }
        p.extend(self.unordered.iter().cloned());
        p
    }

    /// The latest version as evidence. One that names no credential protects none (contract
    /// §7.4(a) protects by the tag): an operator who replaces a version's tags must keep
    /// `databricks-token-id` (README, "What is revoked, and when").
    fn latest(&self) -> Latest<'_> {
        match &self.latest {
            None => Latest::Absent,
            Some(s) => Latest::Found { credential_id: self.latest_names(), created: s.created },
        }
    }

    fn evidence<'a>(&'a self, recorded: &'a [&'a str], protected: &'a BTreeSet<String>) -> Evidence<'a> {
        Evidence {
            creds: &self.creds,
            creds_at: self.creds_at,
            latest: self.latest(),
            vault_at: self.vault_at,
            recorded,
            protected,
        }
    }

    /// Every version that counts as the latest, for the guard of contract §10 (another identity
    /// if any of them names one): the one read and, where several versions share the newest
    /// `created` second (contract §7.4), each of them.
    fn latest_views(&self, profile: &Profile) -> Vec<SecretView> {
        let mut views: Vec<SecretView> = self.view.iter().cloned().collect();
        views.extend(self.tied.iter().map(|s| SecretView::of(s, profile)));
        views
    }

    /// The listed credential the latest version names (the one a rotation supersedes; of tied
    /// versions, the one with the greatest id, contract §7.4).
    fn current(&self) -> Option<&Credential> {
        let id = self.view.as_ref()?.credential_id.as_deref()?;
        self.creds.iter().find(|c| c.id == id)
    }

    fn named_ids(&self) -> Vec<&str> {
        self.named.iter().map(String::as_str).collect()
    }

    /// What this evidence proves revocable, plus what is over `limit` (with `extra` live
    /// credentials not in the list) when the kind revokes over its cap; never anything in
    /// `protected`, nor what `u` keeps for its use (whose use is known go last over the cap).
    fn sweep(
        &self,
        profile: &Profile,
        grace: Duration,
        extra: usize,
        limit: usize,
        protected: &BTreeSet<String>,
        u: &InUse,
    ) -> (Vec<String>, Capped) {
        let named = self.named_ids();
        let mut proven = rules::revocable(&self.evidence(&named, protected), grace);
        proven.retain(|id| !u.kept.contains(id));
        let capped = if profile.revokes_over_cap && self.latest.is_some() {
            rules::over_cap_unused_first(&self.creds, protected, &proven, &u.in_use, extra, limit)
        } else {
            Capped::default()
        };
        (proven, capped)
    }
}

/// What a cap revocation is counted against again right before it ([`Run::recount_cap`]):
/// the credentials the run's versions record (to settle ownership in the new listing) and the
/// limit (the cap, or one below it when making room).
#[derive(Clone, Copy)]
struct Recount<'a> {
    named: &'a BTreeSet<String>,
    limit: usize,
}

impl Observed {
    fn recount(&self, limit: usize) -> Recount<'_> {
        Recount { named: &self.named, limit }
    }
}

/// The version a run's write replaces, as its read found it.
#[derive(Clone, Copy)]
struct Basis<'a> {
    /// `None`: the read said "absent".
    id: Option<&'a str>,
    /// Key Vault's clock when it answered that read.
    read_at: Option<OffsetDateTime>,
}

impl Basis<'_> {
    /// Whether `latest`, read back after a write of this run failed, is another run's version
    /// written meanwhile (this run then keeps it). A version other than the one read is, except
    /// after a read that said "absent": Key Vault answers 404 briefly for a secret that exists
    /// (during recovery), so a version created before that read by Key Vault's own clock was
    /// there all along. That read proved nothing, and the write's failure stands (retried when
    /// transient), rather than being passed off as a concurrent rotation (simulator, seeds 12
    /// and 20 with invariant 13's check of a forced run's `fresh`).
    fn superseded_by(&self, latest: &StoredSecret) -> bool {
        if Some(latest.id.as_str()) == self.id {
            return false;
        }
        let there_before = self.id.is_none()
            && matches!((latest.created, self.read_at), (Some(c), Some(at)) if c < at - Duration::seconds(1));
        !there_before
    }
}

/// When a new credential was asked for and proven to work, on every clock we have.
struct Verified {
    /// The issuer's clock at the verification.
    issuer_at: Option<OffsetDateTime>,
    /// Our monotonic clock (does not jump) and wall clock (counts a suspended laptop) when the
    /// verification was sent: no later than the issuer's `Date`, so the age is never short.
    at: Instant,
    wall: OffsetDateTime,
    /// When the create request was sent.
    sent: Instant,
    sent_wall: OffsetDateTime,
}

impl Verified {
    /// How old the credential is now by the issuer's clock, as well as we can tell: its age at
    /// the verification plus the longer of the two local measures of the time since; without
    /// the issuer's clock, the local time since the create request was sent.
    fn age(&self, c: &Credential, clock: &dyn Clock) -> Duration {
        let since = |i: Instant, w: OffsetDateTime| {
            let monotonic = Duration::try_from(i.elapsed()).unwrap_or(Duration::MAX);
            monotonic.max(clock.now() - w)
        };
        match (self.issuer_at, c.created_at) {
            (Some(at), Some(created)) => (at - created).max(Duration::ZERO).saturating_add(since(self.at, self.wall)),
            _ => since(self.sent, self.sent_wall),
        }
    }
}

/// What the guard of contract §10 lets a run do.
enum Guard {
    Proceed,
    /// The target fails, before anything is created.
    Fail(Error),
    /// The target is left as it is (`unchanged`, with a warning).
    Leave,
}

/// How a write ended when it did not fail.
enum Written {
    Recorded(StoredSecret),
    /// The credential was too old to be written; it was deleted (or left to the orphan sweep).
    Stale,
    /// Someone else wrote a newer version meanwhile; `true`: this run's credential is kept
    /// (its write may still land, or deleting it failed).
    Superseded(StoredSecret, bool),
}

struct Run<'a> {
    spec: &'a Spec,
    req: Request,
    ports: &'a Ports<'a>,
    profile: &'static Profile,
    warnings: Mutex<Vec<Warning>>,
    /// The values of the credentials this run created: scrubbed from every upstream text the
    /// run passes on (contract §10).
    held: Mutex<Vec<Redacted>>,
    /// Whether the run already said that another secret's failed read stops its revocations.
    told_unread: AtomicBool,
    /// The issuer refused to say how credentials were used (contract §10 "Usage": a `403`):
    /// what it refused, for the engine's one warning per pass.
    usage_unreadable: Mutex<Option<String>>,
}

/// What the usage lookups found (contract §10 "Usage"), for a plan: `kept` stay out of what is
/// proven revocable; over the cap, `in_use` go last.
#[derive(Debug, Default)]
struct InUse {
    kept: BTreeSet<String>,
    in_use: BTreeSet<String>,
}

/// Where a plan's credentials are judged by their use (contract §10 "Usage"): the run's reads,
/// the credential this run just superseded with the new version's `created`, and Key Vault's
/// clock for the `renew_before_days` bound.
#[derive(Clone, Copy)]
struct UseCheck<'o> {
    obs: &'o Observed,
    successor: Option<(&'o str, Option<OffsetDateTime>)>,
    vault_now: Option<OffsetDateTime>,
}

/// How many credentials of the run's kind would be revoked by one plan, before and after the
/// other configured secrets were asked what they name.
struct Plan {
    proven: Vec<String>,
    why: &'static str,
    capped: Capped,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.proven.is_empty() && self.capped.revoke.is_empty()
    }
}

impl Run<'_> {
    /// A warning for the operator: logged now, and carried in the result (§4 `warnings`).
    fn warn(&self, kind: WarningKind, msg: String) {
        let msg = self.clean(&msg);
        warn!(target_name = %self.spec.target, "{msg}");
        self.warnings.lock().expect("warnings lock").push(Warning { kind, message: msg });
    }

    /// `text` without any piece of a credential value this run holds.
    fn clean(&self, text: &str) -> String {
        let held = self.held.lock().expect("held lock");
        let refs: Vec<&Redacted> = held.iter().collect();
        crate::secret::scrub(text, &refs)
    }

    /// What happens to a credential of this run that it could not delete, true for the kind
    /// (contract §10): a PAT carries the target in its comment, so a later run revokes it once
    /// it is an hour old unless a version records it; an OAuth secret carries nothing, so it is
    /// reported `unrecorded` and only an operator removes it.
    fn left_behind(&self, id: &str) -> String {
        if self.profile.reports_unrecorded {
            format!(
                "it stays live: unless a version records it, it is reported as unrecorded (warnings, `pat-rotator status`) until you remove it with `pat-rotator tokens --target {} --revoke {id}`",
                self.spec.target
            )
        } else {
            format!(
                "a later run revokes it once it is {} minutes old, unless a version records it",
                rules::ORPHAN_WINDOW.whole_minutes()
            )
        }
    }

    fn noun(&self) -> &'static str {
        self.profile.noun
    }

    /// What the latest versions of the other configured secrets name, or `None` when one of
    /// them could not be read (then nothing may be revoked: contract §7.4(a); said once per run).
    async fn others_named(&self) -> Option<BTreeMap<String, String>> {
        let p = self.ports.others.latest().await;
        if p.unread.is_empty() {
            return Some(p.named);
        }
        if !self.told_unread.swap(true, Ordering::SeqCst) {
            self.warn(
                WarningKind::ProtectionUnreadable,
                format!(
                    "nothing is revoked this run: {} could not be read, and its latest version may name one of this target's {}s (an operator may have copied a version between secrets); the next run tries again",
                    p.unread.join("; "),
                    self.noun()
                ),
            );
        }
        None
    }

    /// Revokes what `plan` picks once it knows what the latest versions of the other configured
    /// secrets name (contract §7.4(a)). `plan` gets the protected ids (the secret's own latest
    /// versions' always); they are read only when the plan without them revokes anything, so a
    /// run with nothing to revoke reads nothing more.
    ///
    /// With `keep_while_used` and a `check` (contract §10 "Usage"), what the plan would revoke
    /// past its grace is first looked up and a credential a consumer still uses is kept
    /// ([`Run::spare_in_use`]); when the cap still has to act, the use of its candidates orders
    /// it ([`Run::learn_in_use`]). Without a `check` (`--revoke-superseded`) usage is ignored.
    /// What the cap would revoke is counted again right before ([`Run::recount_cap`]).
    async fn revoke_planned(
        &self,
        own: &BTreeSet<String>,
        recount: Recount<'_>,
        check: Option<UseCheck<'_>>,
        plan: impl Fn(&BTreeSet<String>, &InUse) -> Plan,
    ) -> Vec<String> {
        let unknown = InUse::default();
        let first = plan(own, &unknown);
        if first.is_empty() {
            if first.capped.held > 0 {
                self.warn_held(first.capped.held);
            }
            return Vec::new();
        }
        let Some(named) = self.others_named().await else { return Vec::new() };
        let mut protected = own.clone();
        protected.extend(named.keys().cloned());
        let mut chosen = plan(&protected, &unknown);
        let mut in_use = BTreeSet::new();
        if let Some(check) = check.filter(|_| self.spec.keep_while_used && !self.req.revoke_superseded) {
            let kept = self.spare_in_use(check, &chosen.proven).await;
            let mut u = InUse { in_use: kept.clone(), kept };
            if !u.kept.is_empty() {
                chosen = plan(&protected, &u);
            }
            if !chosen.capped.revoke.is_empty()
                && self.learn_in_use(check.obs, &protected, &chosen.proven, &mut u.in_use).await
            {
                chosen = plan(&protected, &u);
            }
            in_use = u.in_use;
        }
        for id in first.proven.iter().chain(&first.capped.revoke) {
            if let Some(by) = named.get(id) {
                self.tell_protected(id, by);
            }
        }
        if chosen.capped.held > 0 {
            self.warn_held(chosen.capped.held);
        }
        let mut done = self.revoke_all(&chosen.proven, chosen.why).await;
        let capped = self.recount_cap(chosen.capped.revoke, recount, &protected, &chosen.proven, &in_use).await;
        done.extend(self.revoke_all(&capped, "over_cap").await);
        done
    }

    /// Contract §10 "Usage": each credential of `proven` (past its grace) is looked up, and one a
    /// consumer still uses is kept ([`rules::use_verdict`]): returned, with a `kept_in_use`
    /// warning naming its `last_used_day`; one whose use cannot be told this run is kept too,
    /// with a warning. A `403` (no workspace admin) keeps nothing: the plain grace applies.
    ///
    /// It only ever keeps more than the grace alone would.
    async fn spare_in_use(&self, check: UseCheck<'_>, proven: &[String]) -> BTreeSet<String> {
        let mut kept = BTreeSet::new();
        let (issuer, target, noun, obs) = (self.ports.issuer, &self.spec.target, self.noun(), check.obs);
        // When each credential was superseded: the one the read version names as its
        // predecessor at that version's `created`, the one this run superseded at the new
        // version's; any other from the versions list, read once when needed.
        let mut known: BTreeMap<String, Supersession> = BTreeMap::new();
        if let Some(l) = &obs.latest
            && let Some(prev) = l.names(self.profile).1
        {
            known.insert(prev, l.created.map_or(Supersession::Unknown, Supersession::At));
        }
        if let Some((id, created)) = check.successor {
            known.insert(id.to_string(), created.map_or(Supersession::Unknown, Supersession::At));
        }
        let mut versions: Option<Result<Vec<StoredSecret>>> = None;
        for id in proven {
            let usage = issuer.usage(id).await;
            match &usage {
                Usage::Untracked => return BTreeSet::new(),
                Usage::Forbidden { scope, error } => {
                    info!(target_name = %target, error = %self.clean(&error.to_string()), "the last use of superseded {noun}s cannot be read ({scope}); keep_while_used is off for this run: the plain grace applies");
                    *self.usage_unreadable.lock().expect("usage lock") = Some(scope.clone());
                    return BTreeSet::new();
                }
                Usage::Gone | Usage::Failed(_) | Usage::Read { .. } => {}
            }
            let superseded = match known.get(id) {
                Some(s) => *s,
                None => {
                    if versions.is_none() {
                        versions = Some(self.ports.store.versions(&self.spec.secret_name).await);
                    }
                    match versions.as_ref() {
                        Some(Ok(v)) => rules::supersession(v, id, self.profile),
                        _ => Supersession::Unknown,
                    }
                }
            };
            let cred = obs.creds.iter().find(|c| &c.id == id);
            let verdict = rules::use_verdict(
                &usage,
                cred.and_then(|c| c.expires_at),
                obs.creds_at,
                superseded,
                check.vault_now,
                self.spec.renew_before,
            );
            match verdict {
                UseVerdict::Revoke => {}
                UseVerdict::InUse(day) => {
                    // The line the workbook reads: `action` = `kept_in_use`, `token_id_prefix`,
                    // and `last_used_day=YYYY-MM-DD` in the message.
                    let msg = format!(
                        "superseded {noun} {} kept: in use (last_used_day={day}); a consumer still reads an old version of the secret (it is kept at most {} days after it was superseded)",
                        short_id(id),
                        self.spec.renew_before.whole_days()
                    );
                    warn!(target_name = %target, action = "kept_in_use", token = %short_id(id), "{msg}");
                    self.warnings
                        .lock()
                        .expect("warnings lock")
                        .push(Warning { kind: WarningKind::KeptInUse, message: msg });
                    kept.insert(id.clone());
                }
                UseVerdict::Unknown => {
                    let why = match (&usage, &superseded, &versions) {
                        (Usage::Failed(e), _, _) => format!("looking up its last use failed ({e})"),
                        (_, Supersession::Unknown, Some(Err(e))) => {
                            format!("when it was superseded could not be read ({e})")
                        }
                        (_, Supersession::Unknown, _) => "when it was superseded is unknown".to_string(),
                        _ => "the answer about its last use had no last_used_day or no Date".to_string(),
                    };
                    self.warn(
                        WarningKind::UsageUnknown,
                        format!("superseded {noun} {} kept for this run: {why}", short_id(id)),
                    );
                    kept.insert(id.clone());
                }
            }
        }
        kept
    }

    /// Over the cap with `keep_while_used` (contract §10: those not in use go first): looks up
    /// the use of every live candidate not yet known (not `going`, not `protected`) and adds
    /// those in use — or whose use cannot be told — to `in_use`. A credential created by a
    /// rotation in flight was used by its verification, so it counts as in use. Returns whether
    /// it learnt anything (false also on a `403`: the plain order applies).
    async fn learn_in_use(
        &self,
        obs: &Observed,
        protected: &BTreeSet<String>,
        going: &[String],
        in_use: &mut BTreeSet<String>,
    ) -> bool {
        let candidates: Vec<String> = rules::ours(&obs.creds)
            .filter(|c| !going.contains(&c.id) && !protected.contains(&c.id) && !in_use.contains(&c.id))
            .map(|c| c.id.clone())
            .collect();
        let mut learnt = false;
        for id in candidates {
            match self.ports.issuer.usage(&id).await {
                Usage::Untracked => return false,
                Usage::Forbidden { scope, .. } => {
                    *self.usage_unreadable.lock().expect("usage lock") = Some(scope);
                    return false;
                }
                u => {
                    if rules::in_use(&u) != Some(false) {
                        in_use.insert(id);
                        learnt = true;
                    }
                }
            }
        }
        learnt
    }

    fn tell_protected(&self, id: &str, by: &str) {
        self.warn(
            WarningKind::Protected,
            format!(
                "{} {id} is kept: the latest version of {by} names it (a copied version, or another target's); revoke it only once no configured secret names it",
                self.noun()
            ),
        );
    }

    fn warn_held(&self, held: usize) {
        self.warn(
            WarningKind::OverCapProtected,
            format!(
                "the target holds more than {} live {}s, but the latest versions of configured secrets name {held} of those that would have to go; they are kept, and the target stays above the cap",
                self.profile.cap,
                self.noun()
            ),
        );
    }

    fn past_deadline(&self) -> bool {
        self.ports.backoff.past_deadline()
    }

    /// Step 1.
    async fn observe(&self) -> Result<Observed> {
        let (issuer, store, name) = (self.ports.issuer, self.ports.store, self.spec.secret_name.as_str());
        let started = Instant::now();
        let list = async {
            let r = issuer.list().await;
            (r, Instant::now())
        };
        let ((listing, mut listed), read) = futures::join!(list, store.read_latest(name));
        let read = read.map_err(|e| e.context("reading the secret"))?;
        let mut listing = listing.map_err(|e| e.context(&format!("listing the {}s", self.noun())))?;
        let view = read.latest.as_ref().map(|s| SecretView::of(s, self.profile));
        // The credentials the latest version (and any tied with it) names: one missing from the
        // list may simply be newer than the list.
        let missing = read
            .latest_versions()
            .filter_map(|s| s.names(self.profile).0)
            .any(|id| !listing.credentials.iter().any(|c| c.id == id));
        if missing {
            listing = issuer.list().await.map_err(|e| e.context(&format!("listing the {}s again", self.noun())))?;
            listed = Instant::now();
        }

        let (named, unsettled, mentioned) =
            records(store, name, self.profile, read.latest.as_ref(), &read.tied, &listing.credentials).await;
        let settled = unsettled.is_none();
        if let Some(e) = unsettled {
            self.warn(
                WarningKind::VersionsUnreadable,
                format!(
                    "could not read the versions of the secret ({e}); {}s that only a version could prove this target's are left alone this run",
                    self.noun()
                ),
            );
        }
        let creds = rules::resolve(&listing.credentials, &named);
        let unordered = mentioned.difference(&named).cloned().collect();
        if self.profile.reports_unrecorded && settled && read.latest.is_some() {
            // (one a version names that this run cannot order against the latest is recorded,
            // though not yet evidence of whose it is: it is not reported)
            self.report_unrecorded(&listing.credentials, &mentioned).await;
        }

        // The listing was answered at most this long after the read was: ages at the read are
        // at least the listed ages minus this.
        let slack = Duration::try_from(listed.saturating_duration_since(started)).unwrap_or(Duration::MAX);
        #[allow(unused_mut)]
        let (mut creds_at, mut vault_at) = (listing.at.map(|at| at - slack), read.at);
        // The old defect, for the simulator to find: a missing `Date` fell back to our clock.
        #[cfg(feature = "sim-bugs")]
        if super::bugs::on(super::bugs::Bug::NoDateLocalClock) {
            let local = self.ports.clock.now();
            creds_at = creds_at.or(Some(local - slack));
            vault_at = vault_at.or(Some(local));
        }
        Ok(Observed { creds, creds_at, latest: read.latest, view, tied: read.tied, vault_at, named, unordered })
    }

    /// Credentials that only a record could make the target's and that no version of this
    /// secret records: said, never deleted (contract §9). One that a version of another
    /// configured target's secret records is that target's, and is not mentioned.
    async fn report_unrecorded(&self, listed: &[Credential], named: &BTreeSet<String>) {
        let mut unrecorded: Vec<&Credential> =
            listed.iter().filter(|c| c.ownership == Ownership::IfRecorded && !named.contains(&c.id)).collect();
        if unrecorded.is_empty() {
            return;
        }
        match self.ports.others.recorded().await {
            Ok(theirs) => unrecorded.retain(|c| !theirs.contains(&c.id)),
            Err(e) => {
                self.warn(
                    WarningKind::VersionsUnreadable,
                    format!(
                        "{} {}(s) that no version of this secret records ({}), but the secrets of the other targets that may record them could not be read ({e}); none of them is touched",
                        unrecorded.len(),
                        self.noun(),
                        unrecorded.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                );
                return;
            }
        }
        if unrecorded.is_empty() {
            return;
        }
        let list = unrecorded
            .iter()
            .map(|c| match c.created_at {
                Some(t) => format!("{} (created {})", c.id, rfc3339(t)),
                None => c.id.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.warn(
            WarningKind::Unrecorded,
            format!(
                "{} {}(s) that no version of this secret or of another configured target's records: {list}. pat-rotator never deletes them: one younger than an hour may be a rotation in flight; an older one was left by a run that stopped between create and write, or was made by someone else. If it is unused, remove it with `pat-rotator tokens --target {} --revoke ID`",
                unrecorded.len(),
                self.noun(),
                self.spec.target
            ),
        );
    }

    async fn rotate(&self) -> Outcome {
        let (spec, profile) = (self.spec, self.profile);
        let obs = match self.observe().await {
            Ok(o) => o,
            Err(e) => return Outcome::failed(&spec.target, None, e),
        };
        let (force, declined) = match self.req.force {
            Force::No => (false, false),
            Force::Cli => (true, false),
            Force::Provision { cooldown } => {
                let declined = obs.latest.is_some()
                    && rules::force_declined(
                        obs.latest.as_ref().and_then(|s| s.created),
                        obs.vault_at,
                        cooldown,
                        rules::ours(&obs.creds).count(),
                        profile.cap,
                    );
                (!declined, declined)
            }
        };
        let now = obs.creds_at.or(obs.vault_at).unwrap_or_else(|| self.ports.clock.now());
        let tied: Vec<SecretView> = obs.tied.iter().map(|s| SecretView::of(s, profile)).collect();
        let mut decision = rules::decide(obs.view.as_ref(), &tied, &obs.creds, spec.renew_before, now, force);
        // Contract §10: a near-expiry or expired event rotates within 30 days of the latest
        // version's `exp` as Key Vault states it, whatever `renew_before_days` says.
        if decision == Decision::Keep
            && let Some(window) = self.req.expiry_window
            && rules::expires_within(obs.latest.as_ref().and_then(|s| s.expires), obs.vault_at.unwrap_or(now), window)
        {
            decision = Decision::Rotate(Reason::Expiring);
        }
        let current = obs.current();

        // The outcome that describes the secret as it is (unchanged, or planned in a dry run).
        let as_is = |action, reason| Outcome {
            target: spec.target.clone(),
            action,
            reason: Some(reason),
            secret_id: obs.view.as_ref().map(|v| v.id.clone()),
            token_id: current.map(|c| c.id.clone()),
            expires_at: current.and_then(|c| c.expires_at).map(rfc3339),
            revoked_token_ids: Vec::new(),
            error: None,
            warnings: Vec::new(),
            failure: None,
            usage_unreadable: None,
        };

        let reason = match decision {
            Decision::Keep => {
                let reason = if declined { Reason::RecentlyRotated } else { Reason::Fresh };
                if declined {
                    info!(target_name = %spec.target, reason = reason.as_str(),
                        "forced request declined: the latest version is inside the force cooldown, or the target is one below its cap");
                }
                let mut out = as_is(Action::Unchanged, reason);
                if !self.req.dry_run {
                    let check = UseCheck { obs: &obs, successor: None, vault_now: obs.vault_at };
                    out.revoked_token_ids = self
                        .revoke_planned(&obs.own_protected(profile), obs.recount(profile.cap), Some(check), |p, u| {
                            let (proven, capped) = obs.sweep(profile, spec.grace, 0, profile.cap, p, u);
                            Plan { proven, why: "superseded", capped }
                        })
                        .await;
                }
                return out;
            }
            Decision::Rotate(reason) => reason,
        };

        // Contract §10: who wrote the latest version decides whether this run may replace it,
        // before anything is created (a dry run reports the same).
        let me = self.ports.store.writer().await;
        match self.other_writer(&obs, me.as_deref()) {
            Guard::Proceed => {}
            Guard::Fail(e) => return Outcome::failed(&spec.target, Some(reason), e),
            Guard::Leave => return as_is(Action::Unchanged, reason),
        }

        if reason == Reason::RevokedInWorkspace
            && let Some(change) = self.owner_change(&obs)
        {
            self.warn(WarningKind::OwnerChanged, change);
        }

        if self.req.dry_run {
            let (proven, capped) =
                obs.sweep(profile, spec.grace, 1, profile.cap, &obs.own_protected(profile), &InUse::default());
            info!(target_name = %spec.target, reason = reason.as_str(), would_revoke = proven.len() + capped.revoke.len(), "dry run: rotation planned");
            return as_is(Action::Planned, reason);
        }

        // Nothing is revoked before the new version is written: if the write fails (a
        // soft-deleted name, a missing role), every credential that worked before still works.
        // A full issuer is handled where it reports it, in `create_verified`.
        let mut revoked = Vec::new();
        let failed = |revoked: Vec<String>, e: Error| {
            let mut out = Outcome::failed(&spec.target, Some(reason), e);
            out.revoked_token_ids = revoked;
            out
        };
        let superseded = current.map(|c| c.id.clone());
        let based_on = Basis { id: obs.latest.as_ref().map(|s| s.id.as_str()), read_at: obs.vault_at };

        let mut stale = 0;
        let (stored, new) = loop {
            let (new, verified) = match self.create_verified(&obs).await {
                Ok((new, verified, swept)) => {
                    revoked.extend(swept);
                    (new, verified)
                }
                Err(e) => return failed(revoked, e),
            };
            let write = self.secret_write(&new, superseded.as_deref(), me.as_deref());
            match self.write_recorded(&write, &new.info, &verified, based_on).await {
                Ok(Written::Recorded(stored)) => break (stored, new.info),
                Ok(Written::Stale) => {
                    stale += 1;
                    if stale >= MAX_STALE_CREATES || self.past_deadline() {
                        return failed(
                            revoked,
                            Error::new(
                                Code::Timeout,
                                format!(
                                    "{stale} new {}s grew older than {} minutes before they could be written; each was deleted, the secret is unchanged",
                                    self.noun(),
                                    rules::MAX_UNWRITTEN_AGE.whole_minutes()
                                ),
                            ),
                        );
                    }
                }
                Ok(Written::Superseded(latest, kept)) => {
                    if self.req.revoke_superseded {
                        self.warn(
                            WarningKind::RevokeSuperseded,
                            format!(
                                "--revoke-superseded: another run wrote version {} meanwhile, so nothing was revoked; run again",
                                latest.version()
                            ),
                        );
                    }
                    // The cap still holds: this run's listing proves what is over it.
                    if profile.revokes_over_cap && obs.latest.is_some() {
                        let own: BTreeSet<String> =
                            latest.protects(profile).into_iter().chain(obs.unordered.iter().cloned()).collect();
                        let going = revoked.clone();
                        let capped = self
                            .revoke_planned(&own, obs.recount(profile.cap), None, |p, _| Plan {
                                proven: Vec::new(),
                                why: "over_cap",
                                capped: rules::over_cap(&obs.creds, p, &going, kept as usize, profile.cap),
                            })
                            .await;
                        revoked.extend(capped);
                    }
                    let mut out = self.superseded_by(&latest);
                    out.revoked_token_ids = revoked;
                    return out;
                }
                Err(e) => return failed(revoked, e),
            }
        };
        info!(target_name = %spec.target, reason = reason.as_str(), token = %short_id(&new.id), "secret written");

        // What the new version names is what consumers read from now on.
        let own_now: BTreeSet<String> = stored.protects(profile).into_iter().chain([new.id.clone()]).collect();
        if self.req.revoke_superseded {
            // Incident response: every other credential of the target goes now, grace or not —
            // but never one a latest version names (contract §7.4(a)).
            let others: Vec<String> = rules::ours(&obs.creds)
                .map(|c| c.id.clone())
                .filter(|id| *id != new.id && !revoked.contains(id))
                .collect();
            let gone = self
                .revoke_planned(&own_now, obs.recount(profile.cap), None, |p, _| Plan {
                    proven: others.iter().filter(|id| !p.contains(*id)).cloned().collect(),
                    why: "revoke_superseded",
                    capped: Capped::default(),
                })
                .await;
            revoked.extend(gone);
        } else if obs.latest.is_some() || absent_is_proof() {
            // What the first read proved stays proven (no later version can name a credential
            // that was already too old to be written); the new version proves the superseded
            // credential revocable once the grace has passed since it was written, i.e. at once
            // with grace 0. A read that said "absent" proves nothing: nothing is revoked. (The
            // superseded credential is the one the read version names, so it is recorded.)
            let named = obs.named_ids();
            let own_then = obs.own_protected(profile);
            let own_now: BTreeSet<String> = own_now.union(&obs.unordered).cloned().collect();
            let going_before = revoked.clone();
            let check = UseCheck {
                obs: &obs,
                successor: superseded.as_deref().map(|id| (id, stored.created)),
                vault_now: stored.created.or(obs.vault_at),
            };
            let gone = self
                .revoke_planned(&own_now, obs.recount(profile.cap), Some(check), |p, u| {
                    let then: BTreeSet<String> = p.union(&own_then).cloned().collect();
                    let after = Evidence {
                        creds: &obs.creds,
                        creds_at: obs.creds_at,
                        latest: Latest::Found { credential_id: Some(new.id.as_str()), created: stored.created },
                        vault_at: stored.created.or(obs.vault_at),
                        recorded: &named,
                        protected: p,
                    };
                    let mut proven = rules::revocable(&obs.evidence(&named, &then), spec.grace);
                    for id in rules::revocable(&after, spec.grace) {
                        if !proven.contains(&id) {
                            proven.push(id);
                        }
                    }
                    proven.retain(|id| !going_before.contains(id) && !u.kept.contains(id));
                    let capped = if profile.revokes_over_cap {
                        let going: Vec<String> = proven.iter().chain(&going_before).cloned().collect();
                        rules::over_cap_unused_first(&obs.creds, p, &going, &u.in_use, 1, profile.cap)
                    } else {
                        Capped::default()
                    };
                    Plan { proven, why: "superseded", capped }
                })
                .await;
            revoked.extend(gone);
        }

        Outcome {
            target: spec.target.clone(),
            action: reason.action(),
            reason: Some(reason),
            secret_id: Some(stored.id),
            token_id: Some(new.id.clone()),
            expires_at: new.expires_at.map(rfc3339),
            revoked_token_ids: revoked,
            error: None,
            warnings: Vec::new(),
            failure: None,
            usage_unreadable: None,
        }
    }

    /// Why the latest version's credential may be invisible although nobody revoked it: its
    /// owner changed (contract §8). A change of `client_id` is known from the owner's tag
    /// ([`Owner::tag`]). A change of the service's own identity (system- to
    /// user-assigned, say) leaves no tag; when the identity holds no credential of this target
    /// at all, that is the likely cause and is said, as a likelihood.
    fn owner_change(&self, obs: &Observed) -> Option<String> {
        let owner: &Owner = self.spec.owner.as_ref()?;
        let view = obs.view.as_ref().filter(|v| v.managed)?;
        let tag = obs.latest.as_ref()?.tags.get(owner.tag);
        let old = tag.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty());
        let id = view.credential_id.as_deref().map(short_id).unwrap_or_else(|| "?".into());
        let expiry = view.expires_at.map(rfc3339).unwrap_or_else(|| "unknown expiry".into());
        let noun = self.noun();
        if old != owner.client_id {
            return Some(format!(
                "owner changed: the secret's {noun} {id} belongs to {} (tag {}), this target's {noun}s now belong to {}; \
                 the new owner cannot see or revoke it, so a new {noun} is provisioned (reported as revoked_in_workspace). \
                 Revoke the old {noun} as its owner, or let it expire ({expiry})",
                Owner::describe(&old),
                owner.tag,
                Owner::describe(&owner.client_id),
            ));
        }
        rules::ours(&obs.creds).next().is_none().then(|| {
            format!(
                "{} holds no {noun} of this target at all, so the secret's {noun} {id} was either revoked out of band or \
                 belongs to another identity: if the identity changed (e.g. system- to user-assigned), the old one's {noun}s \
                 cannot be seen or revoked by this one; revoke them as the old identity, or let them expire ({expiry})",
                Owner::describe(&owner.client_id)
            )
        })
    }

    /// Contract §10: what this run does when the latest managed version was written by another
    /// identity than `me` (the one it writes as), by the request's [`OtherWriter`] policy.
    fn other_writer(&self, obs: &Observed, me: Option<&str>) -> Guard {
        let views = obs.latest_views(self.profile);
        let latest: Vec<&SecretView> = views.iter().collect();
        let Some(other) = rules::written_by_another(&latest, me) else { return Guard::Proceed };
        let noun = self.noun();
        let version = obs.latest.as_ref().map(|s| s.version()).unwrap_or_default();
        let me = me.unwrap_or("unknown (its object id could not be read)");
        // A PAT of the service's own identity (no `client_id`) belongs to whoever creates it; an
        // app's PAT or a principal's OAuth secret does not depend on the caller.
        let callers_own = self.spec.owner.as_ref().is_some_and(|o| o.client_id.is_none());
        let code = Code::RotatedByAnotherIdentity;
        if self.req.revoke_superseded {
            return Guard::Fail(Error::new(
                code,
                format!(
                    "--revoke-superseded acts on the {noun}s of the identity it runs as ({me}), but the latest version {version} was written by identity {other}: that identity's {noun}s are not in this identity's list and could not be revoked, so nothing was created or revoked (--take-ownership does not change this). Run it as the identity that wrote the version, the service's (docs/RUNBOOK.md, \"A token leaked\")"
                ),
            ));
        }
        let consequence = if callers_own {
            format!(
                "; the new {noun} would belong to the caller ({me}), not to the service, and the service could not revoke it"
            )
        } else {
            String::new()
        };
        match self.req.other_writer {
            OtherWriter::Overwrite => Guard::Proceed,
            OtherWriter::Refuse => Guard::Fail(Error::new(
                code,
                format!(
                    "the latest version {version} of the secret was written by identity {other}, and this run is identity {me}: a new version would replace that identity's {noun}{consequence}. Nothing was created. Run as the identity that wrote it, the service's (docs/RUNBOOK.md, \"Running the CLI as the service's identity\"), or pass --take-ownership to write anyway"
                ),
            )),
            OtherWriter::TakeOwnership => {
                let cleanup = if callers_own {
                    format!(
                        "; the new {noun} belongs to this identity ({me}): when the service next replaces it, revoke it as this identity (pat-rotator tokens --target {} --revoke ID)",
                        self.spec.target
                    )
                } else {
                    String::new()
                };
                self.warn(
                    WarningKind::TakeOwnership,
                    format!("--take-ownership: writing over version {version}, which identity {other} wrote{cleanup}"),
                );
                Guard::Proceed
            }
            OtherWriter::Leave => {
                self.warn(WarningKind::RotatedByAnotherIdentity, format!(
                    "rotated_by_another_identity: the latest version {version} was written by identity {other}, not by this identity ({me}); the target is left to RotatePat and ProvisionPat"
                ));
                Guard::Leave
            }
        }
    }

    /// The new version of contract §6 / §9, and the writer's tags of §10.
    fn secret_write(&self, new: &NewCredential, superseded: Option<&str>, me: Option<&str>) -> SecretWrite {
        let p = self.profile;
        let mut t: BTreeMap<String, String> = self.spec.tags.clone();
        t.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
        t.insert(tags::TARGET.to_string(), self.spec.target.clone());
        t.insert(p.id_tag.to_string(), new.info.id.clone());
        if let Some(exp_tag) = p.expires_tag {
            t.insert(exp_tag.to_string(), new.info.expires_at.map(rfc3339).unwrap_or_else(|| "never".to_string()));
        }
        t.insert(tags::ROTATED_AT.to_string(), rfc3339(self.ports.clock.now()));
        t.insert(tags::ROTATED_BY.to_string(), me.unwrap_or(tags::UNKNOWN_WRITER).to_ascii_lowercase());
        t.insert(tags::ROTATED_VIA.to_string(), self.req.via.to_string());
        if let Some(prev) = superseded {
            t.insert(p.previous_tag.to_string(), prev.to_string());
        }
        SecretWrite {
            name: self.spec.secret_name.clone(),
            value: new.value.clone(),
            content_type: p.content_type.to_string(),
            expires: new.info.expires_at,
            tags: t,
        }
    }

    /// The outcome when another run wrote a newer version while this one was writing.
    fn superseded_by(&self, latest: &StoredSecret) -> Outcome {
        let view = SecretView::of(latest, self.profile);
        if !view.managed {
            return Outcome::failed(
                &self.spec.target,
                None,
                self.ports.store.error(format!(
                    "a version that pat-rotator did not write ({}) appeared while this run was writing; run again",
                    latest.version()
                )),
            );
        }
        info!(target_name = %self.spec.target, secret_version = latest.version(), "a concurrent rotation wrote a newer version; the target keeps that one");
        Outcome {
            target: self.spec.target.clone(),
            action: Action::Unchanged,
            reason: Some(Reason::Fresh),
            secret_id: Some(latest.id.clone()),
            token_id: view.credential_id.clone(),
            expires_at: view.expires_at.map(rfc3339),
            revoked_token_ids: Vec::new(),
            error: None,
            warnings: Vec::new(),
            failure: None,
            usage_unreadable: None,
        }
    }

    /// Steps 4–5: a new credential that is proven to work. Also returns the ids it had to
    /// sweep to make room.
    async fn create_verified(&self, obs: &Observed) -> Result<(NewCredential, Verified, Vec<String>)> {
        let (issuer, clock, spec) = (self.ports.issuer, self.ports.clock, self.spec);
        let mut swept = Vec::new();
        let mut room_retry_used = false;
        let mut ambiguous = 0;
        let (new, sent, sent_wall) = loop {
            let req =
                CreateRequest { attempt: clock.unique_id(), lifetime_seconds: spec.lifetime_days as u64 * 86_400 };
            let (sent, sent_wall) = (Instant::now(), clock.now());
            match issuer.create(&req).await {
                Ok(new) => {
                    // From here on every upstream text the run passes on is scrubbed of it.
                    self.held.lock().expect("held lock").push(new.value.clone());
                    break (new, sent, sent_wall);
                }
                Err(CreateError::Refused(Refusal::Full, e)) => {
                    if room_retry_used {
                        return Err(e);
                    }
                    room_retry_used = true;
                    swept.extend(self.make_room(e).await?);
                }
                Err(CreateError::Refused(_, e)) => return Err(e),
                Err(CreateError::Ambiguous(e)) => {
                    warn!(target_name = %spec.target, error = %e, "{} create outcome unknown", self.noun());
                    if !self.profile.labels_attempts {
                        return Err(self.unidentifiable_create(obs, &swept, e).await);
                    }
                    let cleaned = self.clean_up_attempt(&req.attempt).await;
                    ambiguous += 1;
                    // Trying again is safe only once the issuer is known to hold nothing of this
                    // attempt; and it is bounded, like every retry.
                    if !cleaned || ambiguous >= MAX_AMBIGUOUS_CREATES || self.past_deadline() {
                        return Err(e.context(&format!(
                            "creating the {} (any {} this attempt created is deleted, or swept as an orphan within an hour)",
                            self.noun(),
                            self.noun()
                        )));
                    }
                    tokio::time::sleep(e.retry_after.unwrap_or(AMBIGUOUS_PAUSE * ambiguous)).await;
                }
            }
        };

        let requested = Duration::days(spec.lifetime_days as i64);
        if let (Some(exp), Some(created)) = (new.info.expires_at, new.info.created_at) {
            let granted = exp - created;
            if granted < requested - Duration::days(1) {
                self.warn(
                    WarningKind::LifetimeShortened,
                    format!(
                        "the issuer granted a lifetime of {} days, shorter than the {} requested",
                        granted.whole_days(),
                        spec.lifetime_days
                    ),
                );
            }
        }

        // The local clocks are read before the verification is sent: its answer may come back
        // minutes after the issuer's `Date` (a slow answer, a suspended laptop), and that time
        // counts towards the credential's age too.
        let (at, wall) = (Instant::now(), clock.now());
        match issuer.verify(&new.value).await {
            Ok(issuer_at) => {
                // The old defect, for the simulator to find: the clocks read after the answer.
                #[cfg(feature = "sim-bugs")]
                let (at, wall) = if super::bugs::on(super::bugs::Bug::AgeFromTheAnswer) {
                    (Instant::now(), clock.now())
                } else {
                    (at, wall)
                };
                let verified = Verified { issuer_at, at, wall, sent, sent_wall };
                Ok((new, verified, swept))
            }
            Err(mut e) => {
                // An upstream answer may quote what it was sent; the issuer scrubbed it before
                // shortening it, and the value never goes further.
                e.message = self.clean(&e.message);
                warn!(target_name = %spec.target, token = %short_id(&new.info.id), "new {} failed verification; deleting it", self.noun());
                let note = match issuer.revoke(&new.info.id).await {
                    Ok(()) => "it was deleted".to_string(),
                    Err(de) => format!(
                        "deleting it failed too ({}); {}",
                        self.clean(&de.to_string()),
                        self.left_behind(&new.info.id)
                    ),
                };
                Err(e.context(&format!("verifying the new {} {} ({note})", self.noun(), short_id(&new.info.id))))
            }
        }
    }

    /// The issuer is full: read everything again and revoke what that proves, plus what is over
    /// the cap minus one (room for the new credential). Returns what went; fails when nothing
    /// could.
    async fn make_room(&self, refusal: Error) -> Result<Vec<String>> {
        let noun = self.noun();
        let fresh = self.observe().await.map_err(|re| {
            refusal.clone().context(&format!(
                "nothing was revoked to make room, because the {noun}s and the secret could not be read again ({re})"
            ))
        })?;
        if fresh.latest.is_none() && !absent_is_proof() {
            return Err(refusal.context(&format!(
                "nothing was revoked to make room: the secret reads as absent (deleted, soft-deleted or being recovered), which proves nothing about the {noun}s consumers hold"
            )));
        }
        let (profile, grace) = (self.profile, self.spec.grace);
        let check = UseCheck { obs: &fresh, successor: None, vault_now: fresh.vault_at };
        let done = self
            .revoke_planned(
                &fresh.own_protected(profile),
                fresh.recount(profile.cap.saturating_sub(1)),
                Some(check),
                |p, u| {
                    let (proven, capped) = fresh.sweep(profile, grace, 0, profile.cap.saturating_sub(1), p, u);
                    Plan { proven, why: "room", capped }
                },
            )
            .await;
        if !done.is_empty() {
            return Ok(done);
        }
        let ours = rules::ours(&fresh.creds).count();
        let others: Vec<&str> =
            fresh.creds.iter().filter(|c| c.ownership != Ownership::Ours).map(|c| c.id.as_str()).collect();
        let untouchable = if self.profile.reports_unrecorded && !others.is_empty() {
            format!("; not this target's, so never deleted by a rotation: {}", others.join(", "))
        } else {
            String::new()
        };
        // The issuer's other facts about the refusal (for the HTTP layer) travel unchanged.
        let message = format!(
            "{} ({} listed, {ours} of them this target's, none provably revocable yet{untouchable}); delete unused {noun}s, or wait for the grace of the superseded ones",
            refusal.message,
            fresh.creds.len()
        );
        // The issuer's refusal keeps its code (its quota's) and its other facts.
        Err(Error { message, ..refusal })
    }

    /// After an ambiguous create: find the credential carrying `attempt` and delete it. True
    /// when the state is known to be clean (no such credential, or it was deleted).
    async fn clean_up_attempt(&self, attempt: &str) -> bool {
        let (issuer, target) = (self.ports.issuer, &self.spec.target);
        match issuer.list().await {
            Ok(list) => match list.credentials.iter().find(|c| c.attempt.as_deref() == Some(attempt)) {
                None => true,
                Some(c) => match issuer.revoke(&c.id).await {
                    Ok(()) => {
                        info!(target_name = %target, token = %short_id(&c.id), "deleted the {} of the ambiguous create (its value was lost)", self.noun());
                        true
                    }
                    Err(e) => {
                        self.warn(
                            WarningKind::LeftBehind,
                            format!(
                                "could not delete the {} {} of an ambiguous create ({e}); {}",
                                self.noun(),
                                short_id(&c.id),
                                self.left_behind(&c.id)
                            ),
                        );
                        false
                    }
                },
            },
            Err(e) => {
                self.warn(
                    WarningKind::LeftBehind,
                    format!(
                        "could not list the {}s after an ambiguous create ({e}); a {} the attempt may have created is revoked by a later run once it is {} minutes old",
                        self.noun(),
                        self.noun(),
                        rules::ORPHAN_WINDOW.whole_minutes()
                    ),
                );
                false
            }
        }
    }

    /// After an ambiguous create of a credential that carries no label: never retried (a lost
    /// one could not be told from someone else's); the error names what appeared meanwhile.
    async fn unidentifiable_create(&self, obs: &Observed, swept: &[String], e: Error) -> Error {
        let noun = self.noun();
        let known: BTreeSet<&str> =
            obs.creds.iter().map(|c| c.id.as_str()).chain(swept.iter().map(String::as_str)).collect();
        let appeared = match self.ports.issuer.list().await {
            Ok(list) => {
                let new: Vec<String> =
                    list.credentials.iter().filter(|c| !known.contains(c.id.as_str())).map(|c| c.id.clone()).collect();
                if new.is_empty() {
                    format!("no new {noun} appeared")
                } else {
                    format!(
                        "{noun}s that appeared meanwhile: {}; pat-rotator never deletes them on a guess: once no run records them, remove them with `pat-rotator tokens --target {} --revoke ID`",
                        new.join(", "),
                        self.spec.target
                    )
                }
            }
            Err(le) => format!(
                "listing them afterwards failed too ({le}); `pat-rotator tokens --target {}` shows any {noun} no version records",
                self.spec.target
            ),
        };
        self.warn(
            WarningKind::CreateOutcomeUnknown,
            format!("the outcome of creating a new {noun} is unknown; it is not retried: {appeared}"),
        );
        e.context(&format!(
            "creating the {noun}: the outcome is unknown and a lost {noun} cannot be identified, so it was not retried ({appeared})"
        ))
    }

    /// Step 6: write while the credential is young enough; after a failed attempt, find out
    /// from the vault whether it landed or someone else wrote, before deleting the credential or
    /// trying again. Once an attempt's outcome is unknown, the credential is never deleted.
    async fn write_recorded(
        &self,
        write: &SecretWrite,
        new: &Credential,
        verified: &Verified,
        based_on: Basis<'_>,
    ) -> Result<Written> {
        let (issuer, store, target, noun) = (self.ports.issuer, self.ports.store, &self.spec.target, self.noun());
        let mut attempt = 1;
        // An earlier attempt that may still land.
        let mut in_flight: Option<Error> = None;
        loop {
            let age = verified.age(new, self.ports.clock);
            if age > rules::MAX_UNWRITTEN_AGE {
                if let Some(e) = in_flight {
                    return Err(e.context(&format!(
                        "writing the secret: the new {noun} {} grew too old to be written again, and an earlier write's outcome is unknown, so it is kept: if that write lands, a later run finds it recorded; otherwise {}",
                        short_id(&new.id),
                        self.left_behind(&new.id)
                    )));
                }
                self.warn(
                    WarningKind::Stale,
                    format!(
                        "the new {noun} {} is {} minutes old, too old to be written (a concurrent run may already treat it as an orphan); deleting it and creating another",
                        short_id(&new.id),
                        age.whole_minutes()
                    ),
                );
                if let Err(e) = issuer.revoke(&new.id).await {
                    self.warn(
                        WarningKind::LeftBehind,
                        format!(
                            "could not delete the stale {noun} {} ({e}); {}",
                            short_id(&new.id),
                            self.left_behind(&new.id)
                        ),
                    );
                }
                return Ok(Written::Stale);
            }
            let (err, unknown) = match store.write(write).await {
                Ok(stored) => return Ok(Written::Recorded(stored)),
                // A 408 or 5xx reaches here as `Unknown` (contract §7.3). A transient refusal
                // (throttled) was not stored; should a store report a stored write that way, the
                // versions list says so, and then the outcome is as unknown as a timeout's.
                Err(WriteError::Failed(e)) if e.transient => {
                    let landed = store.versions(&self.spec.secret_name).await.map(|versions| {
                        versions.iter().any(|v| v.names(self.profile).0.as_deref() == Some(new.id.as_str()))
                    });
                    (e, !matches!(landed, Ok(false)))
                }
                Err(WriteError::Failed(e)) => (e, false),
                // The old defect, for the simulator to find: a timed-out write was taken as one
                // that did not land.
                #[cfg(feature = "sim-bugs")]
                Err(WriteError::Unknown(e)) if super::bugs::on(super::bugs::Bug::TimeoutIsFailure) => (e, false),
                Err(WriteError::Unknown(e)) => (e, true),
            };
            if unknown {
                in_flight = Some(err.clone());
            }
            let kept = |why: &str| {
                format!(
                    "the new {noun} {} is kept: {why}; if that write lands, a later run finds it recorded; otherwise {}",
                    short_id(&new.id),
                    self.left_behind(&new.id)
                )
            };
            // A read-back that says "absent" proves nothing (contract §7.4: Key Vault answers
            // 404 for a soft-deleted secret, briefly during recovery): it may hide a newer
            // version another run wrote, which a retry would then bury under this run's
            // credential while that run revokes it (simulator seed 10906). While a write may
            // still land, the versions list decides: any version there, and no retry follows.
            // A read-back that tells nothing keeps the credential and ends the run.
            let read = match store.read_latest(&self.spec.secret_name).await {
                Ok(read) if read.latest.is_none() && in_flight.is_some() => {
                    match store.versions(&self.spec.secret_name).await {
                        Ok(v) if v.is_empty() => Ok(read),
                        Ok(_) => Err("the outcome of a write is unknown, and reading the secret back said it is absent while its versions list does not".to_string()),
                        Err(e) => Err(format!("the outcome of a write is unknown, reading the secret back said it is absent, and its versions list could not be read ({e})")),
                    }
                }
                Ok(read) => Ok(read),
                Err(re) => Err(format!("whether the new version landed is unknown (reading it back failed: {re})")),
            };
            let read = match read {
                Ok(read) => read,
                Err(why) => {
                    let note = kept(&why);
                    self.warn(WarningKind::LeftBehind, note.clone());
                    return Err(err.context(&format!("writing the secret ({note})")));
                }
            };
            match read.latest {
                Some(s) if s.names(self.profile).0.as_deref() == Some(new.id.as_str()) => {
                    warn!(target_name = %target, error = %self.clean(&err.to_string()), "the secret write reported an error but the new version is there");
                    return Ok(Written::Recorded(s));
                }
                Some(s) if based_on.superseded_by(&s) => {
                    let mut still_live = false;
                    if in_flight.is_some() {
                        still_live = true;
                        self.warn(
                            WarningKind::LeftBehind,
                            kept("another run wrote a newer version, and this run's write may still land"),
                        );
                    } else if let Err(de) = issuer.revoke(&new.id).await {
                        still_live = true;
                        self.warn(
                            WarningKind::LeftBehind,
                            format!(
                                "could not delete this run's {noun} {} ({de}); {}",
                                short_id(&new.id),
                                self.left_behind(&new.id)
                            ),
                        );
                    }
                    return Ok(Written::Superseded(s, still_live));
                }
                _ => {
                    if (err.transient || unknown)
                        && !self.past_deadline()
                        && let Some(wait) = self.ports.backoff.next_wait(attempt, &err)
                    {
                        tracing::debug!(target_name = %target, attempt, error = %self.clean(&err.to_string()), "the write did not land (yet); trying again");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let attempts = if attempt > 1 { format!(" after {attempt} attempts") } else { String::new() };
                    let note = if in_flight.is_some() {
                        kept(
                            "the outcome of a write is unknown (no answer, or an answer a gateway may give for a write it applies later), so the write may still land",
                        )
                    } else {
                        match issuer.revoke(&new.id).await {
                            Ok(()) => format!(
                                "Key Vault refused the write, so the new {noun} {} was deleted; the secret and its {noun} are unchanged",
                                short_id(&new.id)
                            ),
                            Err(de) => format!(
                                "deleting the new {noun} {} failed too ({de}); {}",
                                short_id(&new.id),
                                self.left_behind(&new.id)
                            ),
                        }
                    };
                    warn!(target_name = %target, error = %self.clean(&err.to_string()), "secret write failed; {}", self.clean(&note));
                    return Err(err.context(&format!("writing the secret{attempts} ({note})")));
                }
            }
        }
    }

    /// What is over the cap right before revoking it. `planned` was judged on the run's first
    /// listing, which may be minutes old: a concurrent run may have deleted credentials it shows
    /// since (its own unwritten one, an ambiguous create it cleaned up), and counting those
    /// would revoke a credential inside its grace that the cap does not require. So a planned
    /// cap revocation lists again and counts what is live now (every live credential of the
    /// target is in that listing, this run's new one too), never one in `protected`, not those
    /// in `going`; a failed listing revokes nothing for the cap this run.
    async fn recount_cap(
        &self,
        planned: Vec<String>,
        recount: Recount<'_>,
        protected: &BTreeSet<String>,
        going: &[String],
        in_use: &BTreeSet<String>,
    ) -> Vec<String> {
        if planned.is_empty() {
            return planned;
        }
        // The old defect, for the simulator to find: the first listing was trusted.
        #[cfg(feature = "sim-bugs")]
        if super::bugs::on(super::bugs::Bug::CapCountsTheGone) {
            return planned;
        }
        match self.ports.issuer.list().await {
            Ok(now) => {
                let creds = rules::resolve(&now.credentials, recount.named);
                rules::over_cap_unused_first(&creds, protected, going, in_use, 0, recount.limit).revoke
            }
            Err(e) => {
                self.warn(
                    WarningKind::CapUncounted,
                    format!(
                        "could not list the {}s again to count them against the cap ({e}); nothing is revoked for the cap this run",
                        self.noun()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Revokes `ids`, a few at a time; returns those that are gone. Failures are logged, not
    /// fatal: the next run sweeps again. Each revocation first looks at the other configured
    /// secrets once more (a read more than ten minutes old is read again, contract §7.4(a)).
    async fn revoke_all(&self, ids: &[String], why: &str) -> Vec<String> {
        if ids.is_empty() {
            return Vec::new();
        }
        let (issuer, target) = (self.ports.issuer, &self.spec.target);
        match why {
            "over_cap" => self.warn(
                WarningKind::OverCap,
                format!(
                    "the target holds more than {} live {}s; revoking the oldest ({}), which may still be inside their grace",
                    self.profile.cap,
                    self.noun(),
                    ids.join(", ")
                ),
            ),
            "revoke_superseded" => {
                for id in ids {
                    self.warn(
                        WarningKind::RevokeSuperseded,
                        format!(
                            "--revoke-superseded: revoking {} {id} at once, inside its grace; a consumer still holding it must read the vault again",
                            self.noun()
                        ),
                    );
                }
            }
            _ => {}
        }
        let results: Vec<(String, Option<Result<()>>)> = futures::stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let Some(named) = self.others_named().await else { return (id, None) };
                if let Some(by) = named.get(&id) {
                    self.tell_protected(&id, by);
                    return (id, None);
                }
                let r = issuer.revoke(&id).await;
                (id, Some(r))
            })
            .buffered(REVOKE_PARALLELISM)
            .collect()
            .await;
        let mut done = Vec::new();
        for (id, r) in results {
            match r {
                None => {}
                Some(Ok(())) => {
                    info!(target_name = %target, token = %short_id(&id), why, "revoked");
                    done.push(id);
                }
                Some(Err(e)) => {
                    warn!(target_name = %target, token = %short_id(&id), why, error = %self.clean(&e.to_string()), "revocation failed; will retry next run")
                }
            }
        }
        done
    }
}
