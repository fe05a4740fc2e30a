//! The simulated world: Key Vault, the issuer (a workspace's Token API for one identity, or one
//! service principal's OAuth secrets), their clocks, and the record of every run.
//!
//! Everything here is synchronous and happens at one moment of true time: the ports
//! ([`crate::ports`]) await a seeded delay, call one effect here, await another delay and
//! answer. Each effect draws its fault from the schedule's stream, changes the state, writes a
//! line to the log and asks the checker ([`crate::checker`]) whether an invariant broke.
//!
//! Clocks: true time is tokio's paused clock (`Instant::now() - start`); the vault's and the
//! issuer's clocks are true time plus their own skew; the rotation's local clock is true time
//! plus a skew that may be hours off and may jump.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use pat_rotator::databricks::{oauth_secret, pat};
use pat_rotator::error::{Code, Error, Result};
use pat_rotator::rotation::model::{
    CreateRequest, Credential, NewCredential, Ownership, Profile, SecretWrite, StoredSecret, rfc3339, tags,
};
use pat_rotator::rotation::ports::{CreateError, Listing, Refusal, SecretRead, WriteError};
use pat_rotator::rotation::spec::{OtherWriter, Owner, Request};
use pat_rotator::rotation::{Outcome, Spec};
use pat_rotator::secret::Redacted;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::time::Instant;

use crate::checker::{Checker, Exception};
use crate::log::{Log, at, span};
use crate::rng::Rng;
use crate::scenario::{BurstKind, InitialSecret, Kind, RunKind, Scenario, Service};

pub type Shared = Arc<Mutex<World>>;

pub fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().expect("the world's lock (single-threaded)")
}

/// True time at the start of every schedule.
pub const EPOCH: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);
pub const TARGET: &str = "analytics";
pub const WORKSPACE: &str = "adb-1234567890123456.7.azuredatabricks.net";
pub const PRINCIPAL: &str = "6f0c3f7e-1b7a-4c7e-9a52-3d1f0c2b9e11";
/// The vault of the first deployment, the one it may move to, and the second deployment's.
pub const VAULTS: [&str; 3] = ["kv-a.vault.azure.net", "kv-b.vault.azure.net", "kv-c.vault.azure.net"];

/// One target as one run sees it: the core's [`Spec`] and what the checker needs beside it.
#[derive(Debug, Clone)]
pub struct SpecInfo {
    pub dep: usize,
    pub spec: Spec,
    pub vault: String,
    /// The secret key of contract §6.
    pub key: String,
}

impl SpecInfo {
    pub fn secret(&self) -> (String, String) {
        (self.vault.clone(), self.spec.secret_name.to_ascii_lowercase())
    }
    pub fn where_(&self) -> String {
        format!("{}/{}", self.vault.split('.').next().unwrap_or_default(), self.spec.secret_name)
    }
}

/// A credential the issuer holds or held (never forgotten: the checker asks about the dead).
#[derive(Debug, Clone)]
pub struct Cred {
    pub id: String,
    pub value: String,
    pub comment: Option<String>,
    /// On the issuer's clock.
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    /// True time of the last use (a consumer's read, the verification).
    pub last_used: Duration,
    /// The run that created it.
    pub made_by: Option<u32>,
    pub death: Option<Death>,
}

#[derive(Debug, Clone)]
pub struct Death {
    pub at: Duration,
    pub by: Option<u32>,
    /// Why breaking a consumer's grace with it is one of the contract's exceptions, if it is.
    pub excuse: Option<Exception>,
    /// No consumer relied on it at that moment (invariant 1 held).
    pub harmless: bool,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub id: String,
    pub value: String,
    pub tags: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// `attributes.created`, on the vault's clock.
    pub created: OffsetDateTime,
    pub enabled: bool,
    pub expires: Option<OffsetDateTime>,
    /// True time it was stored.
    pub landed: Duration,
    /// Stored by a write that had timed out (it landed after its answer).
    pub late: bool,
}

impl Version {
    pub fn stored(&self) -> StoredSecret {
        StoredSecret {
            id: self.id.clone(),
            tags: self.tags.clone(),
            content_type: self.content_type.clone(),
            created: Some(self.created),
            enabled: self.enabled,
            expires: self.expires,
        }
    }
    pub fn short(&self) -> String {
        self.id.rsplit('/').next().unwrap_or_default().to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    Live,
    /// Soft-deleted: reads answer 404, writes 409 `keyvault_secret_deleted`.
    Deleted,
    /// Just recovered: reads still answer 404 for a while, writes 409.
    Recovering,
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    /// The grace of the target that writes it.
    pub grace: Duration,
    pub versions: Vec<Version>,
    pub state: SecretState,
}

#[derive(Debug)]
pub struct Vault {
    pub host: String,
    pub skew: Duration,
    pub secrets: BTreeMap<String, Secret>,
}

/// One run of the rotation, as the checker follows it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: u32,
    pub kind: RunKind,
    pub spec: SpecInfo,
    pub req: Request,
    pub start: Duration,
    pub end: Option<Duration>,
    /// The run is dropped here if it has not ended (a kill, or the deadline's backstop).
    pub kill_at: Option<Duration>,
    pub deadline: Duration,
    /// Every list, read and versions call succeeded and no read said "absent".
    pub reads_ok: bool,
    pub revokes_ok: bool,
    /// The target's credentials (by the checker's reading of §6/§9) in its last listing.
    pub listing_ours: usize,
    /// What the core announced it revokes for the cap.
    pub cap_ids: Vec<String>,
    /// One of its writes stored a version.
    pub wrote: bool,
    pub warnings: Vec<String>,
}

