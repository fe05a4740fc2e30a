//! The oracle: the invariants of sim/README.md, checked after every effect.
//!
//! The checker reads the world, never the code under test: whose a credential is comes from its
//! own reading of contract §6/§9 (not `pat::ownership`), what a consumer relies on from the
//! versions the vault holds and the moments they were superseded, the cap is the contract's 6
//! (not `pat::PROFILE.cap`), and a claim of the core (a cap warning) is checked, not trusted.
//!
//! 0. No secret (a credential value, live or dead; an Entra ID or OAuth access token; the
//!    identity header) in any output — results, warnings, ProvisionPat bodies, status and
//!    tokens rows and tables, text and JSON log lines — in any form; no upstream detail in a
//!    caller's body (ProvisionPat); no panic; no request to an unknown host.
//! 1. (a) No revocation of any kind touches a credential that the latest version of a
//!    configured secret names (either id tag, whatever the secret's state), once the revoking
//!    invocation could have read it. (b) A rotation never revokes a credential that a version
//!    of any secret names (by value: what a consumer holds) while that version is the latest or
//!    was superseded less than the grace ago — except the cap (PATs only, and only when the
//!    invocation's own last listing of the target plus its new credential exceeds 6),
//!    `--revoke-superseded` after its write, and `tokens --revoke`.
//! 2. The vault never names a dead credential: a version that lands names a live one, a
//!    consumer never reads a dead one, a successful rotation leaves its secret's latest version
//!    naming a live one.
//! 3. After a successful rotation whose reads and revocations succeeded, a PAT target holds at
//!    most 6 live tokens (6 + k with k invocations of it overlapping).
//! 4. After the quiet phase, nothing of a configured target is live but what the latest version
//!    of a configured secret names.
//! 5. A rotation revokes only the credentials of its targets by §6/§9, or one it created.
//! 6. A dry run (and `status`, `tokens`) changes nothing: no write, no create, no revocation.
//! 7. A run that is not forced — the timer, a SecretEvent, `rotate` and ProvisionPat without
//!    `force`, and a forced ProvisionPat inside the cooldown — creates nothing for a target
//!    that is not due (its latest version managed, enabled, naming a live credential of its own
//!    that expires more than `renew_before` (+ a day) away; for a near-expiry event, an `exp`
//!    more than 30 days away).
//! 8. No credential older than 30 minutes (by its issuer's clock when the write is sent) is
//!    written.
//! 9. Every version pat-rotator writes says truthfully who wrote it and how (contract §10):
//!    `rotated-by` the object id of the identity whose token wrote it, `rotated-via` what
//!    started the run; and its id tag names the credential its value holds.
//! 10. Contract §10's guard: the CLI without `--take-ownership` (with `--revoke-superseded`,
//!     even with it) and a SecretEvent run create nothing for, and write nothing to, a target
//!     whose latest version (as every read of it showed) is managed and was written by another
//!     identity. An invocation writes only its own targets' secrets.
//! 11. Contract §10 "Usage": a run of a `keep_while_used` target does not revoke a superseded
//!     token past its grace that its last lookup said was used on the current or the previous
//!     day, or whose use it could not tell (a failed lookup, no `last_used_day`, no `Date`), or
//!     that it never looked up — unless the token was superseded `renew_before` ago, the
//!     Token Management API refused the identity (`403`), or the cap excuses it;
//!     `--revoke-superseded` and `tokens --revoke` ignore usage.
//! 12. An error code that names an upstream condition (contract §5: `throttled`,
//!     `upstream_unavailable`, `keyvault_forbidden`, `keyvault_secret_deleted`,
//!     `databricks_quota_exceeded`, `databricks_unauthorized`, `databricks_forbidden`) is one the
//!     world's answers to that invocation showed, by the checker's own classification of each
//!     answer.
//! 13. A result object (contract §4) speaks the contract's words (§4's actions and reasons, §5's
//!     codes; an error exactly when the action is `failed`) and claims only what happened: a
//!     `created`, `rotated` or `reprovisioned` target had a version stored by the invocation
//!     (an `unchanged` one may have too: a write whose answer was lost, made moot by another
//!     run's newer version, is reported as the run saw it), and every id in
//!     `revoked_token_ids` is gone.
//! 14. A run writes one credential at most `PAT_RETRY_ATTEMPTS` times.

use std::collections::{BTreeMap, BTreeSet};

use pat_rotator::rotation::model::tags;
use time::Duration;

use crate::log::at;
use crate::scenario::Kind;
use crate::world::{CAP, Cred, Holder, InvKind, MAX_UNWRITTEN_AGE, REREAD, SecretState, TargetView, Version, World};

/// Contract §4's actions, reasons and §5's error codes.
const ACTIONS: [&str; 6] = ["created", "rotated", "unchanged", "reprovisioned", "planned", "failed"];
const REASONS: [&str; 8] = [
    "no_secret",
    "expiring",
    "revoked_in_workspace",
    "foreign_secret",
    "disabled_secret",
    "forced",
    "recently_rotated",
    "fresh",
];
const CODES: [&str; 18] = [
    "config_invalid",
    "unknown_target",
    "invalid_request",
    "identity_unavailable",
    "databricks_unauthorized",
    "databricks_forbidden",
    "databricks_quota_exceeded",
    "databricks_lifetime_too_long",
    "databricks_error",
    "keyvault_forbidden",
    "keyvault_secret_deleted",
    "keyvault_error",
    "throttled",
    "upstream_unavailable",
    "timeout",
    "identity_federation_refused",
    "databricks_principal_not_found",
    "rotated_by_another_identity",
];

/// An exception of contract §7.4 (and out-of-band revocation), counted when it excused what
/// would otherwise have broken an invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exception {
    OutOfBand,
    Inactivity,
    TokensRevoke,
    Cap,
    RevokeSuperseded,
    /// A copy of the credential in another secret that the contract does not protect (a
    /// superseded copy, or the latest of a secret no longer configured): its consumers lose it.
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: u8,
    pub at: Duration,
    pub text: String,
}

/// A version a consumer may rely on for a credential.
#[derive(Debug, Clone)]
struct Obligation {
    text: String,
    /// A late landing after the revoking invocation began, on a secret with grace 0.
    late: bool,
    /// (vault host, secret name in lower case).
    secret: (String, String),
    /// The latest version of its secret (else: superseded, inside the grace).
    latest: bool,
}

/// How a credential stands, for invariant 2.
enum Fate {
    Alive,
    /// Expired, or died without a killer: no revocation to judge.
    Expired,
    Excused(Exception),
    /// Revoked by an invocation while no consumer relied on it.
    Harmless {
        by: u32,
        at: Duration,
    },
    /// Revoked by an invocation that broke invariant 1 (already reported).
    Broke,
}

#[derive(Debug, Default)]
pub struct Checker {
    pub violations: Vec<Violation>,
    pub exceptions: BTreeMap<Exception, u32>,
    /// What the contract allows but a reader should know (sim/README.md, "Findings").
    pub observations: BTreeMap<&'static str, u32>,
    /// What a violation already names (later symptoms of the same one are not repeated).
    reported: BTreeSet<String>,
}

impl Checker {
    pub fn violation(&mut self, invariant: u8, at: Duration, text: String) {
        self.violations.push(Violation { invariant, at, text });
    }
}

/// Markers of upstream detail: what only a service's answer or the configuration carries.
const UPSTREAM: &[&str] =
    &["activity id", "vault.azure.net", "azuredatabricks.net", "appid=", "AKV1", "sts.windows.net", "error_code"];

