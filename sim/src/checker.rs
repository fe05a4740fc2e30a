//! The oracle: the invariants of sim/README.md, checked after every effect.
//!
//! The checker reads the world, never the core: whose a credential is comes from its own
//! reading of contract §6/§9 (not `pat::ownership`, so a defect there shows), what a consumer
//! relies on comes from the versions the vault holds and the moments they were superseded.
//!
//! 1. A credential that a version of any secret names (by value: what a consumer reading it
//!    holds) is not revoked by a rotation while that version is the latest, or was superseded
//!    less than the secret's grace ago (the successor's `created`, the vault's clock).
//! 2. The vault never names a dead credential: a version that lands names a live one, a
//!    consumer never reads a dead one, and after a successful (non-dry) run the latest version
//!    of its secret names a live one.
//! 3. After a successful run whose reads and revocations all succeeded, the target holds at
//!    most 6 live PATs when no other run of the same target and secret overlapped it, and at
//!    most 6 + k when k did (each may hold one credential created after this run listed; the
//!    contract's "7 while two runs race"); an OAuth principal at most its five.
//! 4. After the quiet phase, no credential of a configured target is live but the one its
//!    latest version names (checked in [`crate::sim`]'s quiet phase).
//! 5. A rotation revokes only the target's credentials by §6/§9, or one it created itself.
//!
//! The exceptions of contract §7.4 are counted, not reported, when they break a consumer's
//! grace: a credential revoked out of band (someone, or the issuer's inactivity rule), by
//! `tokens --revoke`, by a `--revoke-superseded` run after its write, or for the cap — the last
//! only when the core announced that credential as over the cap and the run's listing held at
//! least `cap` credentials of the target (so the claim is checked, not trusted).

use std::collections::{BTreeMap, BTreeSet};

use pat_rotator::rotation::Outcome;
use time::Duration;

use crate::log::at;
use crate::scenario::Kind;
use crate::world::{Cred, SecretState, SpecInfo, Version, World};

/// An exception of contract §7.4 (and out-of-band revocation), counted when it excused what
/// would otherwise have broken an invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exception {
    OutOfBand,
    Inactivity,
    TokensRevoke,
    Cap,
    RevokeSuperseded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's number; 0: a secret leaked.
    pub invariant: u8,
    pub at: Duration,
    pub text: String,
}

/// How a credential stands, for invariant 2.
enum Fate {
    Alive,
    /// Expired, or (never) died without a killer: no revocation to judge.
    Expired,
    Excused(Exception),
    /// Revoked by a run while no consumer relied on it.
    Harmless {
        by: u32,
        at: Duration,
    },
    /// Revoked by a run that broke invariant 1 (already reported).
    Broke,
}

#[derive(Debug, Default)]
pub struct Checker {
    pub violations: Vec<Violation>,
    pub exceptions: BTreeMap<Exception, u32>,
    /// What the contract allows but a reader should know (sim/README.md, "Findings").
    pub observations: BTreeMap<&'static str, u32>,
    /// Credentials a violation already names (later symptoms of the same one are not repeated).
    reported: BTreeSet<String>,
}