/// A write that timed out and lands later.
pub struct Landing {
    pub host: String,
    pub name: String,
    pub version: Version,
    pub after: std::time::Duration,
    pub run: u32,
}

/// A consumer's read: what it holds.
#[derive(Debug, Clone)]
pub struct Holding {
    pub consumer: u32,
    pub cred: String,
    pub secret: (String, String),
    pub version: String,
    pub at: Duration,
}

#[derive(Debug)]
pub struct Deployment {
    pub spec: SpecInfo,
    pub present: bool,
}

pub struct World {
    pub sc: Scenario,
    pub start: Instant,
    pub rng: Rng,
    pub log: Log,
    pub vaults: BTreeMap<String, Vault>,
    pub kind: Kind,
    pub issuer_skew: Duration,
    /// Every credential ever held, in creation order.
    pub creds: Vec<Cred>,
    pub deployments: Vec<Deployment>,
    pub runs: BTreeMap<u32, RunInfo>,
    pub holdings: Vec<Holding>,
    pub checker: Checker,
    /// Faults off, no slow calls: the quiet phase.
    pub quiet: bool,
    next_run: u32,
    next_attempt: u32,
    next_cred: u32,
    next_version: u32,
    /// The latest moment a pending write lands.
    pub last_landing: Duration,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub runs: u32,
    /// The most runs of one target and secret that were running at once.
    pub max_concurrent: u32,
    pub killed: u32,
    pub calls: u32,
    pub faults: u32,
    pub actions: BTreeMap<String, u32>,
}

/// A credential's value: unique, and never a prefix of another (the leak check searches for it).
fn secret_value(seed: u64, n: u32) -> String {
    format!("dapi{:016x}n{n}x", seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66_D1CE_4E5B)
}

fn err(code: Code, status: u16, msg: &str) -> Error {
    Error::new(code, msg).with_status(status)
}

impl World {
    pub fn new(sc: Scenario, runtime_rng: Rng, keep_log: bool) -> World {
        let mut w = World {
            kind: sc.kind,
            issuer_skew: sc.issuer_skew,
            start: Instant::now(),
            rng: runtime_rng,
            log: Log { keep: keep_log, lines: Vec::new() },
            vaults: BTreeMap::new(),
            creds: Vec::new(),
            deployments: Vec::new(),
            runs: BTreeMap::new(),
            holdings: Vec::new(),
            checker: Checker::default(),
            quiet: false,
            next_run: 1,
            next_attempt: 1,
            next_cred: 1,
            next_version: 1,
            last_landing: Duration::ZERO,
            stats: Stats::default(),
            sc,
        };
        for (i, host) in VAULTS.iter().enumerate() {
            let skew = match i {
                0 => w.sc.vault_skew,
                1 => -w.sc.vault_skew / 2,
                _ => w.sc.vault_skew / 3,
            };
            w.vaults.insert(host.to_string(), Vault { host: host.to_string(), skew, secrets: BTreeMap::new() });
        }
        let first = w.spec_info(0, VAULTS[0], w.base_name());
        let second = w.spec_info(1, VAULTS[2], w.base_name());
        w.deployments.push(Deployment { spec: first, present: true });
        w.deployments.push(Deployment { spec: second, present: w.sc.second_deployment == Some(Duration::ZERO) });
        w.seed_state();
        w
    }