fn trimmed<'a>(v: &'a Version, tag: &str) -> Option<&'a str> {
    v.tags.get(tag).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl World {
    fn violate(&mut self, invariant: u8, key: Option<String>, text: String) {
        if let Some(k) = key
            && !self.checker.reported.insert(k)
        {
            return;
        }
        let now = self.now();
        self.note("CHECKER", |_| format!("VIOLATION of invariant {invariant}: {text}"));
        self.checker.violation(invariant, now, text);
    }

    fn count(&mut self, e: Exception, what: impl FnOnce(&World) -> String) {
        *self.checker.exceptions.entry(e).or_default() += 1;
        self.note("checker", |w| format!("exception {e:?}: {}", what(w)));
    }

    fn observe(&mut self, what: &'static str, text: String) {
        *self.checker.observations.entry(what).or_default() += 1;
        self.note("checker", |_| format!("observation: {text}"));
    }

    // ---- ownership, by the checker's own reading of §6 and §9 ---------------------------

    /// Whether a version of `t`'s secret records credential `id`.
    pub fn recorded(&self, t: &TargetView, id: &str) -> bool {
        let p = t.profile();
        let (h, n) = t.secret_key();
        self.secret(&h, &n).is_some_and(|s| {
            s.versions.iter().any(|v| trimmed(v, p.id_tag) == Some(id) || trimmed(v, p.previous_tag) == Some(id))
        })
    }

    /// Whether `c` is `t`'s by contract §6 (PATs: the comment names the target and this
    /// secret's key; a three-segment comment of the target only while a version of this
    /// secret records it) or §9 (OAuth secrets of its principal: only while a version of this
    /// secret records it).
    pub fn is_targets(&self, t: &TargetView, c: &Cred) -> bool {
        if c.holder != t.holder() {
            return false;
        }
        match t.kind {
            Kind::Pat => {
                let Some(rest) = c.comment.as_deref().and_then(|c| c.strip_prefix("pat-rotator/")) else {
                    return false;
                };
                match rest.split('/').collect::<Vec<_>>().as_slice() {
                    [n, k, a] => *n == t.name && *k == t.key && !a.is_empty(),
                    [n, a] => *n == t.name && !a.is_empty() && self.recorded(t, &c.id),
                    _ => false,
                }
            }
            Kind::OAuth => self.recorded(t, &c.id),
        }
    }

    // ---- invariant 0 -------------------------------------------------------------------

    /// Something pat-rotator printed or answered.
    pub fn check_output(&mut self, inv: u32, what: &str, text: &str) {
        if let Some(secret) = self.leaks.find(text) {
            let secret = secret.to_string();
            let excerpt: String = text.chars().take(300).collect();
            self.violate(
                0,
                Some(format!("leak {inv} {secret} {what}")),
                format!(
                    "{} ({}): a {what} shows (part of) the secret {secret}: {excerpt}",
                    Self::who(inv),
                    self.inv_label(inv)
                ),
            );
        }
    }

    /// A ProvisionPat body: no secret, and no upstream detail in its warnings or error.
    pub fn check_caller_body(&mut self, inv: u32, body: &serde_json::Value) {
        self.check_output(inv, "ProvisionPat body", &body.to_string());
        let mut texts: Vec<String> = Vec::new();
        if let Some(w) = body["warnings"].as_array() {
            texts.extend(w.iter().filter_map(|x| x.as_str()).map(str::to_string));
        }
        for e in [&body["error"]["message"], &body["message"]] {
            if let Some(m) = e.as_str() {
                texts.push(m.to_string());
            }
        }
        for t in texts {
            if let Some(m) = UPSTREAM.iter().find(|m| t.contains(**m)) {
                self.violate(
                    0,
                    Some(format!("upstream {inv} {m}")),
                    format!(
                        "{} ({}): the ProvisionPat body carries upstream detail ({m:?}): {t}",
                        Self::who(inv),
                        self.inv_label(inv)
                    ),
                );
            }
        }
    }

    /// Invariant 0 for the `Status` function's body (contract §3): no secret, no upstream
    /// detail, no object id of any identity.
    pub fn check_status_body(&mut self, inv: u32, body: &serde_json::Value) {
        let text = body.to_string();
        self.check_output(inv, "Status body", &text);
        let oids = [crate::world::SERVICE_OID, crate::world::OPERATOR_OID];
        let found = UPSTREAM.iter().chain(oids.iter()).find(|m| text.contains(**m));
        if let Some(m) = found {
            self.violate(
                0,
                Some(format!("status body {inv} {m}")),
                format!(
                    "{} ({}): the Status body carries upstream detail or an object id ({m:?}): {text}",
                    Self::who(inv),
                    self.inv_label(inv)
                ),
            );
        }
    }

    /// Invariant 13: a result object (contract §4) speaks the contract's words and claims what
    /// happened: `action` and `reason` from §4's lists, `error` a §5 code with a message exactly
    /// when the action is `failed`; `created`, `rotated` and `reprovisioned` only when the
    /// invocation stored a version of the target's secret; every id in `revoked_token_ids` a
    /// credential that is gone.
    pub(crate) fn check_result(&mut self, inv: u32, name: &str, r: &serde_json::Value) {
        let Some(action) = r["action"].as_str() else {
            // A ProvisionPat answer that is no result object (a refused request): its error only.
            if let Some(code) = r["error"]["code"].as_str().or(r["code"].as_str())
                && !CODES.contains(&code)
            {
                self.violate(
                    13,
                    Some(format!("code word {inv}")),
                    format!("{} answered the unknown error code {code:?}: {r}", Self::who(inv)),
                );
            }
            return;
        };
        let mut wrong: Vec<String> = Vec::new();
        if !ACTIONS.contains(&action) {
            wrong.push(format!("action {action:?} is not one of §4's"));
        }
        match &r["reason"] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if REASONS.contains(&s.as_str()) => {}
            other => wrong.push(format!("reason {other} is not one of §4's")),
        }
        let error = &r["error"];
        match (action == "failed", error.is_null()) {
            (true, true) => wrong.push("a failed result without an error".into()),
            (false, false) => wrong.push(format!("a {action} result with an error")),
            _ => {}
        }
        if !error.is_null() {
            let code = error["code"].as_str().unwrap_or_default();
            if !CODES.contains(&code) {
                wrong.push(format!("error code {code:?} is not one of §5's"));
            }
            if error["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
                wrong.push("an error without a message".into());
            }
        }
        let wrote = self.invs.get(&inv).and_then(|x| x.per.get(name)).is_some_and(|p| p.wrote);
        match action {
            "created" | "rotated" | "reprovisioned" if !wrote => {
                wrong.push(format!("it says {action}, but it stored no version of the target's secret"))
            }
            _ => {}
        }
        // A full workspace (contract §11) says whose tokens fill it: as many "not pat-rotator's"
        // as the identity held at most during the invocation.
        if let Some(m) = error["message"].as_str()
            && let Some(rest) = m.split_once("not pat-rotator's: ").map(|(_, r)| r)
            && let Some(said) = rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<usize>().ok())
            && let Some(x) = self.invs.get(&inv)
            && let Some(t) = x.targets.iter().find(|t| t.name == name)
        {
            let holder = t.holder();
            let theirs = self
                .creds
                .iter()
                .filter(|c| c.holder == holder && c.death.as_ref().is_none_or(|d| d.at >= x.start))
                .filter(|c| {
                    c.comment
                        .as_deref()
                        .and_then(|m| m.strip_prefix("pat-rotator/"))
                        .and_then(|r| r.split('/').next())
                        .is_none_or(str::is_empty)
                })
                .count();
            if said > theirs {
                wrong
                    .push(format!("it counts {said} tokens not pat-rotator's, and the identity held at most {theirs}"));
            }
        }
        // A create the workspace refused for a lifetime above its cap ends the target
        // `databricks_lifetime_too_long` when the refusal says so or the cap could be read;
        // and only such a refusal says the lifetime is above the limit.
        if let Some(x) = self.invs.get(&inv) {
            let refused = x.lifetime_refused.get(name).copied();
            let code = error["code"].as_str();
            // Judged only when the refusal names the lifetime and the run ended on it (an
            // unworded one depends on a read of the cap that may hang or time out).
            let knowable = refused == Some(true)
                && error["message"].as_str().is_some_and(|m| m.contains("creating a token") && m.contains("lifetime"));
            if knowable && action == "failed" && code != Some("databricks_lifetime_too_long") {
                wrong.push(format!(
                    "its create was refused for a lifetime above the workspace's cap, and it ends {code:?}"
                ));
            }
            if refused.is_none() && error["message"].as_str().is_some_and(|m| m.contains("above the workspace's limit"))
            {
                wrong.push("it says the lifetime is above the workspace's limit, and no create was refused so".into());
            }
        }
        // `disabled_secret`: a read answered that the latest version is disabled.
        if r["reason"].as_str() == Some("disabled_secret")
            && !self.invs.get(&inv).and_then(|x| x.per.get(name)).is_some_and(|p| p.saw_disabled)
        {
            wrong.push("disabled_secret, but no read it made found the latest version disabled".into());
        }
        // `recently_rotated` (contract §3): a forced ProvisionPat declined because the latest
        // version is younger than the cooldown by Key Vault's clocks, or the target is full.
        if r["reason"].as_str() == Some("recently_rotated")
            && let Some(x) = self.invs.get(&inv)
            && let Some(t) = x.targets.iter().find(|t| t.name == name)
            && let Some(Some(read)) = x.per.get(name).and_then(|p| p.first_read.clone())
            && let Some(at) = read.vault_at
        {
            let cooldown = Duration::minutes(self.sc.deployments[x.dep].settings.cooldown_minutes as i64);
            let age = at.unix_timestamp() - read.version.created;
            // What it held when it decided: what is live now, or was when the invocation began.
            let held = self
                .creds
                .iter()
                .filter(|c| {
                    self.is_targets(t, c) && (self.live(c) || c.death.as_ref().is_some_and(|d| d.at >= x.start))
                })
                .count();
            if age >= cooldown.whole_seconds() && held + 2 < CAP {
                wrong.push(format!(
                    "recently_rotated, but the version it read ({}) was {} old by Key Vault's clock (cooldown {}) and the target holds {held} live",
                    read.version.short(),
                    crate::log::span(Duration::seconds(age)),
                    crate::log::span(cooldown)
                ));
            }
        }
        // A forced run (CLI `--force`, a forced ProvisionPat it did not decline) ends
        // `unchanged`/`fresh` only when another run stored a version of the target's secret while
        // it ran (contract §7.3: the newer version is kept).
        if action == "unchanged"
            && r["reason"].as_str() == Some("fresh")
            && let Some(x) = self.invs.get(&inv)
            && matches!(
                x.kind,
                InvKind::Cli { force: true, dry_run: false, .. } | InvKind::Provision { force: true, dry_run: false }
            )
            && let Some(t) = x.targets.iter().find(|t| t.name == name)
        {
            let (h, n) = t.secret_key();
            let other =
                self.secret(&h, &n).is_some_and(|s| s.versions.iter().any(|v| v.by != inv && v.landed >= x.start));
            // After a read that said "absent", a version the run finds later was written
            // meanwhile as far as it can tell unless Key Vault dated that read more than a second
            // after the version's `created`.
            let latest_created = self.secret(&h, &n).and_then(|s| s.versions.last()).map(|v| v.created);
            let undecidable = x.per.get(name).is_some_and(|p| {
                p.absent_dates.iter().any(|d| match (d, latest_created) {
                    (Some(d), Some(c)) => c >= d - 1,
                    _ => true,
                })
            });
            if !other && !undecidable {
                wrong.push(
                    "a forced run ends unchanged/fresh, and no other run stored a version of its secret while it ran"
                        .into(),
                );
            }
        }
        // "not this target's, so never deleted by a rotation: ids)" (a full issuer) and "…s that
        // appeared meanwhile: ids;" (a create of unknown outcome): neither names what the target's
        // latest version named throughout the invocation (its read found that one, unless a read
        // said absent, and a listing that missed it is taken again).
        let lists = [
            ("not this target's, so never deleted by a rotation: ", ')', "not this target's"),
            ("s that appeared meanwhile: ", ';', "appeared meanwhile"),
        ];
        if let Some(m) = error["message"].as_str()
            && let Some((list, said)) = lists.iter().find_map(|(head, end, said)| {
                m.split_once(head).and_then(|(_, r)| r.split_once(*end)).map(|(l, _)| (l, *said))
            })
            && let Some(x) = self.invs.get(&inv)
            && !x.per.get(name).is_some_and(|p| p.saw_absent)
            && let Some(t) = x.targets.iter().find(|t| t.name == name)
            // (both listings may miss it while a credential of the issuer comes or goes)
            && self.issuer_still(&t.holder(), x.start, Some(inv))
        {
            let (h, n) = t.secret_key();
            let p = t.profile();
            let named = self
                .secret(&h, &n)
                .filter(|s| s.state == SecretState::Live)
                .and_then(|s| s.versions.last())
                .filter(|v| v.landed < x.start && v.enabled)
                .and_then(|v| trimmed(v, p.id_tag).map(str::to_string));
            if let Some(id) = named.filter(|id| list.split(", ").any(|l| l == id)) {
                wrong.push(format!("it says {id} is {said}, and the target's latest version names it"));
            }
        }
        // With grace 0 the credential a rotation supersedes is revoked by that run, right after
        // its write (README, "What is revoked, and when"), when nothing stood in the way: no
        // warning, every read and revocation answered, no use to look up, no other configured
        // secret naming it.
        if action == "rotated"
            && r["warnings"].as_array().is_none_or(|w| w.is_empty())
            && let Some(x) = self.invs.get(&inv)
            && x.reads_all_ok
            && x.per.get(name).is_some_and(|p| p.revokes_ok)
            && let Some(t) = x.targets.iter().find(|t| t.name == name)
            && t.grace == Duration::ZERO
            && !t.keep_while_used
        {
            let (h, n) = t.secret_key();
            let p = t.profile();
            let previous = self
                .secret(&h, &n)
                .and_then(|s| s.versions.iter().rev().find(|v| v.by == inv))
                .and_then(|v| trimmed(v, p.previous_tag).map(str::to_string));
            let named_elsewhere = |id: &str| {
                x.configured.iter().filter(|u| u.holder() == t.holder()).any(|u| {
                    let (h, n) = u.secret_key();
                    self.secret(&h, &n).and_then(|s| s.versions.last()).is_some_and(|v| {
                        pat_rotator::databricks::tags::NAMING.iter().any(|tag| trimmed(v, tag) == Some(id))
                    })
                })
            };
            if let Some(id) = previous
                && let Some(c) = self.cred_index(&id).map(|i| &self.creds[i])
                && self.is_targets(t, c)
                && self.live(c)
                && !named_elsewhere(&id)
            {
                wrong.push(format!("it superseded {id} with grace 0, and {id} is still live"));
            }
        }
        if let Some(line) = r["_log_line"].as_str()
            && let Some(id) = r["token_id"].as_str()
            && !line.contains(&format!("token {}", id.chars().take(12).collect::<String>()))
        {
            wrong.push(format!("its log line does not name the token: {line}"));
        }
        for id in r["revoked_token_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_str()) {
            let gone = self.cred_index(id).is_some_and(|i| !self.live(&self.creds[i]));
            if !gone {
                wrong.push(format!("it lists {id} as revoked, and {id} is not gone"));
            }
        }
        let what = format!("the result for {name} is untrue or outside the contract");
        self.untrue(inv, format!("result {inv} {name}"), &what, &wrong, &format!(": {r}"));
    }

    /// Invariant 13, once per `key`: invocation `inv`'s `what` says what is not so.
    fn untrue(&mut self, inv: u32, key: String, what: &str, wrong: &[String], shown: &str) {
        if wrong.is_empty() {
            return;
        }
        let text = format!("{} ({}): {what}: {}{shown}", Self::who(inv), self.inv_label(inv), wrong.join("; "));
        self.violate(13, Some(key), text);
    }

    /// Invariant 13 for a JSON log line (contract §2's `PAT_LOG_FORMAT=json`): its `action`,
    /// `reason` and `code` are the contract's words.
    pub(crate) fn check_log_words(&mut self, inv: u32, line: &str) {
        if !line.starts_with('{') {
            return;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { return };
        // `kept_in_use`: the line of a superseded token kept while used (contract §10 "Usage").
        let actions: Vec<&str> = ACTIONS.iter().copied().chain(["kept_in_use"]).collect();
        let words: [(&str, &[&str]); 3] = [("action", &actions), ("reason", &REASONS), ("code", &CODES)];
        for (key, allowed) in words {
            if let Some(w) = v[key].as_str()
                && !allowed.contains(&w)
            {
                self.violate(
                    13,
                    Some(format!("log word {inv} {key}")),
                    format!(
                        "{} ({}): a JSON log line's {key} {w:?} is not one of the contract's: {line}",
                        Self::who(inv),
                        self.inv_label(inv)
                    ),
                );
            }
        }
    }

    /// Whether no credential of issuer `h` was created, revoked or expired between `start` and
    /// now. A listing in pages is no snapshot: such a change shifts the pages, and a listing
    /// made meanwhile may miss a credential (seeds 7737, 48391, 61631, 72133), so what a
    /// listing's completeness decides is judged only when the issuer stood still.
    /// What invocation `own` (if any) created or revoked itself does not count: a run's own
    /// create comes after its listings, and judging it is the point.
    pub(crate) fn issuer_still(&self, h: &Holder, start: Duration, own: Option<u32>) -> bool {
        let (from, to) = (self.issuer_at(h, start), self.issuer_at(h, self.now()));
        self.creds.iter().filter(|c| &c.holder == h).all(|c| {
            (c.made_by.is_none_or(|_| c.requested < start) || (own.is_some() && c.made_by == own))
                && c.death.as_ref().is_none_or(|d| d.at < start || (own.is_some() && d.by == own))
                && c.expires.is_none_or(|e| e <= from || e > to)
        })
    }

    /// Invariant 13 for `tokens` (contract §1, §10): a row without an error lists every
    /// credential its issuer held throughout the invocation and nothing the issuer never held;
    /// `in_vault` is true only for a credential a version of the target's secret names, and
    /// true for the one its latest version names when that version stood throughout.
    pub(crate) fn check_tokens_rows(&mut self, inv: u32, rows: &serde_json::Value) {
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        let mut wrong: Vec<String> = Vec::new();
        for row in rows.as_array().into_iter().flatten() {
            let Some(t) = x.targets.iter().find(|t| Some(t.name.as_str()) == row["target"].as_str()) else { continue };
            if !row["error"].is_null() {
                continue;
            }
            let holder = t.holder();
            let since = self.issuer_at(&holder, x.start);
            let listed: BTreeMap<&str, &serde_json::Value> = row["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["token_id"].as_str().map(|id| (id, r)))
                .collect();
            // (pages shifted by a change meanwhile may hide one: judged only when none came)
            let still = self.issuer_still(&holder, x.start, Some(inv));
            for c in self.creds.iter().filter(|c| still && c.holder == holder) {
                if self.live(c) && c.created + Duration::seconds(1) < since && !listed.contains_key(c.id.as_str()) {
                    wrong.push(format!("{}: omits {}, which its issuer held throughout", t.name, c.id));
                }
            }
            let (h, n) = t.secret_key();
            let secret = self.secret(&h, &n);
            let p = t.profile();
            // (a spurious 404 or a failed read: the row says what its read said)
            let reads_ok = x.per.get(&t.name).is_some_and(|p| p.reads_ok);
            // The latest version, when it stood throughout and shares its second with no other.
            let stood = secret.and_then(|s| {
                let v = s.versions.last()?;
                let alone = s.versions.iter().filter(|o| o.created == v.created).count() == 1;
                (s.state == SecretState::Live && v.enabled && alone && v.landed < x.start).then_some(v)
            });
            for (id, r) in &listed {
                let Some(c) = self.cred_index(id).map(|i| &self.creds[i]) else {
                    wrong.push(format!("{}: lists {id}, which no issuer ever held", t.name));
                    continue;
                };
                if c.holder != holder {
                    wrong.push(format!("{}: lists {id}, which is another issuer's", t.name));
                }
                let named_by_any = secret.is_some_and(|s| s.versions.iter().any(|v| trimmed(v, p.id_tag) == Some(*id)));
                match r["in_vault"].as_bool() {
                    Some(true) if !named_by_any => wrong
                        .push(format!("{}: says {id} is in the vault, and no version of its secret names it", t.name)),
                    Some(false) if reads_ok && stood.is_some_and(|v| trimmed(v, p.id_tag) == Some(*id)) => {
                        wrong.push(format!(
                            "{}: says {id} is not in the vault, and the latest version {} names it",
                            t.name,
                            stood.map(|v| v.short()).unwrap_or_default()
                        ))
                    }
                    _ => {}
                }
            }
        }
        self.untrue(inv, format!("tokens {inv}"), "its tokens rows are untrue", &wrong, "");
    }

    /// Invariant 13 for what `tokens` tells the operator beside its rows: a secret "reads as
    /// absent" only after a read of it answered 404, and the identity it runs as is the
    /// invocation's.
    pub(crate) fn check_tokens_notes(&mut self, inv: u32, notes: &[(String, String)], me: Option<&str>) {
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        let mut wrong: Vec<String> = Vec::new();
        for (target, note) in notes {
            if note.contains("reads as absent") && !x.per.get(target).is_some_and(|p| p.saw_absent) {
                wrong.push(format!("{target}: says its secret reads as absent, and no read of it answered 404"));
            }
        }
        if let Some(me) = me
            && me != x.identity
        {
            wrong.push(format!("says it runs as {me:?}, and it runs as {}", x.identity));
        }
        self.untrue(inv, format!("tokens notes {inv}"), "tokens says what is not so", &wrong, "");
    }

    /// Invariant 13 for `tokens --revoke` (contract §10): every id it reports revoked is gone;
    /// an id it reports found nowhere is held by none of the selected targets' issuers.
    pub(crate) fn check_revoke_report(&mut self, inv: u32, revoked: &[String], errors: &[String]) {
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        let mut wrong: Vec<String> = Vec::new();
        for id in revoked {
            if self.cred_index(id).is_none_or(|i| self.live(&self.creds[i])) {
                wrong.push(format!("reports {id} revoked, and it is not gone"));
            }
        }
        if revoked.is_empty() && errors.is_empty() {
            wrong.push("it says nothing: no id revoked, and no reason".into());
        }
        for e in errors {
            let Some(id) = e.strip_suffix(" was found in no selected target's workspace") else { continue };
            // Held from before the invocation began until at least its end, or revoked by it,
            // by an issuer that stood still meanwhile (else the pages may have shifted).
            let held = self.cred_index(id).map(|i| &self.creds[i]).is_some_and(|c| {
                let since = self.issuer_at(&c.holder, x.start);
                x.targets.iter().any(|t| t.holder() == c.holder)
                    && self.issuer_still(&c.holder, x.start, Some(inv))
                    && c.created + Duration::seconds(1) < since
                    && c.expires.is_none_or(|e| e > self.issuer_at(&c.holder, self.now()))
                    && c.death.as_ref().is_none_or(|d| d.by == Some(inv))
            });
            if held || revoked.iter().any(|r| r == id) {
                wrong.push(format!("reports {id} found nowhere, and a selected target's issuer held it throughout"));
            }
        }
        self.untrue(inv, format!("revoke report {inv}"), "its tokens --revoke report is untrue", &wrong, "");
    }

    /// Invariant 13 for a warning of target `target` (contract §9, §10): the credentials it
    /// calls unrecorded are its issuer's, and no version of a configured secret that stood
    /// when the invocation began records them.
    pub(crate) fn check_warning_claims(&mut self, inv: u32, target: &str, text: &str) {
        let mut wrong: Vec<String> = Vec::new();
        // "the issuer granted a lifetime of N days, shorter than the M requested": N < M.
        if let Some(rest) = text.split_once("granted a lifetime of ").map(|(_, r)| r)
            && let Some((n, rest)) = rest.split_once(" days, shorter than the ")
            && let (Ok(n), Some(Ok(m))) = (n.parse::<i64>(), rest.split_whitespace().next().map(|m| m.parse::<i64>()))
            && n >= m
        {
            wrong.push(format!("it calls a lifetime of {n} days shorter than {m}"));
        }
        // "owner changed: the secret's … belongs to A (tag …), this target's …s now belong to B;":
        // A is not B.
        if let Some(rest) = text.split_once("owner changed: ").map(|(_, r)| r)
            && let Some(a) = rest.split_once(" belongs to ").and_then(|(_, r)| r.split_once(" (tag ")).map(|(a, _)| a)
            && let Some(b) = rest.split_once(" now belong to ").and_then(|(_, r)| r.split_once(';')).map(|(b, _)| b)
            && a == b
        {
            wrong.push(format!("it says the owner changed, from {a} to {b}"));
        }
        if !wrong.is_empty() {
            self.untrue(
                inv,
                format!("claim {inv} {target}"),
                "a warning says what is not so",
                &wrong,
                &format!(": {text}"),
            );
            return;
        }
        const UNRECORDED: &str = "that no version of this secret or of another configured target's records: ";
        let Some(rest) = text.split_once(UNRECORDED).map(|(_, r)| r) else { return };
        let Some(list) = rest.split_once(". pat-rotator never deletes").map(|(l, _)| l) else { return };
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        let Some(t) = x.targets.iter().find(|t| t.name == target) else { return };
        for id in list.split(", ").filter_map(|p| p.split_whitespace().next()) {
            let Some(c) = self.cred_index(id).map(|i| &self.creds[i]) else {
                wrong.push(format!("{id} is no credential any issuer holds"));
                continue;
            };
            if c.holder != t.holder() {
                wrong.push(format!("{id} is another issuer's"));
            }
            let recorded_by = x.configured.iter().filter(|u| u.holder() == t.holder()).find_map(|u| {
                let (h, n) = u.secret_key();
                let s = self.secret(&h, &n).filter(|s| s.state == SecretState::Live)?;
                let p = u.profile();
                s.versions
                    .iter()
                    .find(|v| {
                        v.landed < x.start
                            && (trimmed(v, p.id_tag) == Some(id) || trimmed(v, p.previous_tag) == Some(id))
                    })
                    .map(|v| format!("{}/{} {}", h, n, v.short()))
            });
            if let Some(v) = recorded_by {
                wrong.push(format!("{id} is recorded by {v}"));
            }
        }
        let what = "a warning calls credentials unrecorded untruly";
        self.untrue(inv, format!("unrecorded {inv} {target}"), what, &wrong, &format!(": {text}"));
    }

    fn inv_label(&self, inv: u32) -> String {
        self.invs.get(&inv).map(|i| i.label()).unwrap_or_else(|| "no invocation".into())
    }

    // ---- invariants 6, 7, 8: what an invocation may do --------------------------------

    /// Whether invocation `inv` may change anything; reports the change if not.
    fn may_change(&mut self, inv: u32, what: &str) -> bool {
        let Some(i) = self.invs.get(&inv) else {
            self.violate(6, None, format!("{what} without an invocation (unattributed)"));
            return false;
        };
        if i.kind.may_change() {
            return true;
        }
        let label = i.label();
        self.violate(
            6,
            None,
            format!("{} ({label}) {what}: a dry run, status or tokens changes nothing", Self::who(inv)),
        );
        false
    }

    /// A write of a version naming `value` was sent at true time `sent` (invariants 6, 8).
    pub(crate) fn check_write(
        &mut self,
        inv: u32,
        host: &str,
        name: &str,
        sent: Duration,
        value: &str,
        _tags: &BTreeMap<String, String>,
    ) {
        let short = host.split('.').next().unwrap_or_default().to_string();
        if !self.may_change(inv, &format!("wrote {short}/{name}")) {
            return;
        }
        // Invariant 14: a run writes one credential at most PAT_RETRY_ATTEMPTS times.
        if let Some(x) = self.invs.get_mut(&inv) {
            let n = x.writes_of.entry(value.to_string()).or_default();
            *n += 1;
            let (n, dep) = (*n, x.dep);
            let attempts = self.sc.deployments[dep].settings.retry_attempts.max(1);
            if n > attempts {
                let label = self.inv_label(inv);
                self.violate(
                    14,
                    Some(format!("writes {inv} {name}")),
                    format!(
                        "{} ({label}) wrote one credential to {short}/{name} {n} times, more than PAT_RETRY_ATTEMPTS ({attempts})",
                        Self::who(inv)
                    ),
                );
            }
        }
        if let Some(x) = self.invs.get(&inv).cloned() {
            let mine: Vec<&TargetView> =
                x.targets.iter().filter(|t| t.vault == host && t.secret.eq_ignore_ascii_case(name)).collect();
            if mine.is_empty() {
                self.violate(
                    10,
                    Some(format!("foreign write {inv} {name}")),
                    format!(
                        "{} ({}) wrote {short}/{name}, the secret of none of its targets",
                        Self::who(inv),
                        x.label()
                    ),
                );
            }
            for t in mine {
                if let Some(v) = self.held_back(&x, t) {
                    self.violate(
                        10,
                        Some(format!("guard write {inv} {}", t.name)),
                        format!(
                            "{} ({}, as {}) wrote {short}/{name} over the managed latest version {} that {} wrote (contract §10's guard)",
                            Self::who(inv),
                            x.label(),
                            x.identity,
                            v.short(),
                            v.tag(tags::ROTATED_BY).unwrap_or_default()
                        ),
                    );
                }
            }
        }
        let Some(i) = self.cred_by_value(value) else { return };
        let c = self.creds[i].clone();
        if c.made_by.is_none() {
            return;
        }
        // By the workspace's clock (contract §7.4): an OAuth secret's creation time comes from
        // the accounts service, its verification's `Date` from the workspace.
        let ws =
            self.invs.get(&inv).and_then(|x| x.targets.iter().find(|t| t.holder() == c.holder).map(|t| t.ws.clone()));
        let by_clock = match ws {
            Some(ws) => self.ws_at(&ws, sent) - c.created,
            None => self.issuer_at(&c.holder, sent) - c.created,
        };
        // Without the workspace's `Date` the contract measures the time since the create
        // request was sent instead: a program may use either, so both must be over.
        let age = by_clock.min(sent - c.requested);
        // The issuer's `Date` has whole seconds: a credential may look up to a second younger.
        if age > MAX_UNWRITTEN_AGE + Duration::seconds(2) {
            // What the process's own clocks could tell of the time since the create was sent:
            // its monotonic clock does not count a suspension, its wall clock may have been
            // stepped back meanwhile. When neither shows 30 minutes and no answer since carried
            // a service's `Date`, nothing in the process could know: an observation.
            if let Some(p) = self.invs.get(&inv).map(|x| x.process) {
                let suspended: Duration =
                    self.jumps.iter().filter(|(at, _)| *at >= c.requested && *at < sent).map(|(_, d)| *d).sum();
                let monotonic = sent - c.requested - suspended;
                let wall = self.local_at(p, sent) - self.local_at(p, c.requested);
                if monotonic.max(wall) <= MAX_UNWRITTEN_AGE {
                    self.observe(
                        "a credential written over 30 minutes old: the process was suspended and its wall clock stepped back meanwhile, so none of its clocks could tell",
                        format!(
                            "{} wrote {} {} old, but its clocks saw {} (monotonic) and {} (wall)",
                            Self::who(inv),
                            c.id,
                            crate::log::span(age),
                            crate::log::span(monotonic),
                            crate::log::span(wall)
                        ),
                    );
                    return;
                }
            }
            self.violate(
                8,
                Some(format!("old {}", c.id)),
                format!(
                    "{} ({}) wrote {} to {short}/{name} when it was {} old (created {} on its issuer's clock): older than 30 minutes",
                    Self::who(inv),
                    self.inv_label(inv),
                    c.id,
                    crate::log::span(age),
                    at(c.created - crate::world::EPOCH)
                ),
            );
        }
    }

    /// The version contract §10's guard holds invocation `x` back from for target `t`, if it
    /// does: `x` is guarded, and every read of `t`'s secret it made showed a managed latest
    /// version another identity wrote.
    fn held_back(&self, x: &crate::world::Inv, t: &TargetView) -> Option<Version> {
        let p = x.per.get(&t.name)?;
        if !x.kind.guarded() || p.guard_clear {
            return None;
        }
        p.guarded.clone()
    }

    /// Whether invocation `x`, not forced, finds target `t` not due (invariant 7), by the
    /// checker's own reading of §7 on the first read of `t`'s secret `x` got.
    fn not_due(&self, x: &crate::world::Inv, t: &TargetView, near_expiry: bool) -> Option<String> {
        let per = x.per.get(&t.name)?;
        let reads = &per.reads;
        if reads.is_empty() {
            return None;
        }
        // Neither service dated its answer: the expiry can only be judged on the local clock
        // (the contract reserves the services' clocks for ages and grace), and a skewed local
        // clock may find the target due early. Not judged.
        let listing_dated = x.listing_dated.get(&t.holder()).copied().unwrap_or(false);
        if !listing_dated && matches!(&per.first_read, Some(Some(r)) if r.vault_at.is_none()) {
            return None;
        }
        // A listing in pages made while a credential of the issuer came or went may miss the
        // one the latest version names (listed twice, both shifted: seeds 117393, 132843), and
        // the run rightly takes it for revoked in the workspace and reprovisions. Not judged.
        if !self.issuer_still(&t.holder(), x.start, Some(x.id)) {
            return None;
        }
        let mut why = None;
        for r in reads {
            why = Some(self.not_due_by(t, r.as_ref()?, near_expiry)?);
        }
        why
    }

    /// Whether one read of `t`'s secret shows `t` not due.
    fn not_due_by(&self, t: &TargetView, read: &crate::world::SeenRead, near_expiry: bool) -> Option<String> {
        let v = &read.version;
        let p = t.profile();
        let managed = trimmed(v, tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE)
            && v.content_type.as_deref() == Some(p.content_type);
        if !managed || !v.enabled {
            return None;
        }
        let n = trimmed(v, p.id_tag).and_then(|n| self.cred_index(n))?;
        let c = &self.creds[n];
        if c.value != v.value || !self.is_targets(t, c) || !self.live(c) {
            return None;
        }
        let left = c.expires? - self.issuer_at(&c.holder, self.now());
        if left <= t.renew_before + Duration::days(1) {
            return None;
        }
        // A near-expiry or expired event rotates within 30 days of `exp` as Key Vault states it.
        if near_expiry {
            let vault_now = read.vault_at.unwrap_or_else(|| self.vault_now(&t.vault)).unix_timestamp();
            if v.exp.is_none_or(|e| e - vault_now <= Duration::days(31).whole_seconds()) {
                return None;
            }
        }
        let created = time::OffsetDateTime::from_unix_timestamp(v.created).unwrap_or(crate::world::EPOCH);
        Some(format!(
            "the version it read ({}, created {}) names {}, which expires in {} (renew before {})",
            v.short(),
            at(created - crate::world::EPOCH),
            c.id,
            crate::log::span(left),
            crate::log::span(t.renew_before)
        ))
    }

    /// Invocation `inv` created credential `i` (invariants 6, 7, 10).
    pub(crate) fn check_create(&mut self, inv: u32, i: usize) {
        let id = self.creds[i].id.clone();
        if !self.may_change(inv, &format!("created {id}")) {
            return;
        }
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        let c = self.creds[i].clone();
        // The targets this credential may be for: of its issuer, and (a PAT) named by its comment.
        let fors: Vec<TargetView> = x
            .targets
            .iter()
            .filter(|t| {
                t.holder() == c.holder
                    && c.comment.as_deref().is_none_or(|m| m.starts_with(&format!("pat-rotator/{}/", t.name)))
            })
            .cloned()
            .collect();
        if fors.is_empty() {
            return;
        }
        // Invariant 10: the guard holds every one of them back.
        let held: Vec<(TargetView, Version)> =
            fors.iter().filter_map(|t| self.held_back(&x, t).map(|v| (t.clone(), v))).collect();
        if held.len() == fors.len() {
            let (t, v) = &held[0];
            self.violate(
                10,
                Some(format!("guard create {inv} {}", t.name)),
                format!(
                    "{} ({}, as {}) created {id} for {} although its latest version {} is managed and {} wrote it (contract §10's guard)",
                    Self::who(inv),
                    x.label(),
                    x.identity,
                    t.name,
                    v.short(),
                    v.tag(tags::ROTATED_BY).unwrap_or_default()
                ),
            );
            return;
        }
        // Invariant 7: a run that is not forced, for a target that is not due.
        let cooldown = Duration::minutes(self.sc.deployments[x.dep].settings.cooldown_minutes as i64);
        let unforced = |t: &TargetView| -> Option<bool> {
            match x.kind {
                InvKind::Timer | InvKind::Cli { force: false, .. } | InvKind::Provision { force: false, .. } => {
                    Some(false)
                }
                InvKind::Event { near_expiry } => Some(near_expiry),
                InvKind::Provision { force: true, dry_run: false } => {
                    let Some(Some(read)) = x.per.get(&t.name).and_then(|p| p.first_read.clone()) else { return None };
                    let created =
                        time::OffsetDateTime::from_unix_timestamp(read.version.created).unwrap_or(crate::world::EPOCH);
                    let inside = cooldown > Duration::ZERO && read.vault_at.is_none_or(|d| d - created < cooldown);
                    inside.then_some(false)
                }
                _ => None,
            }
        };
        let why: Vec<(String, String)> = fors
            .iter()
            .filter_map(|t| unforced(t).and_then(|near| self.not_due(&x, t, near)).map(|w| (t.name.clone(), w)))
            .collect();
        if why.len() == fors.len() {
            let (name, w) = &why[0];
            let forced_inside = matches!(x.kind, InvKind::Provision { force: true, .. });
            self.violate(
                7,
                Some(format!("not due {inv} {name}")),
                format!(
                    "{} ({}) created {id} for {name} although {}: {w}",
                    Self::who(inv),
                    x.label(),
                    if forced_inside {
                        format!(
                            "it is forced inside the {} cooldown and the target is not due",
                            crate::log::span(cooldown)
                        )
                    } else {
                        "it is not forced and the target is not due".to_string()
                    }
                ),
            );
        }
    }

    /// Invariant 12: every error code a target of invocation `inv` ended with that names an
    /// upstream condition (contract §5) is one the world's answers to that invocation showed —
    /// a throttle for `throttled`, a soft-deleted secret for `keyvault_secret_deleted`, a
    /// refusal of the workspace for `databricks_*` — by the checker's own classification of
    /// each answer ([`World::classify`]), never the code's.
    fn check_codes(&mut self, inv: u32) {
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        for (name, code) in &x.codes {
            let shown: &[&str] = match code.as_str() {
                "throttled" => &["throttle"],
                "upstream_unavailable" => &["5xx", "throttle", "refused", "hang", "slow", "mi_error"],
                "keyvault_forbidden" => &["kv_4xx"],
                "keyvault_secret_deleted" => &["kv_deleted"],
                "databricks_quota_exceeded" => &["db_quota"],
                "databricks_lifetime_too_long" => &["db_lifetime"],
                // Databricks answers 403 for a token it no longer accepts, as the issuers read it.
                "databricks_unauthorized" => &["db_401", "db_403"],
                "databricks_forbidden" => &["db_403"],
                // Also the code's own judgements, not only readings of an answer: `timeout` (the
                // invocation's deadline, on a process that may have been suspended),
                // `identity_unavailable` (the credential's own time limit, or a cached failure),
                // `keyvault_error` (a version another writer put there during a write),
                // `databricks_error`, and decisions judged by invariants 7 and 10.
                _ => continue,
            };
            if !shown.iter().any(|t| x.trouble.contains(t)) {
                let seen: Vec<&str> = x.trouble.iter().copied().collect();
                self.violate(
                    12,
                    Some(format!("code {inv} {name}")),
                    format!(
                        "{} ({}) ended {name} with {code}, which no answer the world gave it shows (it saw: {})",
                        Self::who(inv),
                        x.label(),
                        if seen.is_empty() { "no trouble".to_string() } else { seen.join(", ") }
                    ),
                );
            }
        }
    }

    /// A version that pat-rotator's invocation `by` stored (invariant 9).
    pub(crate) fn check_tags(&mut self, by: u32, host: &str, name: &str, v: &Version) {
        let Some(x) = self.invs.get(&by).cloned() else { return };
        let short = host.split('.').next().unwrap_or_default().to_string();
        let via = match x.kind {
            InvKind::Timer => "RotatePat",
            InvKind::Provision { .. } => "ProvisionPat",
            InvKind::Cli { .. } => "cli",
            InvKind::Event { .. } => "SecretEvent",
            _ => "(nothing: this invocation writes nothing)",
        };
        let mut wrong = Vec::new();
        if v.tag(tags::MANAGED_BY) != Some(tags::MANAGED_BY_VALUE) {
            wrong.push(format!("managed-by {:?}", v.tag(tags::MANAGED_BY)));
        }
        let writer = v.writer.clone().unwrap_or_default();
        if v.tag(tags::ROTATED_BY) != Some(writer.as_str()) {
            wrong.push(format!("rotated-by {:?} but {writer} wrote it", v.tag(tags::ROTATED_BY)));
        }
        if v.tag(tags::ROTATED_VIA) != Some(via) {
            wrong.push(format!("rotated-via {:?} for a {} run", v.tag(tags::ROTATED_VIA), x.kind.label()));
        }
        let held = self.cred_by_value(&v.value).map(|i| self.creds[i].id.clone());
        let named = crate::world::keyvault_named_id(v).map(str::to_string);
        if named.is_none() || named != held {
            wrong.push(format!("its id tag names {named:?} but its value is {held:?}"));
        }
        if !wrong.is_empty() {
            self.violate(
                9,
                Some(format!("tags {}", v.id)),
                format!("{} ({}) stored {short}/{name} {}: {}", Self::who(by), x.label(), v.short(), wrong.join("; ")),
            );
        }
    }

    // ---- invariants 1 and 5: revocations ----------------------------------------------

    /// What consumers may rely on credential `value` for right now: each version naming it
    /// that is the latest of its secret or was superseded less than the grace ago, with
    /// whether it is a late landing after `since` on a secret with grace 0 (see
    /// [`World::late_landing`]).
    fn open_obligations(&self, value: &str, since: Duration) -> Vec<Obligation> {
        let mut open = Vec::new();
        for (host, vault) in &self.vaults {
            let vault_now = self.vault_now(host).unix_timestamp();
            for s in vault.secrets.values() {
                for (i, v) in s.versions.iter().enumerate() {
                    if v.value != value {
                        continue;
                    }
                    let short = host.split('.').next().unwrap_or_default();
                    let late = v.late && v.landed >= since && s.grace == Duration::ZERO;
                    let secret = (host.clone(), s.name.to_ascii_lowercase());
                    match s.versions.get(i + 1) {
                        None => open.push(Obligation {
                            text: format!("{short}/{} {} is the latest version", s.name, v.short()),
                            late,
                            secret,
                            latest: true,
                        }),
                        Some(next) if vault_now < next.created + s.grace.whole_seconds() => open.push(Obligation {
                            text: format!(
                                "{short}/{} {} was superseded by {} at {}, grace {} runs to {}",
                                s.name,
                                v.short(),
                                next.short(),
                                at(next.landed),
                                crate::log::span(s.grace),
                                at(next.landed + s.grace)
                            ),
                            late,
                            secret,
                            latest: false,
                        }),
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

    /// Invariant 1(a): the latest version of a configured secret names `c`, and the invocation
    /// could have read it (it was the latest when the invocation began, or for more than
    /// [`REREAD`]), whatever kind of revocation this is.
    fn protected_by(&self, inv: u32, c: &Cred) -> Option<String> {
        let x = self.invs.get(&inv)?;
        let now = self.now();
        for t in &x.configured {
            // The revoking target reads its own secret when its run begins (step 1); another
            // configured secret is read before the first revocation and again once that read
            // is ten minutes old (§7.4(a)).
            let own = x.targets.iter().any(|u| u.name == t.name && u.key == t.key && self.is_targets(u, c));
            let since = if own { x.start } else { x.start.max(now - REREAD) };
            let (h, n) = t.secret_key();
            let Some(s) = self.secret(&h, &n) else { continue };
            for v in World::latest_set(s) {
                let names = crate::world::keyvault_named_id(v) == Some(c.id.as_str());
                if !(names && v.landed < since) {
                    continue;
                }
                let state = match s.state {
                    SecretState::Live if v.enabled => String::new(),
                    SecretState::Live => " (disabled)".into(),
                    SecretState::Deleted => " (soft-deleted)".into(),
                    SecretState::Recovering => " (being recovered)".into(),
                };
                return Some(format!(
                    "the latest version {} of configured secret {} (target {}){state} names it since {}",
                    v.short(),
                    t.where_(),
                    t.name,
                    at(v.landed)
                ));
            }
        }
        None
    }

    /// How many of `t`'s credentials invocation `inv` knew to be live: its last listing of
    /// `t`'s issuer, plus what it created for `t` since (and is live) — or, when the issuer
    /// refused its create as full and it has not created one yet, the one it makes room for.
    fn cap_count(&self, inv: u32, t: &TargetView) -> usize {
        let Some(x) = self.invs.get(&inv) else { return 0 };
        let listed: Vec<&String> = x.listings.get(&t.holder()).map(|l| l.iter().collect()).unwrap_or_default();
        let mut ids: BTreeSet<String> = listed
            .iter()
            .filter_map(|id| self.cred_index(id))
            .filter(|i| self.is_targets(t, &self.creds[*i]))
            .map(|i| self.creds[i].id.clone())
            .collect();
        let mut made = false;
        for i in &x.created {
            let c = &self.creds[*i];
            if self.live(c) && self.is_targets(t, c) {
                ids.insert(c.id.clone());
                made = true;
            }
        }
        ids.len() + usize::from(!made && x.full.contains(&t.holder()))
    }

    /// Invocation `inv` revokes credential `i` (invariants 1, 5, 6). Returns the exception
    /// that excuses it, if any, and whether no consumer relied on it.
    pub(crate) fn check_revoke(&mut self, inv: u32, i: usize) -> (Option<Exception>, bool) {
        let c = self.creds[i].clone();
        if !self.may_change(inv, &format!("revoked {}", c.id)) {
            return (None, false);
        }
        let x = self.invs[&inv].clone();
        let label = x.label();
        let protected = self.protected_by(inv, &c);
        if let Some(why) = &protected {
            self.violate(
                1,
                Some(c.id.clone()),
                format!("{} ({label}) revoked {} while {why} (protection (a))", Self::who(inv), c.id),
            );
        }
        let protected = protected.is_some();
        // The targets of the invocation whose credential it is (several only for OAuth secrets
        // recorded by two targets' secrets on one principal, after a copy).
        let owners: Vec<TargetView> = x.targets.iter().filter(|t| self.is_targets(t, &c)).cloned().collect();
        if x.kind.rotates() && c.made_by != Some(inv) && owners.is_empty() {
            self.violate(
                5,
                Some(c.id.clone()),
                format!(
                    "{} ({label}) revoked {} {:?} ({:?}), which is none of its targets' by contract §6/§9",
                    Self::who(inv),
                    c.id,
                    c.comment.as_deref().unwrap_or("(no comment)"),
                    c.holder
                ),
            );
        }
        let claimed = |t: &TargetView| x.per.get(&t.name).is_some_and(|p| p.cap_ids.contains(&c.id));
        let mut excuse = if x.kind == InvKind::TokensRevoke {
            Some(Exception::TokensRevoke)
        } else if matches!(x.kind, InvKind::Cli { revoke_superseded: true, .. })
            && owners.iter().any(|t| x.per.get(&t.name).is_some_and(|p| p.wrote))
        {
            Some(Exception::RevokeSuperseded)
        } else if let Some(t) =
            owners.iter().find(|t| t.kind == Kind::Pat && claimed(t) && self.cap_count(inv, t) > CAP)
        {
            // The count that justified it must still hold (the target has more than 6 live,
            // counting the credential it makes room for), or come from a listing taken after
            // the run's last create and verification: then a revocation that raced it since is
            // the one race no program closes, recorded as an observation. A count from before
            // (the first listing, trusted through a create, a verification and a write) that
            // the truth contradicts is no cap.
            let mut truth = self.creds.iter().filter(|x| self.live(x) && self.is_targets(t, x)).count();
            let made = x.created.iter().any(|i| self.live(&self.creds[*i]) && self.is_targets(t, &self.creds[*i]));
            if !made && x.full.contains(&t.holder()) {
                truth += 1;
            }
            let fresh = x.listing_req.get(&t.holder()).is_some_and(|l| x.last_call.get(&t.name).is_none_or(|c| l > c));
            if truth > CAP {
                Some(Exception::Cap)
            } else if fresh {
                self.observe(
                    "a cap revocation found the target at or below the cap (its fresh count raced a concurrent revocation)",
                    format!("{} revoked {} for the cap while {} held {truth} live", Self::who(inv), c.id, t.where_()),
                );
                Some(Exception::Cap)
            } else {
                None
            }
        } else {
            None
        };
        if excuse.is_none() {
            self.check_usage(&x, &owners, &c);
        }
        let mut open = self.open_obligations(&c.value, x.start);
        // What another secret's versions name is that secret's business only as far as the
        // contract says: §7.4(a) protects the latest version of each configured secret (checked
        // above, with the contract's timing); a superseded version of another secret (a copy),
        // or the latest of one no longer configured or written after the revoking run read it,
        // keeps nothing. Those consumers lose the credential: an observation (sim/README.md,
        // "Findings"), not a pass — the target's own secret is held to its grace in full.
        // The owner whose own secret asks least: any of them may have been the one revoking.
        let owner = owners.iter().min_by_key(|t| open.iter().filter(|o| o.secret == t.secret_key()).count()).cloned();
        if let Some(own) = owner.as_ref().map(|t| t.secret_key()) {
            let others: Vec<Obligation> = open.iter().filter(|o| o.secret != own).cloned().collect();
            open.retain(|o| o.secret == own);
            if excuse.is_none() && !protected && !others.is_empty() {
                excuse = open.is_empty().then_some(Exception::Copy);
                for o in others {
                    let what = if o.latest {
                        "a copy in a secret the contract does not protect (not configured, or written after the read) loses its credential"
                    } else {
                        "a copy superseded inside its grace loses its credential (§7.4(a) protects only the latest version)"
                    };
                    self.observe(what, format!("{} revoked {}, its target's, while {}", Self::who(inv), c.id, o.text));
                }
            }
        }
        let texts = open.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join("; ");
        if !open.is_empty() {
            match excuse {
                Some(e) => self.count(e, |_| format!("{} revoked {} while {texts}", Self::who(inv), c.id)),
                None if open.iter().all(|o| o.late) => self.late_landing(
                    Duration::ZERO,
                    format!(
                        "{} revoked {} after its reads, and then {texts} (a write without an answer landed late)",
                        Self::who(inv),
                        c.id
                    ),
                ),
                None => {
                    let holders = self.holders(&c.id);
                    let claim = match &owner {
                        Some(t) if x.per.get(&t.name).is_some_and(|p| p.cap_ids.contains(&c.id)) => format!(
                            " (announced as over the cap, but its last listing plus its new credential count {} of {}'s)",
                            self.cap_count(inv, t),
                            t.name
                        ),
                        _ => String::new(),
                    };
                    self.violate(
                        1,
                        Some(c.id.clone()),
                        format!("{} ({label}) revoked {} while {texts}{holders}{claim}", Self::who(inv), c.id),
                    );
                }
            }
        }
        (excuse, open.is_empty())
    }

    /// Invariant 11: invocation `x` revokes `c`, a superseded token of a `keep_while_used`
    /// target among `owners`, with no exception of §7.4 for it.
    fn check_usage(&mut self, x: &crate::world::Inv, owners: &[TargetView], c: &Cred) {
        if matches!(x.kind, InvKind::Cli { revoke_superseded: true, .. } | InvKind::TokensRevoke) || !x.kind.rotates() {
            return;
        }
        let now = self.now();
        for t in owners.iter().filter(|t| t.keep_while_used && t.kind == Kind::Pat) {
            if x.usage_forbidden.contains(&t.ws) {
                continue;
            }
            let (h, n) = t.secret_key();
            let Some(s) = self.secret(&h, &n) else { continue };
            // When its version of the target's own secret was superseded, by the contract's
            // measure (the successor's `created`, Key Vault's whole seconds) and its earliest
            // reading: a version of the same second may be taken as the successor.
            let Some(last) = s.versions.iter().filter(|v| v.value == c.value).map(|v| v.created).max() else {
                continue;
            };
            let Some(next) =
                s.versions.iter().filter(|v| v.value != c.value && v.created >= last).map(|v| v.created).min()
            else {
                continue;
            };
            let since =
                self.vault_now(&h) - time::OffsetDateTime::from_unix_timestamp(next).unwrap_or(crate::world::EPOCH);
            if since >= t.renew_before - Duration::minutes(2) {
                continue;
            }
            if c.expires.is_some_and(|e| e - self.issuer_at(&c.holder, now) < Duration::minutes(2)) {
                continue;
            }
            let why = match x.usage.get(&c.id) {
                Some(crate::world::UsageSeen::NotInUse | crate::world::UsageSeen::Gone) => continue,
                Some(crate::world::UsageSeen::InUse) => {
                    "its lookup said it was used on the current or the previous day".to_string()
                }
                Some(crate::world::UsageSeen::Keep(w)) => format!("its use could not be told ({w})"),
                None => "it never looked its use up".to_string(),
            };
            self.violate(
                11,
                Some(format!("usage {}", c.id)),
                format!(
                    "{} ({}) revoked {} of keep_while_used target {} ({} after it was superseded, renew before {}) although {why}",
                    Self::who(x.id),
                    x.label(),
                    c.id,
                    t.name,
                    crate::log::span(since),
                    crate::log::span(t.renew_before)
                ),
            );
            return;
        }
    }

    /// Someone other than pat-rotator revokes credential `i`: an exception when consumers
    /// relied on it. Returns whether none did.
    pub(crate) fn check_world_revoke(&mut self, i: usize, why: Exception) -> bool {
        let c = self.creds[i].clone();
        let open = self.open_obligations(&c.value, Duration::ZERO);
        if !open.is_empty() {
            let texts = open.iter().map(|o| o.text.as_str()).collect::<Vec<_>>().join("; ");
            self.count(why, |_| format!("{} revoked while {texts}", c.id));
        }
        open.is_empty()
    }

    // ---- invariant 2 ---------------------------------------------------------------------

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

    /// A version names a credential an invocation revoked while no consumer relied on it: it
    /// can only have landed since — a write without an answer that took effect late. With
    /// grace 0 the contract lets another run revoke the credential at once (README: "With
    /// grace 0 the superseded token is revoked right after the write"), so this is an
    /// observation; with any other grace it cannot happen, and is a violation.
    fn late_landing(&mut self, grace: Duration, what: String) {
        if grace == Duration::ZERO {
            self.observe("late landing on a revoked credential (grace 0)", what);
        } else {
            self.violate(2, None, what);
        }
    }

    /// A version became the latest of its secret.
    pub(crate) fn check_landing(&mut self, by: u32, host: &str, name: &str, idx: usize) {
        let s = self.secret(host, name).expect("just stored");
        let (v, grace) = (s.versions[idx].clone(), s.grace);
        let Some(i) = self.cred_by_value(&v.value) else { return };
        let id = self.creds[i].id.clone();
        match self.fate(i) {
            Fate::Alive | Fate::Expired | Fate::Broke => {}
            Fate::Excused(e) => self.count(e, |_| format!("{} of {name} ({}) lands naming {id}, revoked earlier", v.short(), Self::who(by))),
            // A write whose outcome is unknown may still land (§7.3): its own invocation never
            // deletes its credential.
            Fate::Harmless { by: killer, at: when } if killer == by => self.violate(
                2,
                Some(id.clone()),
                format!("{} of {name} lands naming {id}, which its own {} deleted at {} while the write's outcome was unknown", v.short(), Self::who(by), at(when)),
            ),
            Fate::Harmless { by: killer, at: when } => self.late_landing(
                grace,
                format!("{} of {name} (written by {}) lands naming {id}, which {} revoked at {}", v.short(), Self::who(by), Self::who(killer), at(when)),
            ),
        }
    }

    /// A consumer read a version naming credential `i`.
    pub(crate) fn check_consumer_read(&mut self, who: &str, host: &str, name: &str, v: &Version, i: usize) {
        let id = self.creds[i].id.clone();
        let grace = self.secret(host, name).map(|s| s.grace).unwrap_or_default();
        match self.fate(i) {
            Fate::Alive | Fate::Expired | Fate::Broke => {}
            Fate::Excused(e) => self.count(e, |_| format!("{who} reads {} of {name}: {id} was revoked", v.short())),
            Fate::Harmless { by, at: when } => self.late_landing(
                grace,
                format!(
                    "{who} reads {} of {name}, which names {id}, revoked by {} at {}",
                    v.short(),
                    Self::who(by),
                    at(when)
                ),
            ),
        }
    }

    // ---- at the end of an invocation: invariants 2 and 3 --------------------------------

    pub(crate) fn check_inv_end(&mut self, inv: u32) {
        self.check_codes(inv);
        let Some(x) = self.invs.get(&inv).cloned() else { return };
        if !x.kind.rotates() || !x.kind.may_change() || x.killed {
            return;
        }
        let end = x.end.unwrap_or(x.start);
        for t in &x.targets {
            let Some(p) = x.per.get(&t.name) else { continue };
            if p.ok != Some(true) {
                continue;
            }
            let (host, name) = t.secret_key();
            let latest = self
                .secret(&host, &name)
                .filter(|s| s.state == SecretState::Live)
                .and_then(|s| s.versions.last())
                .cloned();
            if let Some(v) = latest {
                match self.cred_by_value(&v.value) {
                    None => self.violate(
                        2,
                        None,
                        format!(
                            "after {} succeeded for {}, the latest version {} of {name} names no credential",
                            Self::who(inv),
                            t.name,
                            v.short()
                        ),
                    ),
                    Some(i) => {
                        let id = self.creds[i].id.clone();
                        let grace = self.secret(&host, &name).map(|s| s.grace).unwrap_or_default();
                        match self.fate(i) {
                            Fate::Alive | Fate::Expired | Fate::Broke => {}
                            Fate::Excused(e) => self.count(e, |_| format!("after {}, {} names {id}, revoked", Self::who(inv), v.short())),
                            Fate::Harmless { by, at: when } => self.late_landing(
                                grace,
                                format!(
                                    "after {} succeeded for {}, the latest version {} of {name} names {id}, which {} revoked at {}",
                                    Self::who(inv),
                                    t.name,
                                    v.short(),
                                    Self::who(by),
                                    at(when)
                                ),
                            ),
                        }
                    }
                }
            }
            if t.kind != Kind::Pat || !(p.reads_ok && p.revokes_ok && x.reads_all_ok && x.unanswered_reads == 0) {
                continue;
            }
            // Every other invocation of the target that overlapped this one may hold one
            // credential this one's listing did not count (created after it).
            let racing = self
                .invs
                .values()
                .filter(|y| {
                    y.id != inv
                        && y.kind.rotates()
                        && y.targets.iter().any(|u| u.name == t.name && u.key == t.key)
                        && y.start < end
                        && y.end.is_none_or(|e| e > x.start)
                })
                .count();
            // What protection (a) keeps (another configured secret names it) is not the cap's.
            let protected: BTreeSet<String> = x
                .configured
                .iter()
                .filter_map(|u| {
                    let (h, n) = u.secret_key();
                    self.secret(&h, &n).map(|s| (u, s))
                })
                .flat_map(|(u, s)| {
                    let all = World::latest_set(s);
                    // The target's own latest is its to keep; a tie with it, or another secret's
                    // latest, is what protection (a) keeps beyond the cap.
                    let skip = if u.name == t.name { 1 } else { 0 };
                    all.into_iter()
                        .rev()
                        .skip(skip)
                        .filter_map(|v| crate::world::keyvault_named_id(v).map(str::to_string))
                        .collect::<Vec<_>>()
                })
                .collect();
            let live: Vec<String> = self
                .creds
                .iter()
                .filter(|c| self.live(c) && self.is_targets(t, c) && !protected.contains(&c.id))
                .map(|c| c.id.clone())
                .collect();
            let limit = CAP + racing;
            if live.len() > limit {
                self.violate(
                    3,
                    None,
                    format!(
                        "after {} ({}, {}), {} holds {} live tokens (at most {limit}): {}",
                        Self::who(inv),
                        x.label(),
                        if racing == 0 { "alone".to_string() } else { format!("racing {racing} other invocation(s)") },
                        t.where_(),
                        live.len(),
                        live.join(", ")
                    ),
                );
            }
        }
    }

    /// The end of the quiet phase for target `t` (invariant 4): nothing of it is live but what
    /// the latest version of a configured secret names.
    /// Invariant 4, its other half: after the quiet phase the target's latest version is
    /// enabled, managed, of its kind, and holds a live credential of the target's issuer —
    /// unless the secret reads as absent (soft-deleted: only an operator settles it) or the
    /// issuer is full (its quota or a service principal's five secrets: nothing can be created).
    fn check_quiet_working(&mut self, t: &TargetView, latest: &Version) {
        if self.quiet_working(t) {
            return;
        }
        let live =
            self.creds.iter().find(|c| c.value == latest.value).is_some_and(|c| c.holder == t.holder() && self.live(c));
        let (h, n) = t.secret_key();
        let absent = self.secret(&h, &n).is_none_or(|s| s.state != SecretState::Live);
        let held = self.creds.iter().filter(|c| c.holder == t.holder() && self.live(c)).count();
        let limit = match t.kind {
            Kind::Pat => self.quotas.get(&t.ws).copied().unwrap_or(600),
            Kind::OAuth => crate::world::SP_LIMIT,
        };
        let why = format!(
            "after the quiet phase, the latest version {} of {} (target {}) holds no working credential ({}{}{}; its issuer holds {held} of {limit})",
            latest.short(),
            t.where_(),
            t.name,
            if latest.enabled { "enabled" } else { "disabled" },
            if trimmed(latest, tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE) {
                ", managed"
            } else {
                ", not managed"
            },
            if live { ", names a live credential" } else { ", names no live credential" },
        );
        if absent || held >= limit {
            self.observe(
                "after the quiet phase a target's secret reads as absent, or its issuer is full: its latest version waits for an operator",
                why,
            );
        } else {
            self.violate(4, None, why);
        }
    }

    /// Whether target `t`'s latest version (if any) is enabled, managed, of its kind, and holds
    /// a live credential of its issuer.
    pub(crate) fn quiet_working(&self, t: &TargetView) -> bool {
        let Some(latest) = self.latest_of(t) else { return true };
        latest.enabled
            && latest.content_type.as_deref() == Some(t.profile().content_type)
            && trimmed(latest, tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE)
            && self
                .creds
                .iter()
                .find(|c| c.value == latest.value)
                .is_some_and(|c| c.holder == t.holder() && self.live(c))
    }

    /// What of target `t` stays live after a pass though no configured secret's latest version
    /// names it: (how many are kept because they are in use, the others).
    pub(crate) fn quiet_left(&self, t: &TargetView) -> (usize, Vec<String>) {
        let Some(latest) = self.latest_of(t).cloned() else { return (0, Vec::new()) };
        let named: BTreeSet<String> = self
            .configured()
            .iter()
            .filter_map(|u| {
                let (h, n) = u.secret_key();
                self.secret(&h, &n)
            })
            .flat_map(|s| World::latest_set(s).into_iter().map(|v| v.value.clone()).collect::<Vec<_>>())
            .chain(std::iter::once(latest.value))
            .collect();
        // A token of a keep_while_used target that a consumer used on the current or the
        // previous day (by the workspace's clock) is kept while it is used (contract §10).
        let today = self.ws_now(&t.ws).date();
        let yesterday = today.previous_day().unwrap_or(today);
        // So is one whose use cannot be told (never used: no `last_used_day`), for at most
        // `renew_before` after it was superseded.
        let (h, n) = t.secret_key();
        // Its latest reading: the version after the last naming it, or one that names it as
        // the previous credential (a same-second tie may order them either way).
        let prev_tag = t.profile().previous_tag;
        let superseded_at = |c: &Cred| {
            let s = self.secret(&h, &n)?;
            let i = s.versions.iter().rposition(|v| v.value == c.value)?;
            let next = s.versions.get(i + 1).map(|v| v.landed);
            let named_prev = s.versions.iter().find(|v| v.tag(prev_tag) == Some(c.id.as_str())).map(|v| v.landed);
            next.into_iter().chain(named_prev).max()
        };
        let now = self.now();
        let in_use: BTreeSet<String> = self
            .creds
            .iter()
            .filter(|c| {
                t.keep_while_used
                    // (a run judges by the `Date` of a read made up to minutes before now)
                    && superseded_at(c).is_some_and(|at| now - at < t.renew_before + Duration::minutes(10))
                    && c.used.is_none_or(|u| self.ws_at(&t.ws, u).date() >= yesterday)
            })
            .map(|c| c.id.clone())
            .collect();
        let stays = |c: &&Cred| self.live(c) && self.is_targets(t, c) && !named.contains(&c.value);
        let kept = self.creds.iter().filter(stays).filter(|c| in_use.contains(&c.id)).count();
        let left: Vec<String> = self
            .creds
            .iter()
            .filter(stays)
            .filter(|c| !in_use.contains(&c.id))
            .map(|c| format!("{} {:?}", c.id, c.comment.as_deref().unwrap_or("")))
            .collect();
        (kept, left)
    }

    pub(crate) fn check_quiet_end(&mut self, t: &TargetView) {
        let Some(latest) = self.latest_of(t).cloned() else {
            // Never written (a full issuer, say): a read that says "absent" proves nothing, so
            // nothing is revoked for it (contract §7.4); what is left waits for the operator.
            let left = self.creds.iter().filter(|c| self.live(c) && self.is_targets(t, c)).count();
            if left > 0 {
                self.observe(
                    "target never written: its orphans stay (an absent secret proves nothing)",
                    format!("quiet phase: {} was never written; {left} credential(s) of it stay", t.where_()),
                );
            }
            return;
        };
        self.check_quiet_working(t, &latest);
        let (kept, left) = self.quiet_left(t);
        if kept > 0 {
            self.observe(
                "keep_while_used keeps a superseded token in use, or never used (no last_used_day), up to renew_before after its supersession",
                format!("quiet phase: {} keeps {kept} token(s) used on the current or the previous day, or never", t.where_()),
            );
        }
        self.note("checker", |_| format!("quiet phase settled for {}", t.where_()));
        // Another configured secret on the same issuer that reads as absent blocks every
        // revocation its latest version could rule out (contract §7.4(a)), for good while it
        // stays absent: the issuer fills up and only an operator can settle it.
        let blocking: Vec<String> = self
            .configured()
            .iter()
            .filter(|u| !(u.dep == t.dep && u.name == t.name) && u.holder() == t.holder())
            .filter(|u| {
                let (h, n) = u.secret_key();
                self.secret(&h, &n).is_none_or(|s| s.state != SecretState::Live || s.versions.is_empty())
            })
            .map(|u| u.where_())
            .collect();
        if !left.is_empty() && !blocking.is_empty() {
            self.observe(
                "an absent configured secret blocks its issuer's revocations for good (§7.4(a)): an operator must settle it",
                format!("quiet phase: {} keeps {} while {} reads as absent", t.where_(), left.join(", "), blocking.join(", ")),
            );
            return;
        }
        if !left.is_empty() {
            self.violate(
                4,
                None,
                format!(
                    "after the quiet phase, {} (target {}) still holds credentials no configured secret's latest version names: {}",
                    t.where_(),
                    t.name,
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

    use super::*;
    use crate::rng::Rng;
    use crate::scenario::{InitialSecret, Knobs, Scenario};
    use crate::world::{EPOCH, Holder, InvKind, World};

    /// A quiet world (no faults) from the first seed whose scenario `pred` accepts.
    fn world(pred: impl Fn(&Scenario) -> bool) -> World {
        let seed = (0..).find(|s| pred(&Scenario::generate(*s, Knobs::default()))).expect("such a seed");
        let mut w = World::new(Scenario::generate(seed, Knobs::default()), Rng::new(1), true);
        w.quiet = true;
        w
    }

    /// Deployment A with one PAT target whose secret pat-rotator wrote, and a foreign token.
    fn pat_world() -> World {
        world(|s| {
            let t = &s.deployments[0].targets;
            t.len() == 1
                && t[0].kind == Kind::Pat
                && t[0].grace_hours >= 1
                && matches!(s.initial[0], InitialSecret::Managed { legacy: false, previous: None, .. })
                && s.foreign_creds[0] > 0
                && s.other_target_tokens[0] > 0
        })
    }

    fn target(w: &World) -> TargetView {
        w.deployments[0].targets[0].clone()
    }

    fn latest_cred(w: &World) -> usize {
        let v = w.latest_of(&target(w)).unwrap().value.clone();
        w.cred_by_value(&v).unwrap()
    }

    fn begin(w: &mut World, kind: InvKind) -> u32 {
        let t = target(w);
        let p = w.new_process(0, true, crate::world::SERVICE_OID);
        w.begin(0, p, kind, vec![t.clone()], vec![t])
    }

    const CLI: InvKind = InvKind::Cli { force: true, dry_run: false, revoke_superseded: false, take_ownership: false };

    fn invariants(w: &World) -> Vec<u8> {
        w.checker.violations.iter().map(|v| v.invariant).collect()
    }

    /// A new credential of the target, created now by `inv`.
    fn new_cred(w: &mut World, inv: u32, age: Duration) -> usize {
        let t = target(w);
        let a = w.unique_id();
        let comment = pat_rotator::databricks::pat::comment(&t.name, &t.key, &a);
        let at = w.issuer_at(&t.holder(), w.now()) - age;
        let i = w.add_cred(t.holder(), Some(comment), at, Duration::days(5), (inv > 0).then_some(inv));
        w.creds[i].requested = w.now() - age;
        if let Some(x) = w.invs.get_mut(&inv) {
            x.created.push(i);
        }
        i
    }

    #[test]
    fn revoking_what_the_latest_version_names_breaks_invariant_1() {
        let mut w = pat_world();
        let inv = begin(&mut w, InvKind::Timer);
        let i = latest_cred(&w);
        w.kill_by_inv(inv, i);
        assert_eq!(invariants(&w), [1], "{:?}", w.checker.violations);
        assert!(w.checker.violations[0].text.contains("protection (a)"), "{:?}", w.checker.violations);
        // tokens --revoke is exempt from the grace, never from (a).
        let mut w = pat_world();
        let inv = begin(&mut w, InvKind::TokensRevoke);
        let i = latest_cred(&w);
        w.kill_by_inv(inv, i);
        assert_eq!(invariants(&w), [1]);
    }

    #[test]
    fn revoking_another_targets_or_a_foreign_token_breaks_invariant_5() {
        let mut w = pat_world();
        let inv = begin(&mut w, InvKind::Timer);
        for not_ours in ["pat-rotator/finance/", "Terraform", "ci job", "notebook"] {
            if let Some(i) = (0..w.creds.len())
                .find(|i| w.live(&w.creds[*i]) && w.creds[*i].comment.as_deref().is_some_and(|m| m.contains(not_ours)))
            {
                w.kill_by_inv(inv, i);
            }
        }
        assert!(!invariants(&w).is_empty() && invariants(&w).iter().all(|i| *i == 5), "{:?}", w.checker.violations);
        // tokens --revoke may revoke anything (a) does not protect.
        let mut w = pat_world();
        let inv = begin(&mut w, InvKind::TokensRevoke);
        let i = (0..w.creds.len()).find(|i| w.creds[*i].comment.as_deref() == Some("ci job")).unwrap_or(0);
        let protected = i == latest_cred(&w);
        w.kill_by_inv(inv, i);
        assert_eq!(invariants(&w).is_empty(), !protected);
    }

    #[test]
    fn a_cap_claim_is_checked_not_trusted() {
        // The claim, and six of the target's credentials in the invocation's last listing
        // (five plus the latest's): not over the cap of 6.
        let setup = |extra: usize| {
            let mut w = pat_world();
            let inv = begin(&mut w, CLI);
            let latest = latest_cred(&w);
            let mut ids = vec![w.creds[latest].id.clone()];
            let older = new_cred(&mut w, 0, Duration::hours(3));
            ids.push(w.creds[older].id.clone());
            for _ in 0..4 + extra {
                let c = new_cred(&mut w, 0, Duration::hours(2));
                ids.push(w.creds[c].id.clone());
            }
            // The superseded one: named by a version superseded a minute ago (inside the grace).
            let t = target(&w);
            let (h, n) = t.secret_key();
            let mut v = w.latest_of(&t).unwrap().clone();
            v.value = w.creds[older].value.clone();
            v.tags.insert(t.profile().id_tag.to_string(), w.creds[older].id.clone());
            let a_minute_ago = (w.vault_now(&h) - Duration::minutes(1)).unix_timestamp();
            let s = w.secret_mut(&h, &n);
            s.versions.insert(s.versions.len() - 1, v);
            s.versions.last_mut().unwrap().created = a_minute_ago;
            w.invs.get_mut(&inv).unwrap().listings.insert(t.holder(), ids);
            w.invs.get_mut(&inv).unwrap().per.get_mut(&t.name).unwrap().cap_ids = vec![w.creds[older].id.clone()];
            (w, inv, older)
        };
        let (mut w, inv, older) = setup(0);
        w.kill_by_inv(inv, older);
        assert_eq!(invariants(&w), [1], "six listed are no cap: {:?}", w.checker.violations);
        let (mut w, inv, older) = setup(1);
        w.kill_by_inv(inv, older);
        assert!(invariants(&w).is_empty(), "{:?}", w.checker.violations);
        assert_eq!(w.checker.exceptions.get(&Exception::Cap), Some(&1));
        // Six listed and a create refused as full: the credential it makes room for is the 7th.
        let (mut w, inv, older) = setup(0);
        let h = target(&w).holder();
        w.invs.get_mut(&inv).unwrap().full.insert(h);
        w.kill_by_inv(inv, older);
        assert!(invariants(&w).is_empty(), "{:?}", w.checker.violations);
    }

    #[test]
    fn a_dry_run_status_or_tokens_that_changes_anything_breaks_invariant_6() {
        for kind in [
            InvKind::Cli { force: true, dry_run: true, revoke_superseded: false, take_ownership: false },
            InvKind::Status,
            InvKind::Tokens,
        ] {
            let mut w = pat_world();
            let inv = begin(&mut w, kind);
            let i = new_cred(&mut w, inv, Duration::ZERO);
            w.check_create(inv, i);
            assert_eq!(invariants(&w), [6], "{kind:?}");
        }
        let mut w = pat_world();
        let inv = begin(
            &mut w,
            InvKind::Cli { force: false, dry_run: true, revoke_superseded: false, take_ownership: false },
        );
        let t = target(&w);
        w.check_write(inv, &t.vault, &t.secret, w.now(), "dapi-no-such-value", &Default::default());
        assert_eq!(invariants(&w), [6]);
        let mut w = pat_world();
        let inv = begin(&mut w, CLI);
        let i = new_cred(&mut w, inv, Duration::ZERO);
        w.check_create(inv, i);
        assert!(invariants(&w).is_empty());
    }

    #[test]
    fn a_forced_provision_inside_the_cooldown_that_creates_breaks_invariant_7() {
        let setup = |age: Duration| {
            let mut w = world(|s| {
                let t = &s.deployments[0].targets;
                t.len() == 1
                    && t[0].kind == Kind::Pat
                    && t[0].lifetime_days == 90
                    && s.deployments[0].settings.cooldown_minutes == 15
                    && matches!(s.initial[0], InitialSecret::Managed { legacy: false, .. })
            });
            let inv = begin(&mut w, InvKind::Provision { force: true, dry_run: false });
            let t = target(&w);
            let mut v = w.latest_of(&t).unwrap().clone();
            let i = latest_cred(&w);
            w.creds[i].expires = Some(w.issuer_at(&t.holder(), w.now()) + Duration::days(80));
            v.created = (w.vault_now(&t.vault) - age).unix_timestamp();
            let read = crate::world::SeenRead { version: v, vault_at: Some(w.vault_now(&t.vault)) };
            w.deliver(inv, crate::wire::Delivered::Read { targets: vec![t.name.clone()], read: Some(read) });
            let c = new_cred(&mut w, inv, Duration::ZERO);
            w.check_create(inv, c);
            w
        };
        assert_eq!(invariants(&setup(Duration::minutes(5))), [7]);
        assert!(invariants(&setup(Duration::minutes(16))).is_empty());
    }

    #[test]
    fn writing_a_credential_older_than_30_minutes_breaks_invariant_8() {
        for (age, broken) in [(Duration::minutes(29), false), (Duration::minutes(31), true)] {
            let mut w = pat_world();
            let inv = begin(&mut w, CLI);
            let i = new_cred(&mut w, inv, age);
            let t = target(&w);
            let value = w.creds[i].value.clone();
            w.check_write(inv, &t.vault, &t.secret, w.now(), &value, &Default::default());
            assert_eq!(invariants(&w).contains(&8), broken, "{age}: {:?}", w.checker.violations);
        }
    }

    #[test]
    fn a_secret_in_any_output_or_upstream_detail_in_a_callers_body_breaks_invariant_0() {
        let mut w = pat_world();
        let inv = begin(&mut w, CLI);
        let i = latest_cred(&w);
        let value = w.creds[i].value.clone();
        w.check_output(inv, "log line", &format!("refused ('{}…')", &value[4..20]));
        assert_eq!(invariants(&w), [0]);
        let basic = azure_core::base64::encode(format!("someone:{value}"));
        w.check_output(inv, "log line", &format!("Authorization: Basic {basic}"));
        w.check_output(inv, "result", "tok-001 revoked; version 3f2a9c4e1b7d of kv-a/databricks-pat");
        assert_eq!(invariants(&w), [0], "the plain line is fine");
        let mut w = pat_world();
        let inv = begin(&mut w, InvKind::Provision { force: false, dry_run: false });
        w.check_caller_body(
            inv,
            &serde_json::json!({"action": "unchanged", "secret_id": "https://kv-a.vault.azure.net/secrets/x/1"}),
        );
        assert!(invariants(&w).is_empty(), "secret_id is the result object's");
        w.check_caller_body(
            inv,
            &serde_json::json!({"warnings": ["reading failed: 503 at https://kv-a.vault.azure.net (activity id 1)"]}),
        );
        assert_eq!(invariants(&w), [0]);
    }

    #[test]
    fn a_late_write_naming_a_token_its_own_invocation_deleted_breaks_invariant_2() {
        let mut w = pat_world();
        let inv = begin(&mut w, CLI);
        let i = new_cred(&mut w, inv, Duration::ZERO);
        // Deleting an unrecorded token of its own is harmless by itself...
        w.kill_by_inv(inv, i);
        assert!(invariants(&w).is_empty(), "{:?}", w.checker.violations);
        // ...but not once the write it had sent lands.
        let t = target(&w);
        let mut v = w.latest_of(&t).unwrap().clone();
        v.value = w.creds[i].value.clone();
        v.by = inv;
        let l = crate::world::Landing {
            host: t.vault.clone(),
            name: t.secret.clone(),
            version: v,
            after: Default::default(),
            inv,
        };
        w.land(l);
        // (The hand-made version's tags are not what pat-rotator writes: invariant 9 too.)
        let broken: Vec<u8> = invariants(&w).into_iter().filter(|&n| n != 9).collect();
        assert_eq!(broken, [2]);
    }

    #[test]
    fn seven_live_tokens_after_an_invocation_alone_break_invariant_3() {
        let mut w = pat_world();
        let inv = begin(&mut w, CLI);
        let t = target(&w);
        let live = w.creds.iter().filter(|c| w.live(c) && w.is_targets(&t, c)).count();
        for _ in live..7 {
            new_cred(&mut w, inv, Duration::minutes(1));
        }
        w.end(
            inv,
            Some((vec![(t.name.clone(), true, "rotated".into(), None, serde_json::Value::Null)], Vec::new(), None)),
        );
        assert_eq!(invariants(&w), [3], "{:?}", w.checker.violations);
    }

    #[test]
    fn an_upstream_code_no_answer_showed_breaks_invariant_12() {
        for (trouble, broken) in [(None, vec![12u8]), (Some("throttle"), vec![])] {
            let mut w = pat_world();
            let inv = begin(&mut w, CLI);
            if let Some(t) = trouble {
                w.invs.get_mut(&inv).unwrap().trouble.insert(t);
            }
            let t = target(&w);
            w.end(
                inv,
                Some((
                    vec![(t.name.clone(), false, "failed".into(), Some("throttled".into()), serde_json::Value::Null)],
                    Vec::new(),
                    None,
                )),
            );
            assert_eq!(invariants(&w), broken, "{:?}", w.checker.violations);
        }
    }

    #[test]
    fn a_result_outside_the_contract_or_untrue_breaks_invariant_13() {
        let ok = serde_json::json!({"action": "failed", "reason": null, "error": {"code": "throttled", "message": "m"}, "revoked_token_ids": []});
        let cases = [
            (ok.clone(), vec![]),
            (serde_json::json!({"action": "xyzzy", "error": null}), vec![13u8]),
            (serde_json::json!({"action": "unchanged", "reason": "", "error": null}), vec![13]),
            (serde_json::json!({"action": "failed", "error": null}), vec![13]),
            (serde_json::json!({"action": "failed", "error": {"code": "nope", "message": "m"}}), vec![13]),
            // claims a rotation, and the invocation stored nothing
            (serde_json::json!({"action": "rotated", "reason": "forced", "error": null}), vec![13]),
            // claims the latest version's credential is revoked: it is live
            (
                serde_json::json!({"action": "unchanged", "reason": "fresh", "error": null, "revoked_token_ids": ["LIVE"]}),
                vec![13],
            ),
        ];
        for (result, broken) in cases {
            let mut w = pat_world();
            let inv = begin(&mut w, CLI);
            let t = target(&w);
            let live = w.creds[latest_cred(&w)].id.clone();
            let result: serde_json::Value = serde_json::from_str(&result.to_string().replace("LIVE", &live)).unwrap();
            w.end(inv, Some((vec![(t.name.clone(), true, "x".into(), None, result.clone())], Vec::new(), None)));
            assert_eq!(invariants(&w), broken, "{result}: {:?}", w.checker.violations);
        }
    }

    #[test]
    fn a_json_log_line_outside_the_contract_breaks_invariant_13() {
        for (line, broken) in [
            (r#"{"action":"rotated","reason":"expiring","code":"throttled"}"#, vec![]),
            (r#"{"action":"kept_in_use"}"#, vec![]),
            (r#"{"action":"xyzzy"}"#, vec![13u8]),
            (r#"{"action":"failed","reason":""}"#, vec![13]),
            (r#"{"code":"Throttled"}"#, vec![13]),
            ("analytics: rotated (xyzzy)", vec![]),
        ] {
            let mut w = pat_world();
            let inv = begin(&mut w, CLI);
            w.check_log_words(inv, line);
            assert_eq!(invariants(&w), broken, "{line}: {:?}", w.checker.violations);
        }
    }

    #[test]
    fn out_of_band_revocation_is_counted_not_reported() {
        let mut w = pat_world();
        let i = latest_cred(&w);
        w.kill_by_world("someone", i, Exception::OutOfBand);
        assert!(invariants(&w).is_empty());
        assert_eq!(w.checker.exceptions.get(&Exception::OutOfBand), Some(&1));
    }

    #[test]
    fn a_credential_left_after_the_quiet_phase_breaks_invariant_4() {
        let mut w = pat_world();
        let t = target(&w);
        w.check_quiet_end(&t);
        let before = invariants(&w);
        let inv = begin(&mut w, CLI);
        new_cred(&mut w, inv, Duration::hours(5));
        w.check_quiet_end(&t);
        assert_eq!(invariants(&w).len(), before.len() + 1);
        assert_eq!(invariants(&w).last(), Some(&4));
        assert!(matches!(t.holder(), Holder::Pat { .. }) && EPOCH.year() == 2026);
    }
}