fn trimmed<'a>(v: &'a Version, tag: &str) -> Option<&'a str> {
    v.tags.get(tag).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl World {
    fn violate(&mut self, invariant: u8, cred: Option<&str>, text: String) {
        if let Some(c) = cred
            && !self.checker.reported.insert(c.to_string())
        {
            return;
        }
        let now = self.now();
        self.note("CHECKER", |_| format!("VIOLATION of invariant {invariant}: {text}"));
        self.checker.violations.push(Violation { invariant, at: now, text });
    }

    fn count(&mut self, e: Exception, what: impl FnOnce(&World) -> String) {
        *self.checker.exceptions.entry(e).or_default() += 1;
        self.note("checker", |w| format!("exception {e:?}: {}", what(w)));
    }

    /// Whether a version of `spec`'s secret records credential `id`.
    pub fn recorded(&self, spec: &SpecInfo, id: &str) -> bool {
        let p = self.profile();
        let (host, name) = spec.secret();
        self.secret(&host, &name).is_some_and(|s| {
            s.versions.iter().any(|v| trimmed(v, p.id_tag) == Some(id) || trimmed(v, p.previous_tag) == Some(id))
        })
    }

    /// Whether `c` is `spec`'s by contract §6 (PATs: the comment names the target and this
    /// secret's key; a three-segment comment of the target only while a version of this secret
    /// records it) or §9 (OAuth secrets: only while a version records it).
    pub fn is_targets(&self, spec: &SpecInfo, c: &Cred) -> bool {
        match self.kind {
            Kind::Pat => {
                let Some(rest) = c.comment.as_deref().and_then(|c| c.strip_prefix("pat-rotator/")) else {
                    return false;
                };
                match rest.split('/').collect::<Vec<_>>().as_slice() {
                    [t, k, a] => *t == spec.spec.target && *k == spec.key && !a.is_empty(),
                    [t, a] => *t == spec.spec.target && !a.is_empty() && self.recorded(spec, &c.id),
                    _ => false,
                }
            }
            Kind::OAuth => self.recorded(spec, &c.id),
        }
    }

    /// What consumers may rely on credential `value` for right now: each version naming it that
    /// is the latest of its secret or was superseded less than the grace ago. Each comes with
    /// whether it is a late landing after `since` on a secret with grace 0 (see
    /// [`World::late_landing`]).
    fn open_obligations(&self, value: &str, since: Duration) -> Vec<(String, bool)> {
        let mut open = Vec::new();
        for (host, vault) in &self.vaults {
            let vault_now = self.vault_now(host);
            for s in vault.secrets.values() {
                for (i, v) in s.versions.iter().enumerate() {
                    if v.value != value {
                        continue;
                    }
                    let short = host.split('.').next().unwrap_or_default();
                    let late = v.late && v.landed >= since && s.grace == Duration::ZERO;
                    match s.versions.get(i + 1) {
                        None => open.push((format!("{short}/{} {} is the latest version", s.name, v.short()), late)),
                        Some(next) if vault_now < next.created + s.grace => open.push((
                            format!(
                                "{short}/{} {} was superseded by {} at {}, grace {} runs to {}",
                                s.name,
                                v.short(),
                                next.short(),
                                at(next.landed),
                                crate::log::span(s.grace),
                                at(next.landed + s.grace)
                            ),
                            late,
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        open
    }

    fn holders(&self, id: &str) -> String {
        let h: Vec<String> = self
            .holdings
            .iter()
            .filter(|h| h.cred == id)
            .map(|h| format!("consumer {} read it at {}", h.consumer, at(h.at)))
            .collect();
        if h.is_empty() { String::new() } else { format!("; {}", h.join(", ")) }
    }

    /// A rotation run revokes credential `i` (invariants 1 and 5). Returns the exception that
    /// excuses it, if any, and whether no consumer relied on it.
    pub(crate) fn check_run_revoke(&mut self, run: u32, i: usize) -> (Option<Exception>, bool) {
        let r = self.runs[&run].clone();
        let c = self.creds[i].clone();
        if c.made_by != Some(run) && !self.is_targets(&r.spec, &c) {
            self.violate(
                5,
                Some(&c.id),
                format!(
                    "run {run} ({} of {}) revoked {} {:?}, which is not the target's by contract §6/§9",
                    r.kind.label(),
                    r.spec.where_(),
                    c.id,
                    c.comment.as_deref().unwrap_or("(no comment)")
                ),
            );
        }
        let excuse = if r.req.revoke_superseded && r.wrote {
            Some(Exception::RevokeSuperseded)
        } else if r.cap_ids.contains(&c.id) && r.listing_ours >= self.profile().cap {
            Some(Exception::Cap)
        } else {
            None
        };
        let open = self.open_obligations(&c.value, r.start);
        let texts = open.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("; ");
        if !open.is_empty() {
            match excuse {
                Some(e) => self.count(e, |_| format!("run {run} revoked {} while {texts}", c.id)),
                None if open.iter().all(|(_, late)| *late) => self.late_landing(
                    Duration::ZERO,
                    format!(
                        "run {run} revoked {} after its reads, and then {texts} (a write that timed out landed late)",
                        c.id
                    ),
                ),
                None => {
                    let holders = self.holders(&c.id);
                    self.violate(
                        1,
                        Some(&c.id),
                        format!(
                            "run {run} ({} of {}) revoked {} while {texts}{holders}",
                            r.kind.label(),
                            r.spec.where_(),
                            c.id
                        ),
                    )
                }
            }
        }
        (excuse, open.is_empty())
    }

    /// Someone other than a rotation revokes credential `i`: an exception when consumers relied
    /// on it. Returns whether none did.
    pub(crate) fn check_world_revoke(&mut self, i: usize, why: Exception) -> bool {
        let c = self.creds[i].clone();
        let open = self.open_obligations(&c.value, Duration::ZERO);
        if !open.is_empty() {
            let texts = open.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("; ");
            self.count(why, |_| format!("{} revoked while {texts}", c.id));
        }
        open.is_empty()
    }

    /// How credential `i` stands.
    fn fate(&self, i: usize) -> Fate {
        let c = &self.creds[i];
        match &c.death {
            None if self.live(c) => Fate::Alive,
            None => Fate::Expired,
            Some(d) => match (d.excuse, d.by) {
                (Some(e), _) => Fate::Excused(e),
                (None, Some(by)) if d.harmless => Fate::Harmless { by, at: d.at },
                (None, Some(_)) => Fate::Broke,
                (None, None) => Fate::Expired,
            },
        }
    }

    /// A version names a credential a run revoked while no consumer relied on it: it can only
    /// have landed since, a write that timed out and took effect late. With grace 0 the
    /// contract lets another run revoke the credential at once (contract §7.4, README "With
    /// grace 0 the superseded token is revoked right after the write"), so this is recorded as
    /// an observation; with any other grace it cannot happen, and is a violation.
    fn late_landing(&mut self, grace: Duration, what: String) {
        if grace == Duration::ZERO {
            *self.checker.observations.entry("late landing on a revoked credential (grace 0)").or_default() += 1;
            self.note("checker", |_| format!("observation (grace 0): {what}"));
        } else {
            self.violate(2, None, what);
        }
    }

    /// A version became the latest of its secret (invariant 2).
    pub(crate) fn check_landing(&mut self, run: u32, host: &str, name: &str, idx: usize) {
        let s = self.secret(host, name).expect("just stored");
        let (v, grace) = (s.versions[idx].clone(), s.grace);
        let Some(i) = self.cred_by_value(&v.value) else { return };
        let id = self.creds[i].id.clone();
        match self.fate(i) {
            Fate::Alive | Fate::Expired | Fate::Broke => {}
            Fate::Excused(e) => self.count(e, |_| format!("{} of {name} (run {run}) lands naming {id}, revoked earlier", v.short())),
            // Contract §7.4: a write whose outcome is unknown may still land, so its own run
            // never deletes its credential.
            Fate::Harmless { by, at: when } if by == run => self.violate(
                2,
                Some(&id),
                format!(
                    "{} of {name} lands naming {id}, which its own run {run} deleted at {} while the write's outcome was unknown",
                    v.short(),
                    at(when)
                ),
            ),
            Fate::Harmless { by, at: when } => self.late_landing(
                grace,
                format!("{} of {name} (written by run {run}) lands naming {id}, which run {by} revoked at {}", v.short(), at(when)),
            ),
        }
    }

    /// A consumer read a version naming credential `i` (invariant 2).
    pub(crate) fn check_consumer_read(&mut self, who: &str, host: &str, name: &str, v: &Version, i: usize) {
        let id = self.creds[i].id.clone();
        let grace = self.secret(host, name).map(|s| s.grace).unwrap_or_default();
        match self.fate(i) {
            Fate::Alive | Fate::Expired | Fate::Broke => {}
            Fate::Excused(e) => self.count(e, |_| format!("{who} reads {} of {name}: {id} was revoked", v.short())),
            Fate::Harmless { by, at: when } => self.late_landing(
                grace,
                format!("{who} reads {} of {name}, which names {id}, revoked by run {by} at {}", v.short(), at(when)),
            ),
        }
    }

    /// A run ended (invariants 2 and 3, and no secret in what it said).
    pub(crate) fn check_run_end(&mut self, run: u32, outcome: Option<&Outcome>) {
        let Some(o) = outcome else { return };
        let r = self.runs[&run].clone();
        let said = format!("{}\n{o:?}\n{}", serde_json::to_string(o).unwrap_or_default(), r.warnings.join("\n"));
        if let Some(c) = self.creds.iter().find(|c| said.contains(&c.value)) {
            let id = c.id.clone();
            self.violate(0, None, format!("run {run}'s outcome or warnings contain the value of {id}"));
        }
        if !o.ok() || r.req.dry_run {
            return;
        }
        let (host, name) = r.spec.secret();
        let latest =
            self.secret(&host, &name).filter(|s| s.state == SecretState::Live).and_then(|s| s.versions.last()).cloned();
        if let Some(v) = latest {
            match self.cred_by_value(&v.value) {
                None => self.violate(
                    2,
                    None,
                    format!(
                        "after run {run} succeeded, the latest version {} of {name} names no credential of the issuer",
                        v.short()
                    ),
                ),
                Some(i) => {
                    let id = self.creds[i].id.clone();
                    let grace = self.secret(&host, &name).map(|s| s.grace).unwrap_or_default();
                    match self.fate(i) {
                        Fate::Alive | Fate::Expired | Fate::Broke => {}
                        Fate::Excused(e) => self.count(e, |_| format!("after run {run}, {} names {id}, revoked", v.short())),
                        Fate::Harmless { by, at: when } => self.late_landing(
                            grace,
                            format!(
                                "after run {run} succeeded, the latest version {} of {name} names {id}, which run {by} revoked at {}",
                                v.short(),
                                at(when)
                            ),
                        ),
                    }
                }
            }
        }
        if !(r.reads_ok && r.revokes_ok) {
            return;
        }
        let end = r.end.unwrap_or(r.start);
        match self.kind {
            Kind::Pat => {
                // Every other run of the target and secret that overlapped this one may hold
                // one credential this run's listing did not count (created after it).
                let racing = self
                    .runs
                    .values()
                    .filter(|x| {
                        x.id != run
                            && x.spec.spec.target == r.spec.spec.target
                            && x.spec.key == r.spec.key
                            && x.start < end
                            && x.end.is_none_or(|e| e > r.start)
                    })
                    .count();
                let alone = racing == 0;
                let limit = 6 + racing;
                let live: Vec<String> = self
                    .creds
                    .iter()
                    .filter(|c| self.live(c) && self.is_targets(&r.spec, c))
                    .map(|c| c.id.clone())
                    .collect();
                if live.len() > limit {
                    self.violate(
                        3,
                        None,
                        format!(
                            "after run {run} ({}, {}), {} holds {} live tokens (at most {limit}): {}",
                            r.kind.label(),
                            if alone { "alone".to_string() } else { format!("racing {racing} other run(s)") },
                            r.spec.where_(),
                            live.len(),
                            live.join(", ")
                        ),
                    );
                }
            }
            Kind::OAuth => {
                let live = self.creds.iter().filter(|c| self.live(c)).count();
                if live > 5 {
                    self.violate(3, None, format!("after run {run}, the principal holds {live} OAuth secrets"));
                }
            }
        }
    }

    /// The end of the quiet phase for deployment `d` (invariant 4): nothing of its target is
    /// live but what its latest version names.
    pub(crate) fn check_quiet_end(&mut self, d: usize) {
        let spec = self.deployments[d].spec.clone();
        let (host, name) = spec.secret();
        let Some(latest) = self.secret(&host, &name).and_then(|s| s.versions.last()).map(|v| v.value.clone()) else {
            // Never written (a full issuer, say): a read that says "absent" proves nothing, so
            // nothing is revoked for it (contract §7.4); what is left waits for the operator.
            let left = self.creds.iter().filter(|c| self.live(c) && self.is_targets(&spec, c)).count();
            if left > 0 {
                *self
                    .checker
                    .observations
                    .entry("target never written: its orphans stay (an absent secret proves nothing)")
                    .or_default() += 1;
            }
            self.note("checker", |_| {
                format!("quiet phase: {} was never written; {left} credential(s) of it stay", spec.where_())
            });
            return;
        };
        let latest = Some(latest);
        let left: Vec<String> = self
            .creds
            .iter()
            .filter(|c| self.live(c) && self.is_targets(&spec, c) && Some(&c.value) != latest.as_ref())
            .map(|c| format!("{} {:?}", c.id, c.comment.as_deref().unwrap_or("")))
            .collect();
        self.note("checker", |_| format!("quiet phase settled for {}", spec.where_()));
        if !left.is_empty() {
            self.violate(
                4,
                None,
                format!(
                    "after the quiet phase, {} still holds credentials its latest version does not name: {}",
                    spec.where_(),
                    left.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checker alone, on hand-made effects: each invariant can fail, and each exception is
    //! counted instead of reported only when its condition holds.

    use pat_rotator::rotation::model::CreateRequest;
    use pat_rotator::rotation::{Action, Outcome, Reason};

    use super::*;
    use crate::rng::Rng;
    use crate::scenario::{InitialSecret, Knobs, RunKind, Scenario};
    use crate::world::{Landing, VAULTS};

    /// A quiet world (no faults) from the first seed whose scenario `pred` accepts.
    fn world(pred: impl Fn(&Scenario) -> bool) -> World {
        let seed = (0..).find(|s| pred(&Scenario::generate(*s, Knobs::default()))).expect("such a seed");
        let mut w = World::new(Scenario::generate(seed, Knobs::default()), Rng::new(1), true);
        w.quiet = true;
        w
    }

    fn pat_with_a_managed_secret() -> World {
        world(|s| {
            s.kind == Kind::Pat
                && matches!(s.initial, InitialSecret::Managed { legacy: false, .. })
                && s.other_target_tokens > 0
                && s.foreign_creds > 0
                && s.lifetime_days >= 5
                && s.quota >= 10
        })
    }

    fn latest_cred(w: &World) -> String {
        let v = w.secret(VAULTS[0], "databricks-pat").unwrap().versions.last().unwrap().value.clone();
        w.creds[w.cred_by_value(&v).unwrap()].id.clone()
    }

    fn invariants(w: &World) -> Vec<u8> {
        w.checker.violations.iter().map(|v| v.invariant).collect()
    }

    fn unchanged() -> Outcome {
        Outcome {
            target: crate::world::TARGET.into(),
            action: Action::Unchanged,
            reason: Some(Reason::Fresh),
            secret_id: None,
            token_id: None,
            expires_at: None,
            revoked_token_ids: Vec::new(),
            error: None,
            warnings: Vec::new(),
            failure: None,
            usage_unreadable: None,
        }
    }

    #[test]
    fn a_rotation_revoking_the_latest_versions_token_breaks_invariant_1() {
        let mut w = pat_with_a_managed_secret();
        let run = w.begin_run(0, RunKind::Timer, None).id;
        let id = latest_cred(&w);
        w.is_revoke(run, &id).unwrap();
        assert_eq!(invariants(&w), [1], "{:?}", w.log.lines);
    }

    #[test]
    fn a_rotation_revoking_another_targets_token_breaks_invariant_5() {
        let mut w = pat_with_a_managed_secret();
        let run = w.begin_run(0, RunKind::Timer, None).id;
        for not_ours in ["/billing/", "Terraform", "ci job", "notebook"] {
            if let Some(c) =
                w.creds.iter().find(|c| w.live(c) && c.comment.as_deref().is_some_and(|m| m.contains(not_ours)))
            {
                let id = c.id.clone();
                w.is_revoke(run, &id).unwrap();
            }
        }
        assert!(!invariants(&w).is_empty() && invariants(&w).iter().all(|i| *i == 5), "{:?}", w.checker.violations);
    }

    #[test]
    fn a_cap_claim_is_checked_not_trusted() {
        let mut w = pat_with_a_managed_secret();
        let id = latest_cred(&w);
        let run = w.begin_run(0, RunKind::Cli, None).id;
        w.runs.get_mut(&run).unwrap().cap_ids = vec![id.clone()];
        w.runs.get_mut(&run).unwrap().listing_ours = 2;
        w.is_revoke(run, &id).unwrap();
        assert_eq!(invariants(&w), [1], "two listed tokens are no cap");

        let mut w = pat_with_a_managed_secret();
        let run = w.begin_run(0, RunKind::Cli, None).id;
        w.runs.get_mut(&run).unwrap().cap_ids = vec![id.clone()];
        w.runs.get_mut(&run).unwrap().listing_ours = 6;
        w.is_revoke(run, &id).unwrap();
        assert!(invariants(&w).is_empty());
        assert_eq!(w.checker.exceptions.get(&Exception::Cap), Some(&1));
    }

    #[test]
    fn out_of_band_revocation_is_counted_not_reported() {
        let mut w = pat_with_a_managed_secret();
        let id = latest_cred(&w);
        let i = w.cred_index(&id).unwrap();
        w.kill_by_world("someone", i, Exception::OutOfBand);
        assert!(invariants(&w).is_empty());
        assert_eq!(w.checker.exceptions.get(&Exception::OutOfBand), Some(&1));
    }

    #[test]
    fn a_late_write_naming_a_token_its_own_run_deleted_breaks_invariant_2() {
        let mut w = pat_with_a_managed_secret();
        let run = w.begin_run(0, RunKind::Cli, None).id;
        let new = w.is_create(run, &CreateRequest { attempt: "x1".into(), lifetime_seconds: 86_400 }).ok().unwrap();
        // Deleting an unrecorded token of its own is harmless by itself...
        w.is_revoke(run, &new.info.id).unwrap();
        assert!(invariants(&w).is_empty());
        // ...but not once the write it had sent lands.
        let mut version = w.secret(VAULTS[0], "databricks-pat").unwrap().versions.last().unwrap().clone();
        version.value = new.value.expose().to_string();
        version.id.push_str("-late");
        w.land(Landing {
            host: VAULTS[0].into(),
            name: "databricks-pat".into(),
            version,
            after: Default::default(),
            run,
        });
        assert_eq!(invariants(&w), [2]);
    }

    #[test]
    fn seven_live_tokens_after_a_run_alone_break_invariant_3() {
        let mut w = pat_with_a_managed_secret();
        let before: usize = {
            let spec = w.deployments[0].spec.clone();
            w.creds.iter().filter(|c| w.live(c) && w.is_targets(&spec, c)).count()
        };
        let run = w.begin_run(0, RunKind::Cli, None).id;
        for n in before..7 {
            w.is_create(run, &CreateRequest { attempt: format!("y{n}"), lifetime_seconds: 86_400 }).ok().unwrap();
        }
        w.end_run(run, Some(unchanged()));
        assert_eq!(invariants(&w), [3], "{:?}", w.checker.violations);
    }
}