    fn base_name(&self) -> &'static str {
        match self.kind {
            Kind::Pat => "databricks-pat",
            Kind::OAuth => "databricks-sp-secret",
        }
    }

    pub fn profile(&self) -> &'static Profile {
        match self.kind {
            Kind::Pat => &pat::PROFILE,
            Kind::OAuth => &oauth_secret::PROFILE,
        }
    }

    /// The target of deployment `dep` with this vault and secret name.
    pub fn spec_info(&self, dep: usize, vault: &str, secret_name: &str) -> SpecInfo {
        let vault_url = format!("https://{vault}/");
        let mut t = BTreeMap::new();
        t.insert(pat_rotator::databricks::tags::HOST.to_string(), WORKSPACE.to_string());
        let owner = match self.kind {
            Kind::Pat => Some(Owner { client_id: None, tag: pat_rotator::databricks::tags::CLIENT_ID }),
            Kind::OAuth => {
                t.insert(pat_rotator::databricks::tags::CLIENT_ID.to_string(), PRINCIPAL.to_string());
                None
            }
        };
        SpecInfo {
            dep,
            spec: Spec {
                target: TARGET.to_string(),
                secret_name: secret_name.to_string(),
                lifetime_days: self.sc.lifetime_days,
                renew_before: Duration::days(self.sc.renew_before_days as i64),
                grace: Duration::hours(self.sc.grace_hours as i64),
                tags: t,
                owner,
                keep_while_used: false,
            },
            vault: vault.to_string(),
            key: pat::secret_key(&vault_url, secret_name),
        }
    }

    // ---- clocks ------------------------------------------------------------------------

    pub fn now(&self) -> Duration {
        Duration::try_from(Instant::now() - self.start).expect("true time fits")
    }
    pub fn vault_now(&self, host: &str) -> OffsetDateTime {
        EPOCH + self.now() + self.vaults[host].skew
    }
    /// `attributes.created` of a version stored now: Key Vault keeps whole seconds.
    pub fn vault_stamp(&self, host: &str) -> OffsetDateTime {
        let t = self.vault_now(host);
        t.replace_nanosecond(0).unwrap_or(t)
    }
    pub fn issuer_now(&self) -> OffsetDateTime {
        EPOCH + self.now() + self.issuer_skew
    }
    pub fn local_now(&self) -> OffsetDateTime {
        let now = self.now();
        let skew = match self.sc.local_jump {
            Some((at, to)) if now >= at => to,
            _ => self.sc.local_skew,
        };
        EPOCH + now + skew
    }

    pub fn unique_id(&mut self) -> String {
        let n = self.next_attempt;
        self.next_attempt += 1;
        format!("a{n:04}")
    }

    // ---- logging -----------------------------------------------------------------------

    pub fn note(&mut self, who: &str, what: impl FnOnce(&World) -> String) {
        if self.log.keep {
            let line = what(self);
            let now = self.now();
            self.log.push(now, who, || line);
        }
    }

    pub fn who(run: u32) -> String {
        format!("run {run}")
    }

    /// Files the warnings the core emitted since the last effect under their runs.
    pub fn absorb_warnings(&mut self) {
        for (run, text) in crate::capture::drain() {
            if let Some(ids) = crate::capture::cap_ids(&text)
                && let Some(r) = self.runs.get_mut(&run)
            {
                r.cap_ids.extend(ids);
            }
            if let Some(r) = self.runs.get_mut(&run) {
                r.warnings.push(text.clone());
            }
            self.note(&Self::who(run), |_| format!("core warns: {text}"));
        }
    }

    // ---- faults and delays -------------------------------------------------------------

    fn burst(&self, service: Service, kind: BurstKind) -> bool {
        let now = self.now();
        !self.quiet
            && self.sc.bursts.iter().any(|b| b.service == service && b.kind == kind && b.from <= now && now < b.to)
    }

    /// Whether this call gets the fault: a burst of that kind is on, or the per-call rate hits.
    fn fault(&mut self, service: Service, burst: Option<BurstKind>, per_mille: u32) -> bool {
        if self.quiet {
            return false;
        }
        let hit = burst.is_some_and(|b| self.burst(service, b)) || self.rng.chance(per_mille);
        if hit {
            self.stats.faults += 1;
        }
        hit
    }

    /// The latency before or after one call's effect. CLI runs may be suspended (a laptop's
    /// lid closed) for up to 45 minutes; their deadline moves with them, since a suspended
    /// process does not run.
    pub fn delay(&mut self, run: u32) -> std::time::Duration {
        if self.quiet {
            return self.rng.millis(5, 300);
        }
        if self.rng.chance(self.sc.faults.slow.max(2)) {
            let cli = self.runs.get(&run).is_some_and(|r| matches!(r.kind, RunKind::Cli | RunKind::RevokeSuperseded));
            if cli && self.rng.chance(500) {
                let d = self.rng.millis(300_000, 2_700_000);
                let dd = Duration::try_from(d).expect("fits");
                if let Some(r) = self.runs.get_mut(&run) {
                    r.deadline += dd;
                }
                self.note(&Self::who(run), |_| format!("suspended for {}", span(dd)));
                return d;
            }
            return self.rng.millis(30_000, 200_000);
        }
        self.rng.millis(5, 1500)
    }

    // ---- Key Vault ---------------------------------------------------------------------

    pub fn secret(&self, host: &str, name: &str) -> Option<&Secret> {
        self.vaults.get(host)?.secrets.get(&name.to_ascii_lowercase())
    }

    fn secret_mut(&mut self, host: &str, name: &str) -> &mut Secret {
        let grace = Duration::hours(self.sc.grace_hours as i64);
        self.vaults
            .get_mut(host)
            .expect("a known vault")
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret { name: name.to_string(), grace, versions: Vec::new(), state: SecretState::Live })
    }

    fn new_version(&mut self, host: &str, w: &SecretWrite, created: OffsetDateTime) -> Version {
        let n = self.next_version;
        self.next_version += 1;
        Version {
            id: format!("https://{host}/secrets/{}/v{n:04}", w.name),
            value: w.value.expose().to_string(),
            tags: w.tags.clone(),
            content_type: Some(w.content_type.clone()),
            created,
            enabled: true,
            expires: w.expires,
            landed: self.now(),
            late: false,
        }
    }

    fn vault_error(&mut self) -> Error {
        if self.rng.chance(500) {
            err(Code::Throttled, 429, "Key Vault answered 429 until the retries gave up")
                .transient()
                .with_retry_after(Some(std::time::Duration::from_secs(5)))
        } else {
            err(Code::UpstreamUnavailable, 503, "Key Vault answered 503 until the retries gave up").transient()
        }
    }

    fn read_failed(&mut self, run: u32) {
        if let Some(r) = self.runs.get_mut(&run) {
            r.reads_ok = false;
        }
    }

    pub fn kv_read(&mut self, run: u32, host: &str, name: &str) -> Result<SecretRead> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let f = self.sc.faults.clone();
        if self.fault(Service::Vault, Some(BurstKind::Errors), f.kv_error) {
            self.read_failed(run);
            let e = self.vault_error();
            self.note(&Self::who(run), |_| format!("kv.read {name} → error {e}"));
            return Err(e);
        }
        let at = (!self.fault(Service::Vault, Some(BurstKind::NoDate), f.kv_no_date)).then(|| self.vault_now(host));
        let not_found = self.fault(Service::Vault, Some(BurstKind::NotFound), f.kv_not_found);
        let latest = match self.secret(host, name) {
            Some(s) if s.state == SecretState::Live && !not_found => s.versions.last().map(Version::stored),
            _ => None,
        };
        if latest.is_none() {
            self.read_failed(run);
        }
        self.note(&Self::who(run), |w| {
            let what = match &latest {
                None if not_found => "404 (a burst)".to_string(),
                None => match w.secret(host, name).map(|s| s.state) {
                    Some(SecretState::Deleted) => "404 (soft-deleted)".to_string(),
                    Some(SecretState::Recovering) => "404 (being recovered)".to_string(),
                    _ => "404 (no secret)".to_string(),
                },
                Some(s) => w.describe_version(s),
            };
            format!("kv.read {name} → {what}{}", if at.is_none() { ", no Date" } else { "" })
        });
        Ok(SecretRead { latest, tied: Vec::new(), at })
    }

    pub fn describe_version(&self, s: &StoredSecret) -> String {
        let p = self.profile();
        let (id, prev) = s.names(p);
        let managed = s.tags.get(tags::MANAGED_BY).map(String::as_str) == Some(tags::MANAGED_BY_VALUE);
        format!(
            "{} names {}{}{}{} created {}",
            s.version(),
            id.as_deref().unwrap_or("nothing"),
            prev.map(|p| format!(" (previous {p})")).unwrap_or_default(),
            if managed { "" } else { " [not managed-by]" },
            if s.enabled { "" } else { " [disabled]" },
            s.created.map(|c| at(c - EPOCH)).unwrap_or_default()
        )
    }

    pub fn kv_versions(&mut self, run: u32, host: &str, name: &str) -> Result<Vec<StoredSecret>> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let rate = self.sc.faults.kv_error;
        if self.fault(Service::Vault, Some(BurstKind::Errors), rate) {
            self.read_failed(run);
            let e = self.vault_error();
            self.note(&Self::who(run), |_| format!("kv.versions {name} → error {e}"));
            return Err(e);
        }
        let r = match self.secret(host, name) {
            Some(s) if s.state == SecretState::Live => Ok(s.versions.iter().map(Version::stored).collect::<Vec<_>>()),
            _ => Err(err(Code::KeyvaultError, 404, "Key Vault answered 404 to the versions list")),
        };
        if r.is_err() {
            self.read_failed(run);
        }
        self.note(&Self::who(run), |_| match &r {
            Ok(v) => format!("kv.versions {name} → {} versions", v.len()),
            Err(e) => format!("kv.versions {name} → {e}"),
        });
        r
    }

    /// A write. Returns the answer, and a landing to schedule when the write timed out but
    /// takes effect later.
    pub fn kv_write(
        &mut self,
        run: u32,
        host: &str,
        w: &SecretWrite,
    ) -> (std::result::Result<StoredSecret, WriteError>, Option<Landing>) {
        self.absorb_warnings();
        self.stats.calls += 1;
        let who = Self::who(run);
        let state = self.secret(host, &w.name).map(|s| s.state).unwrap_or(SecretState::Live);
        if state != SecretState::Live {
            let e = if state == SecretState::Deleted {
                err(Code::KeyvaultSecretDeleted, 409, "the secret is soft-deleted: recover or purge it first")
            } else {
                err(Code::KeyvaultError, 409, "the secret is being recovered").transient()
            };
            self.note(&who, |_| format!("kv.write {} → {e}", w.name));
            return (Err(WriteError::Failed(e)), None);
        }
        let f = self.sc.faults.clone();
        let timeout = || err(Code::Timeout, 408, "Key Vault write: no answer within 30 s").transient();
        let burst_timeout = self.fault(Service::Vault, Some(BurstKind::Timeouts), 0);
        let outcome = if self.fault(Service::Vault, Some(BurstKind::Errors), f.kv_write_refused) {
            0
        } else if burst_timeout {
            *self.rng.pick(&[1, 3, 4])
        } else if self.fault(Service::Vault, None, f.kv_write_stored_unknown) {
            1
        } else if self.fault(Service::Vault, None, f.kv_write_stored_failed) {
            2
        } else if self.fault(Service::Vault, None, f.kv_write_timeout_lost) {
            3
        } else if self.fault(Service::Vault, None, f.kv_write_timeout_lands) {
            4
        } else {
            5
        };
        match outcome {
            0 => {
                let e = self.vault_error();
                self.note(&who, |_| format!("kv.write {} → {e} (not stored)", w.name));
                (Err(WriteError::Failed(e)), None)
            }
            3 => {
                self.note(&who, |_| format!("kv.write {} → timeout (never lands)", w.name));
                (Err(WriteError::Unknown(timeout())), None)
            }
            4 => {
                let created_placeholder = self.vault_now(host);
                let version = self.new_version(host, w, created_placeholder);
                let after = self.rng.millis(1_000, 180_000);
                let when = self.now() + Duration::try_from(after).expect("fits");
                self.last_landing = self.last_landing.max(when);
                self.note(&who, |_| {
                    format!("kv.write {} → timeout; {} lands at {}", w.name, version.short(), at(when))
                });
                (
                    Err(WriteError::Unknown(timeout())),
                    Some(Landing { host: host.to_string(), name: w.name.clone(), version, after, run }),
                )
            }
            _ => {
                let created = self.vault_stamp(host);
                let version = self.new_version(host, w, created);
                let stored = version.stored();
                let short = version.short();
                self.store(run, host, &w.name, version);
                let answer = match outcome {
                    1 => Err(WriteError::Unknown(timeout())),
                    2 => Err(WriteError::Failed(
                        err(Code::UpstreamUnavailable, 500, "Key Vault answered 500").transient(),
                    )),
                    _ => Ok(stored),
                };
                self.note(&who, |_| match &answer {
                    Ok(_) => format!("kv.write {} → stored {short}", w.name),
                    Err(e) => format!("kv.write {} → stored {short}, but the caller sees {}", w.name, e.error()),
                });
                (answer, None)
            }
        }
    }

    /// A version takes effect: it becomes the latest.
    fn store(&mut self, run: u32, host: &str, name: &str, version: Version) {
        let s = self.secret_mut(host, name);
        s.versions.push(version);
        let idx = s.versions.len() - 1;
        if let Some(r) = self.runs.get_mut(&run) {
            r.wrote = true;
        }
        self.check_landing(run, host, name, idx);
    }

    /// A write that timed out lands now (unless the secret was deleted meanwhile).
    pub fn land(&mut self, l: Landing) {
        let state = self.secret(&l.host, &l.name).map(|s| s.state).unwrap_or(SecretState::Live);
        let mut v = l.version;
        if state != SecretState::Live {
            self.note("vault", |_| {
                format!("the late write {} of run {} is lost: the secret is not live", v.short(), l.run)
            });
            return;
        }
        v.created = self.vault_stamp(&l.host);
        v.landed = self.now();
        v.late = true;
        self.note("vault", |w| format!("the late write of run {} lands: {}", l.run, w.describe_version(&v.stored())));
        self.store(l.run, &l.host, &l.name, v);
    }

    // ---- the issuer --------------------------------------------------------------------

    pub fn live(&self, c: &Cred) -> bool {
        c.death.is_none() && c.expires.is_none_or(|e| e > self.issuer_now())
    }

    pub fn cred_index(&self, id: &str) -> Option<usize> {
        self.creds.iter().position(|c| c.id == id)
    }

    pub fn cred_by_value(&self, value: &str) -> Option<usize> {
        self.creds.iter().position(|c| c.value == value)
    }

    fn credential(&self, c: &Cred, spec: &SpecInfo) -> Credential {
        let (ownership, attempt) = match self.kind {
            // The real reading of a comment (contract §6).
            Kind::Pat => pat::ownership(c.comment.as_deref(), &spec.spec.target, &spec.key),
            // Every OAuth secret of the principal is the target's only when recorded (§9).
            Kind::OAuth => (Ownership::IfRecorded, None),
        };
        Credential {
            id: c.id.clone(),
            comment: c.comment.clone(),
            created_at: Some(c.created),
            expires_at: c.expires,
            ownership,
            attempt,
        }
    }

    fn issuer_error(&mut self) -> Error {
        if self.rng.chance(500) {
            err(Code::Throttled, 429, "the workspace answered 429 until the retries gave up").transient()
        } else {
            err(Code::UpstreamUnavailable, 503, "the workspace answered 503 until the retries gave up").transient()
        }
    }

    pub fn is_list(&mut self, run: u32) -> Result<Listing> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let f = self.sc.faults.clone();
        if self.fault(Service::Issuer, Some(BurstKind::Errors), f.is_error) {
            self.read_failed(run);
            let e = self.issuer_error();
            self.note(&Self::who(run), |_| format!("issuer.list → {e}"));
            return Err(e);
        }
        let at = (!self.fault(Service::Issuer, Some(BurstKind::NoDate), f.is_no_date)).then(|| self.issuer_now());
        let spec = self.runs[&run].spec.clone();
        let credentials: Vec<Credential> =
            self.creds.iter().filter(|c| self.live(c)).map(|c| self.credential(c, &spec)).collect();
        let ours = self.creds.iter().filter(|c| self.live(c) && self.is_targets(&spec, c)).count();
        if let Some(r) = self.runs.get_mut(&run) {
            r.listing_ours = ours;
        }
        self.note(&Self::who(run), |_| {
            let ids: Vec<String> = credentials
                .iter()
                .map(|c| {
                    let o = match c.ownership {
                        Ownership::Ours => "ours",
                        Ownership::IfRecorded => "if recorded",
                        Ownership::NotOurs => "not ours",
                    };
                    format!("{} ({o})", c.id)
                })
                .collect();
            format!("issuer.list → [{}]{}", ids.join(", "), if at.is_none() { ", no Date" } else { "" })
        });
        Ok(Listing { credentials, at })
    }

    pub fn is_create(&mut self, run: u32, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let who = Self::who(run);
        let f = self.sc.faults.clone();
        let errors = self.fault(Service::Issuer, Some(BurstKind::Errors), 0);
        let timeouts = self.fault(Service::Issuer, Some(BurstKind::Timeouts), 0);
        let lost_before = self.fault(Service::Issuer, None, f.is_create_lost_before)
            || ((errors || timeouts) && self.rng.chance(500));
        let lost_after =
            !lost_before && (errors || timeouts || self.fault(Service::Issuer, None, f.is_create_lost_after));
        let ambiguous = || err(Code::UpstreamUnavailable, 504, "no answer to the create").transient();
        if lost_before {
            self.note(&who, |_| "issuer.create → no answer (nothing was created)".to_string());
            return Err(CreateError::Ambiguous(ambiguous()));
        }
        let live = self.creds.iter().filter(|c| self.live(c)).count();
        if live >= self.sc.quota {
            self.note(&who, |w| format!("issuer.create → full ({live} of {})", w.sc.quota));
            let e = match self.kind {
                Kind::Pat => {
                    err(Code::DatabricksQuotaExceeded, 400, "QUOTA_EXCEEDED: the identity holds its quota of tokens")
                }
                Kind::OAuth => err(
                    Code::DatabricksQuotaExceeded,
                    400,
                    "the service principal holds its limit of five OAuth secrets",
                ),
            };
            return Err(CreateError::Refused(Refusal::Full, e));
        }
        let spec = self.runs[&run].spec.clone();
        let n = self.next_cred;
        self.next_cred += 1;
        let (id, comment) = match self.kind {
            Kind::Pat => (format!("tok-{n:03}"), Some(pat::comment(&spec.spec.target, &spec.key, &req.attempt))),
            Kind::OAuth => (format!("sec-{n:03}"), None),
        };
        let created = self.issuer_now();
        let c = Cred {
            id: id.clone(),
            value: secret_value(self.sc.seed, n),
            comment,
            created,
            expires: Some(created + Duration::seconds(req.lifetime_seconds as i64)),
            last_used: self.now(),
            made_by: Some(run),
            death: None,
        };
        let info = self.credential(&c, &spec);
        let value = Redacted::new(c.value.clone());
        self.creds.push(c);
        if lost_after {
            self.note(&who, |_| format!("issuer.create → {id} created, but the answer is lost"));
            return Err(CreateError::Ambiguous(ambiguous()));
        }
        self.note(&who, |_| format!("issuer.create → {id}"));
        Ok(NewCredential { value, info })
    }

    pub fn is_verify(&mut self, run: u32, value: &Redacted) -> Result<Option<OffsetDateTime>> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let f = self.sc.faults.clone();
        if self.fault(Service::Issuer, Some(BurstKind::Errors), f.is_verify_error) {
            let e = self.issuer_error();
            self.note(&Self::who(run), |_| format!("issuer.verify → {e}"));
            return Err(e);
        }
        let at = (!self.fault(Service::Issuer, Some(BurstKind::NoDate), f.is_no_date)).then(|| self.issuer_now());
        let now = self.now();
        let found = self.creds.iter().position(|c| c.value == value.expose() && self.live(c));
        match found {
            Some(i) => {
                self.creds[i].last_used = now;
                self.note(&Self::who(run), |w| format!("issuer.verify {} → ok", w.creds[i].id));
                Ok(at)
            }
            None => {
                self.note(&Self::who(run), |_| "issuer.verify → Invalid access token.".to_string());
                Err(err(Code::DatabricksUnauthorized, 401, "Invalid access token."))
            }
        }
    }

    pub fn is_revoke(&mut self, run: u32, id: &str) -> Result<()> {
        self.absorb_warnings();
        self.stats.calls += 1;
        let f = self.sc.faults.clone();
        let failed = self.fault(Service::Issuer, Some(BurstKind::Errors), f.is_revoke_error);
        // Half of the failed revocations took effect before the answer was lost.
        if failed && self.rng.chance(500) {
            if let Some(r) = self.runs.get_mut(&run) {
                r.revokes_ok = false;
            }
            let e = self.issuer_error();
            self.note(&Self::who(run), |_| format!("issuer.revoke {id} → {e} (not revoked)"));
            return Err(e);
        }
        if let Some(i) = self.cred_index(id)
            && self.live(&self.creds[i].clone())
        {
            self.kill_by_run(run, i);
        } else {
            self.note(&Self::who(run), |_| format!("issuer.revoke {id} → already gone"));
        }
        if failed {
            if let Some(r) = self.runs.get_mut(&run) {
                r.revokes_ok = false;
            }
            let e = self.issuer_error();
            self.note(&Self::who(run), |_| format!("issuer.revoke {id} → revoked, but the caller sees {e}"));
            return Err(e);
        }
        Ok(())
    }

    /// A rotation run revokes credential `i`: the checker judges it.
    fn kill_by_run(&mut self, run: u32, i: usize) {
        let (excuse, harmless) = self.check_run_revoke(run, i);
        let now = self.now();
        self.creds[i].death = Some(Death { at: now, by: Some(run), excuse, harmless });
        self.note(&Self::who(run), |w| {
            format!(
                "issuer.revoke {} → revoked{}",
                w.creds[i].id,
                excuse.map(|e| format!(" ({e:?})")).unwrap_or_default()
            )
        });
    }

    /// Someone other than a rotation revokes credential `i`.
    pub fn kill_by_world(&mut self, who: &str, i: usize, why: Exception) {
        let harmless = self.check_world_revoke(i, why);
        let now = self.now();
        self.creds[i].death = Some(Death { at: now, by: None, excuse: Some(why), harmless });
        self.note(who, |w| format!("revokes {} ({why:?})", w.creds[i].id));
    }

    // ---- runs --------------------------------------------------------------------------

    pub fn begin_run(&mut self, dep: usize, kind: RunKind, kill_after: Option<Duration>) -> RunInfo {
        let id = self.next_run;
        self.next_run += 1;
        self.stats.runs += 1;
        let spec = self.deployments[dep].spec.clone();
        let cooldown = Duration::minutes(self.sc.cooldown_minutes as i64);
        use pat_rotator::rotation::spec::Force;
        // One identity writes every version here, so the guard of contract §10 never applies.
        let req = match kind {
            RunKind::Timer => Request {
                force: Force::No,
                dry_run: false,
                revoke_superseded: false,
                other_writer: OtherWriter::Overwrite,
                via: "RotatePat",
                expiry_window: None,
            },
            RunKind::Provision => Request {
                force: Force::Provision { cooldown },
                dry_run: false,
                revoke_superseded: false,
                other_writer: OtherWriter::Overwrite,
                via: "ProvisionPat",
                expiry_window: None,
            },
            RunKind::Cli => Request {
                force: Force::Cli,
                dry_run: false,
                revoke_superseded: false,
                other_writer: OtherWriter::Overwrite,
                via: "cli",
                expiry_window: None,
            },
            RunKind::DryRun => {
                let force = if self.rng.chance(500) { Force::Cli } else { Force::No };
                Request {
                    force,
                    dry_run: true,
                    revoke_superseded: false,
                    other_writer: OtherWriter::Overwrite,
                    via: "cli",
                    expiry_window: None,
                }
            }
            RunKind::RevokeSuperseded => Request {
                force: Force::Cli,
                dry_run: false,
                revoke_superseded: true,
                other_writer: OtherWriter::Overwrite,
                via: "cli",
                expiry_window: None,
            },
        };
        let now = self.now();
        let budget = Duration::seconds(if kind == RunKind::Provision { 200 } else { 540 });
        let info = RunInfo {
            id,
            kind,
            spec,
            req,
            start: now,
            end: None,
            kill_at: kill_after.map(|k| now + k),
            deadline: now + budget,
            reads_ok: true,
            revokes_ok: true,
            listing_ours: 0,
            cap_ids: Vec::new(),
            wrote: false,
            warnings: Vec::new(),
        };
        let active = self
            .runs
            .values()
            .filter(|r| r.end.is_none() && r.spec.spec.target == info.spec.spec.target && r.spec.key == info.spec.key)
            .count() as u32;
        self.stats.max_concurrent = self.stats.max_concurrent.max(active + 1);
        self.runs.insert(id, info.clone());
        self.note(&Self::who(id), |_| {
            format!(
                "starts: {} of deployment {} on {}{}",
                kind.label(),
                ["A", "B"][dep],
                info.spec.where_(),
                info.kill_at.map(|k| format!(", killed at {}", at(k))).unwrap_or_default()
            )
        });
        info
    }

    /// When the run is dropped if still running: its kill, or 20 s past its deadline (the
    /// engine's backstop).
    pub fn stop_at(&self, run: u32) -> Duration {
        let r = &self.runs[&run];
        let backstop = r.deadline + Duration::seconds(20);
        r.kill_at.map_or(backstop, |k| k.min(backstop))
    }

    pub fn end_run(&mut self, run: u32, outcome: Option<Outcome>) {
        self.absorb_warnings();
        let now = self.now();
        if let Some(r) = self.runs.get_mut(&run) {
            r.end = Some(now);
        }
        match &outcome {
            None => {
                self.stats.killed += 1;
                self.note(&Self::who(run), |_| "killed".to_string());
            }
            Some(o) => {
                *self.stats.actions.entry(o.action.as_str().to_string()).or_default() += 1;
                self.note(&Self::who(run), |_| format!("ends: {}", o.log_line()));
            }
        }
        self.check_run_end(run, outcome.as_ref());
    }

    // ---- the operator, consumers, the issuer's own rules -------------------------------

    /// Applies a change of the latest version of deployment `dep`'s secret.
    pub fn latest_mut(&mut self, dep: usize) -> Option<&mut Version> {
        let (host, name) = self.deployments[dep].spec.secret();
        self.vaults.get_mut(&host)?.secrets.get_mut(&name)?.versions.last_mut()
    }

    pub fn set_state(&mut self, dep: usize, state: SecretState) {
        let (host, name) = self.deployments[dep].spec.secret();
        self.secret_mut(&host, &name).state = state;
    }

    pub fn consume(&mut self, consumer: u32) {
        // Any secret that holds a version: mostly a configured one, sometimes one left behind.
        let mut all: Vec<(String, String)> = Vec::new();
        for (host, v) in &self.vaults {
            for (name, s) in &v.secrets {
                if !s.versions.is_empty() {
                    all.push((host.clone(), name.clone()));
                }
            }
        }
        let configured: Vec<(String, String)> = self
            .deployments
            .iter()
            .filter(|d| d.present)
            .map(|d| d.spec.secret())
            .filter(|s| all.contains(s))
            .collect();
        let pool = if !configured.is_empty() && self.rng.chance(700) { configured } else { all };
        if pool.is_empty() {
            return;
        }
        let (host, name) = self.rng.pick(&pool).clone();
        let who = format!("consumer {consumer}");
        let s = &self.vaults[&host].secrets[&name];
        let Some(v) = s.versions.last().filter(|_| s.state == SecretState::Live).cloned() else {
            self.note(&who, |_| format!("reads {name}: 404"));
            return;
        };
        if !v.enabled {
            self.note(&who, |_| format!("reads {name}: {} is disabled (403)", v.short()));
            return;
        }
        let Some(i) = self.cred_by_value(&v.value) else {
            self.note(&who, |_| format!("reads {name}: {} holds no credential of the issuer", v.short()));
            return;
        };
        let now = self.now();
        let cred = self.creds[i].id.clone();
        self.note(&who, |_| format!("reads {name} {} → {cred}", v.short()));
        if self.live(&self.creds[i]) {
            self.creds[i].last_used = now;
        }
        self.check_consumer_read(&who, &host, &name, &v, i);
        self.holdings.push(Holding { consumer, cred, secret: (host, name), version: v.id.clone(), at: now });
    }

    // ---- the starting state ------------------------------------------------------------

    fn add_cred(&mut self, comment: Option<String>, age: Duration, lifetime: Duration) -> usize {
        let n = self.next_cred;
        self.next_cred += 1;
        let id = match self.kind {
            Kind::Pat => format!("tok-{n:03}"),
            Kind::OAuth => format!("sec-{n:03}"),
        };
        let created = self.issuer_now() - age;
        self.creds.push(Cred {
            id,
            value: secret_value(self.sc.seed, n),
            comment: if self.kind == Kind::Pat { comment } else { None },
            created,
            expires: Some(created + lifetime),
            last_used: Duration::ZERO,
            made_by: None,
            death: None,
        });
        self.creds.len() - 1
    }

    fn seed_version(&mut self, dep: usize, cred: usize, age: Duration, previous: Option<usize>, managed: bool) {
        let spec = self.deployments[dep].spec.clone();
        let p = self.profile();
        let c = self.creds[cred].clone();
        let mut t = BTreeMap::new();
        let content_type = if managed {
            t.extend(spec.spec.tags.clone());
            t.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
            t.insert(tags::TARGET.to_string(), spec.spec.target.clone());
            t.insert(p.id_tag.to_string(), c.id.clone());
            if let Some(et) = p.expires_tag {
                t.insert(et.to_string(), c.expires.map(rfc3339).unwrap_or_default());
            }
            t.insert(tags::ROTATED_AT.to_string(), rfc3339(EPOCH - age));
            if let Some(prev) = previous {
                t.insert(p.previous_tag.to_string(), self.creds[prev].id.clone());
            }
            Some(p.content_type.to_string())
        } else {
            None
        };
        let (host, name) = (spec.vault.clone(), spec.spec.secret_name.clone());
        let n = self.next_version;
        self.next_version += 1;
        let v = Version {
            id: format!("https://{host}/secrets/{name}/v{n:04}"),
            value: c.value.clone(),
            tags: t,
            content_type,
            created: self.vault_stamp(&host) - age,
            enabled: true,
            expires: c.expires,
            landed: -age,
            late: false,
        };
        self.secret_mut(&host, &name).versions.push(v);
    }

    fn seed_state(&mut self) {
        let lifetime = Duration::days(self.sc.lifetime_days as i64);
        let long = Duration::days(365);
        let attempt = |w: &mut World| w.unique_id();
        let key = self.deployments[0].spec.key.clone();
        let ours = |a: &str| pat::comment(TARGET, &key, a);
        for _ in 0..self.sc.foreign_creds {
            let age = Duration::days(self.rng.range(1, 100) as i64);
            let comment = self.rng.pick(&["Terraform-generated token", "ci job", "notebook"]).to_string();
            self.add_cred(Some(comment), age, long);
        }
        for _ in 0..self.sc.other_target_tokens {
            let a = attempt(self);
            let other_key = pat::secret_key("https://kv-billing.vault.azure.net/", "databricks-pat");
            let age = Duration::hours(self.rng.range(2, 100) as i64);
            self.add_cred(Some(pat::comment("billing", &other_key, &a)), age, lifetime);
        }
        for _ in 0..self.sc.legacy_unrecorded {
            let a = attempt(self);
            let age = Duration::hours(self.rng.range(2, 100) as i64);
            self.add_cred(Some(format!("pat-rotator/{TARGET}/{a}")), age, lifetime);
        }
        for _ in 0..self.sc.orphans {
            let a = attempt(self);
            let age = Duration::minutes(self.rng.range(1, 180) as i64);
            self.add_cred(Some(ours(&a)), age, lifetime);
        }
        match self.sc.initial {
            InitialSecret::Absent => {}
            InitialSecret::Foreign { age } => {
                let c = self.add_cred(Some("Terraform-generated token".into()), age + Duration::minutes(1), long);
                self.seed_version(0, c, age, None, false);
            }
            InitialSecret::Managed { age, legacy, previous } => {
                let comment = |w: &mut World| {
                    let a = attempt(w);
                    if legacy { format!("pat-rotator/{TARGET}/{a}") } else { ours(&a) }
                };
                let prev = previous.map(|p| {
                    let c = comment(self);
                    let i = self.add_cred(Some(c), age + p + Duration::seconds(5), lifetime);
                    self.seed_version(0, i, age + p, None, true);
                    i
                });
                let c = comment(self);
                let i = self.add_cred(Some(c), age + Duration::seconds(5), lifetime);
                self.seed_version(0, i, age, prev, true);
            }
        }
        for i in 0..self.creds.len() {
            let c = self.creds[i].clone();
            self.note("start", |w| {
                format!(
                    "{} {:?} created {}{}",
                    c.id,
                    c.comment.as_deref().unwrap_or("(no comment)"),
                    at(c.created - w.issuer_skew - EPOCH),
                    if w.live(&c) { "" } else { ", expired" }
                )
            });
        }
        for d in 0..self.deployments.len() {
            let (host, name) = self.deployments[d].spec.secret();
            let versions: Vec<StoredSecret> =
                self.secret(&host, &name).map(|s| s.versions.iter().map(Version::stored).collect()).unwrap_or_default();
            for v in versions {
                self.note("start", |w| format!("{name}: {}", w.describe_version(&v)));
            }
        }
    }
}
