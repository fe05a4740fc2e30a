//! The simulated world behind the transport seam: Key Vault, the Databricks workspaces (each
//! identity's tokens, SCIM, the service principals' OAuth secrets, the OIDC token endpoint),
//! the managed-identity endpoint — each with its own clock and faults — and the record of every
//! invocation of pat-rotator, every consumer and every operator act.
//!
//! Everything here is synchronous and happens at one moment of true time: the transport
//! ([`crate::wire`]) awaits a seeded delay, hands one request to [`World::serve`] — which draws
//! its fault, makes its effect, writes a line to the log and asks the checker whether an
//! invariant broke — awaits another delay and answers with the status, headers and body the
//! service would send.
//!
//! Clocks: true time is tokio's paused clock since the start, plus the jumps of suspended
//! processes (see [`World::jump`]); each service's clock is true time plus its own skew; each
//! pat-rotator process's wall clock is true time plus a skew that may be hours off and may jump.

mod databricks;
mod identity;
mod keyvault;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use pat_rotator::databricks::{oauth_secret, pat};
use pat_rotator::rotation::model::Profile;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::time::Instant;

use crate::checker::{Checker, Exception};
use crate::leak::Leaks;
use crate::log::{Log, at};
use crate::rng::Rng;
use crate::scenario::{BurstKind, Invoke, Kind, PRINCIPALS, Scenario, Service, TargetSpec, VAULTS, WORKSPACES};
use crate::wire::{Answer, Call};

pub use databricks::SP_LIMIT;
pub use keyvault::{named_id as keyvault_named_id, version_hex};

pub type Shared = Arc<Mutex<World>>;

pub fn lock(w: &Shared) -> MutexGuard<'_, World> {
    w.lock().expect("the world's lock (single-threaded)")
}

/// True time at the start of every schedule.
pub const EPOCH: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The service's managed identity (every deployment, and the operator's CLI when it runs as
/// the service).
pub const SERVICE_OID: &str = "5a1c0e9d-3b2f-4c6a-8e7d-9f0a1b2c3d4e";
pub const SERVICE_APPID: &str = "c0ffee00-1111-4222-8333-444455556666";
/// Another identity the operator's CLI may run as (contract §10's guard): a user-assigned
/// identity here (`AZURE_CLIENT_ID`), so that its tokens come from the same endpoint; to Key
/// Vault and the workspaces it is simply another object id, an admin like the service.
pub const OPERATOR_OID: &str = "9e8d7c6b-5a49-4838-a271-605f4e3d2c1b";
pub const OPERATOR_CLIENT_ID: &str = "0be7a7e5-3c1d-4f2a-9b8e-7d6c5b4a3f21";
/// `IDENTITY_ENDPOINT`: a host only the world answers (no socket is ever opened).
pub const IDENTITY_HOST: &str = "msi.sim.invalid";
pub const IDENTITY_ENDPOINT: &str = "http://msi.sim.invalid/msi/token";
/// `IDENTITY_HEADER`: a secret like any other (the leak check looks for it).
pub const IDENTITY_HEADER: &str = "ih7Qm2Zx9Lp4Vt8Rk3Ws6Yd1Nc5Hb0Gf";

/// The contract's cap: a target keeps at most 6 live PATs (§7.4). The checker's own number,
/// not the core's.
pub const CAP: usize = 6;
/// A new credential older than this is never written (§7.4).
pub const MAX_UNWRITTEN_AGE: Duration = Duration::minutes(30);
/// A revocation relies on reads of the other configured secrets at most this old (§7.4(a)).
pub const REREAD: Duration = Duration::minutes(10);

/// One configured target, as the checker sees it (from the scenario, never from the code
/// under test; only the secret key of §6 is computed with `pat::secret_key`, a hash).
#[derive(Debug, Clone)]
pub struct TargetView {
    pub dep: usize,
    pub name: String,
    pub kind: Kind,
    pub ws: String,
    /// The principal's application id (OAuth targets).
    pub app: String,
    pub vault: String,
    pub secret: String,
    /// The secret key of contract §6.
    pub key: String,
    pub grace: Duration,
    pub renew_before: Duration,
    pub lifetime_days: u32,
    pub keep_while_used: bool,
    /// The identity whose PATs are the target's (§6: the identity that lists them): the
    /// service's, or within an invocation the identity its process runs as.
    pub owner: String,
}

impl TargetView {
    pub fn from_spec(dep: usize, t: &TargetSpec) -> TargetView {
        let vault = VAULTS[t.vault].to_string();
        TargetView {
            dep,
            name: t.name.clone(),
            kind: t.kind,
            ws: WORKSPACES[t.workspace].to_string(),
            app: PRINCIPALS[t.principal].to_string(),
            key: pat::secret_key(&format!("https://{vault}/"), &t.secret),
            vault,
            secret: t.secret.clone(),
            grace: Duration::hours(t.grace_hours as i64),
            renew_before: Duration::days(t.renew_before_days as i64),
            lifetime_days: t.lifetime_days,
            keep_while_used: t.keep_while_used,
            owner: SERVICE_OID.to_string(),
        }
    }

    /// (vault host, secret name in lower case): how the world files a secret.
    pub fn secret_key(&self) -> (String, String) {
        (self.vault.clone(), self.secret.to_ascii_lowercase())
    }

    pub fn where_(&self) -> String {
        format!("{}/{}", self.vault.split('.').next().unwrap_or_default(), self.secret)
    }

    pub fn profile(&self) -> &'static Profile {
        match self.kind {
            Kind::Pat => &pat::PROFILE,
            Kind::OAuth => &oauth_secret::PROFILE,
        }
    }

    /// The issuer that holds this target's credentials.
    pub fn holder(&self) -> Holder {
        match self.kind {
            Kind::Pat => Holder::Pat { ws: self.ws.clone(), owner: self.owner.clone() },
            Kind::OAuth => Holder::OAuth { app: self.app.clone() },
        }
    }
}

/// A deployment's configuration as it stands (the operator may rename a secret or move it).
#[derive(Debug, Clone)]
pub struct Deployment {
    pub targets: Vec<TargetView>,
    pub present: bool,
}

// ---- Key Vault -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Version {
    /// `https://{vault}/secrets/{name}/{32 hex}`.
    pub id: String,
    pub value: String,
    pub tags: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// `attributes.created`: whole seconds on the vault's clock.
    pub created: i64,
    pub enabled: bool,
    pub exp: Option<i64>,
    /// True time it was stored.
    pub landed: Duration,
    /// Stored by a write whose answer had already gone (it landed after its answer).
    pub late: bool,
    /// The invocation that wrote it (0: the operator, the starting state).
    pub by: u32,
    /// The object id of the identity whose token wrote it (None: the starting state).
    pub writer: Option<String>,
}

impl Version {
    pub fn short(&self) -> String {
        let v = self.id.rsplit('/').next().unwrap_or_default();
        v.chars().take(6).collect()
    }
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    Live,
    /// Soft-deleted: reads answer 404, writes 409 `ObjectIsDeletedButRecoverable`.
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

// ---- issuers -------------------------------------------------------------------------------

/// Who holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// A PAT of `owner` (an identity's object id) in workspace `ws`.
    Pat { ws: String, owner: String },
    /// An OAuth secret of the principal with application id `app` (account-wide).
    OAuth { app: String },
}

/// A credential an issuer holds or held (never forgotten: the checker asks about the dead).
#[derive(Debug, Clone)]
pub struct Cred {
    pub id: String,
    pub value: String,
    pub holder: Holder,
    pub comment: Option<String>,
    /// On the issuer's clock (milliseconds).
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    /// True time of the last use (a consumer's read, the verification) or its creation: the
    /// workspaces' inactivity rule counts from it.
    pub last_used: Duration,
    /// True time of the last use (a consumer's, the verification): what the Token Management
    /// API's `last_used_day` reports (contract §10 "Usage").
    pub used: Option<Duration>,
    /// The invocation that created it.
    pub made_by: Option<u32>,
    pub death: Option<Death>,
    /// A new OAuth secret is refused by the token endpoint until then (propagation).
    pub accepted_from: Duration,
    /// True time its create request was sent (pat-rotator's credentials).
    pub requested: Duration,
}

impl Cred {
    pub fn kind(&self) -> Kind {
        match self.holder {
            Holder::Pat { .. } => Kind::Pat,
            Holder::OAuth { .. } => Kind::OAuth,
        }
    }
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

/// An Entra ID access token the managed-identity endpoint issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub identity: String,
    pub audience: String,
}

// ---- invocations ---------------------------------------------------------------------------

/// What one invocation of pat-rotator is, as the checker follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvKind {
    Timer,
    Provision {
        force: bool,
        dry_run: bool,
    },
    Cli {
        force: bool,
        dry_run: bool,
        revoke_superseded: bool,
        take_ownership: bool,
    },
    /// `SecretEvent`: an unforced run of the targets an event matched.
    Event {
        near_expiry: bool,
    },
    Status,
    Tokens,
    TokensRevoke,
}

impl InvKind {
    pub fn of(i: &Invoke) -> InvKind {
        match i {
            Invoke::Timer => InvKind::Timer,
            Invoke::Provision { force, dry_run, .. } => InvKind::Provision { force: *force, dry_run: *dry_run },
            Invoke::Cli(c) => InvKind::Cli {
                force: c.force,
                dry_run: c.dry_run,
                revoke_superseded: c.revoke_superseded,
                take_ownership: c.take_ownership,
            },
            Invoke::Event { kind, .. } => InvKind::Event { near_expiry: kind.near_expiry() },
            Invoke::Status { .. } => InvKind::Status,
            Invoke::Tokens { .. } => InvKind::Tokens,
            Invoke::TokensRevoke { .. } => InvKind::TokensRevoke,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            InvKind::Timer => "RotatePat",
            InvKind::Provision { force: true, dry_run: true } => "ProvisionPat force dry-run",
            InvKind::Provision { force: true, dry_run: false } => "ProvisionPat force",
            InvKind::Provision { force: false, dry_run: true } => "ProvisionPat dry-run",
            InvKind::Provision { .. } => "ProvisionPat",
            InvKind::Cli { revoke_superseded: true, take_ownership: true, .. } => {
                "cli rotate --force --revoke-superseded --take-ownership"
            }
            InvKind::Cli { revoke_superseded: true, .. } => "cli rotate --force --revoke-superseded",
            InvKind::Cli { force: true, dry_run: false, take_ownership: true, .. } => {
                "cli rotate --force --take-ownership"
            }
            InvKind::Cli { force: false, dry_run: false, take_ownership: true, .. } => "cli rotate --take-ownership",
            InvKind::Cli { force: true, dry_run: true, .. } => "cli rotate --force --dry-run",
            InvKind::Cli { force: false, dry_run: true, .. } => "cli rotate --dry-run",
            InvKind::Cli { force: true, .. } => "cli rotate --force",
            InvKind::Cli { .. } => "cli rotate",
            InvKind::Event { near_expiry: true } => "SecretEvent (near expiry)",
            InvKind::Event { near_expiry: false } => "SecretEvent",
            InvKind::Status => "cli status",
            InvKind::Tokens => "cli tokens",
            InvKind::TokensRevoke => "cli tokens --revoke",
        }
    }

    /// Whether it may change anything at all.
    pub fn may_change(self) -> bool {
        match self {
            InvKind::Timer | InvKind::TokensRevoke | InvKind::Event { .. } => true,
            InvKind::Provision { dry_run, .. } | InvKind::Cli { dry_run, .. } => !dry_run,
            InvKind::Status | InvKind::Tokens => false,
        }
    }

    pub fn rotates(self) -> bool {
        matches!(self, InvKind::Timer | InvKind::Provision { .. } | InvKind::Cli { .. } | InvKind::Event { .. })
    }

    /// Whether contract §10's guard holds its runs back from a managed latest version another
    /// identity wrote (`--revoke-superseded`: even with `--take-ownership`).
    pub fn guarded(self) -> bool {
        match self {
            InvKind::Cli { revoke_superseded: true, .. } => true,
            InvKind::Cli { take_ownership, .. } => !take_ownership,
            InvKind::Event { .. } => true,
            _ => false,
        }
    }
}

/// What an invocation's first successful read of a target's secret returned.
#[derive(Debug, Clone)]
pub struct SeenRead {
    pub version: Version,
    /// Key Vault's `Date`, when it sent one.
    pub vault_at: Option<OffsetDateTime>,
}

/// What the checker follows per target of an invocation.
#[derive(Debug, Clone, Default)]
pub struct PerTarget {
    /// Every list, read and versions request concerning it succeeded, and no read said
    /// "absent".
    pub reads_ok: bool,
    pub revokes_ok: bool,
    /// The first answer its reads of the target's secret got (`Some(None)`: absent, or a
    /// disabled version).
    pub first_read: Option<Option<SeenRead>>,
    /// One of its writes stored (or will store) a version of the target's secret.
    pub wrote: bool,
    /// What the core announced it revokes for the cap (its warnings).
    pub cap_ids: Vec<String>,
    /// The invocation's outcome for this target: Some(ok).
    pub ok: Option<bool>,
    /// One of its successful reads of the target's secret found the latest version absent,
    /// not managed, or written by its own identity (or untagged): contract §10's guard cannot
    /// be what held it back.
    pub guard_clear: bool,
    /// One of them found a managed latest version another identity wrote.
    pub guarded: Option<Version>,
    /// A read of the target's secret answered that its latest version is disabled.
    pub saw_disabled: bool,
    /// A read of the target's secret answered 404.
    pub saw_absent: bool,
    /// The vault's `Date` of each such 404, in whole seconds (`None`: undated).
    pub absent_dates: Vec<Option<i64>>,
    /// Every answer its reads of the target's secret got, in order (`None`: absent or a
    /// disabled version): the observe read, and the protection reads of other targets.
    pub reads: Vec<Option<SeenRead>>,
}

/// What an invocation learnt of a token's last use (contract §10 "Usage").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageSeen {
    /// `last_used_day` on the current or the previous UTC day of the answer's `Date`.
    InUse,
    /// Used before that.
    NotInUse,
    /// An answer without `last_used_day` or without `Date`, or a failure (or no answer yet):
    /// the token is kept for the run.
    Keep(&'static str),
    /// `404`: the token is gone.
    Gone,
}

#[derive(Debug, Clone)]
pub struct Inv {
    pub id: u32,
    pub dep: usize,
    pub process: u32,
    pub kind: InvKind,
    pub start: Duration,
    pub end: Option<Duration>,
    pub killed: bool,
    /// The targets it acts on, and every target configured in its process.
    pub targets: Vec<TargetView>,
    pub configured: Vec<TargetView>,
    pub per: BTreeMap<String, PerTarget>,
    /// The ids of its last listing, per issuer (by the checker's [`Holder`]).
    pub listings: BTreeMap<Holder, Vec<String>>,
    /// Credentials it created.
    pub created: Vec<usize>,
    /// For `tokens --revoke`: the id asked for.
    pub revoke_id: Option<String>,
    /// Every read it made of any secret succeeded and found the secret: the protection of
    /// contract §7.4(a) blocks what a failed or absent read of another configured secret would
    /// have to rule out, the cap included.
    pub reads_all_ok: bool,
    /// Reads whose answer has not reached it (yet): one that never does is a failed read.
    pub unanswered_reads: u32,
    /// Per issuer: the world's request number when its last delivered listing was taken.
    pub listing_req: BTreeMap<Holder, u32>,
    /// Per issuer: a page of its last delivered listing carried `Date`.
    pub listing_dated: BTreeMap<Holder, bool>,
    /// Per target: the world's request number of its last create or verification.
    pub last_call: BTreeMap<String, u32>,
    /// Issuers that refused one of its creates as full (it then makes room for the credential
    /// it is about to create).
    pub full: BTreeSet<Holder>,
    /// Per target: its last create was refused for a lifetime above the workspace's cap
    /// (true: in words that name the lifetime).
    pub lifetime_refused: BTreeMap<String, bool>,
    /// Its read of a workspace's `maxTokenLifetimeDays` got a fault (a 5xx or 429).
    pub lifetime_cap_failed: bool,
    /// The object id its process runs as.
    pub identity: String,
    /// Per token id: what its last usage lookup told it (contract §10 "Usage").
    pub usage: BTreeMap<String, UsageSeen>,
    /// Workspaces whose Token Management API refused it (`403`): usage is not judged there.
    pub usage_forbidden: BTreeSet<String>,
    /// The kinds of trouble the world answered it with (see [`World::classify`]).
    pub trouble: BTreeSet<&'static str>,
    /// Per target: how each of its writes ended for it, as far as the answer reached it
    /// (`Some(true)`: refused by a 4xx it received; `Some(false)`: stored or unknown).
    pub writes: BTreeMap<String, Vec<bool>>,
    /// How many write requests it sent of each value (invariant 14).
    pub writes_of: BTreeMap<String, u32>,
    /// Credentials whose revocation it asked for and that failed or went unanswered.
    pub delete_failed: BTreeSet<String>,
    /// Per target: the error code of its outcome, when it failed.
    pub codes: BTreeMap<String, String>,
}

impl Inv {
    pub fn label(&self) -> String {
        format!("{} of {}", self.kind.label(), ["A", "B"][self.dep])
    }
}

/// A pat-rotator process: a Function App instance (long-lived) or one CLI command.
#[derive(Debug, Clone)]
pub struct Process {
    pub dep: usize,
    pub cli: bool,
    /// The object id it runs as.
    pub identity: String,
    /// Its wall clock's offset from true time.
    pub skew: Duration,
}

/// A write that lands later (a 5xx or a timeout whose request went through after all).
#[derive(Debug)]
pub struct Landing {
    pub host: String,
    pub name: String,
    pub version: Version,
    pub after: std::time::Duration,
    pub inv: u32,
}

/// A consumer's read: what it holds.
#[derive(Debug, Clone)]
pub struct Holding {
    pub consumer: u32,
    pub cred: String,
    pub at: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub invocations: u32,
    /// The most invocations touching one target at once.
    pub max_concurrent: u32,
    pub killed: u32,
    pub requests: u32,
    pub faults: u32,
    /// Per target outcome action.
    pub actions: BTreeMap<String, u32>,
    /// Kinds of invocations run.
    pub kinds: BTreeMap<&'static str, u32>,
    /// Writes whose outcome was unknown to the client (5xx, 408, no answer).
    pub unknown_writes: u32,
}

pub struct World {
    pub sc: Scenario,
    pub start: Instant,
    /// Time the world skipped while a process was suspended (see [`World::jump`]).
    pub jumped: Duration,
    /// Each jump: the true time it started at, and how long it was.
    pub jumps: Vec<(Duration, Duration)>,
    pub rng: Rng,
    pub log: Log,
    pub vaults: BTreeMap<String, Vault>,
    pub ws_skews: BTreeMap<String, Duration>,
    /// Per (workspace, identity): the token quota.
    pub quotas: BTreeMap<String, usize>,
    /// A workspace admin's `maxTokenLifetimeDays` for a while: (workspace, or "" for both; days;
    /// from, until: true times), in one schedule of eight (chosen by seed, with no random draw,
    /// so that the other schedules stay as they were); never in the quiet phase.
    pub lifetime_cap: Option<(String, u32, Duration, Duration)>,
    /// Every credential ever held, in creation order.
    pub creds: Vec<Cred>,
    pub issued: BTreeMap<String, Issued>,
    pub deployments: Vec<Deployment>,
    pub processes: BTreeMap<u32, Process>,
    pub invs: BTreeMap<u32, Inv>,
    pub holdings: Vec<Holding>,
    pub checker: Checker,
    pub leaks: Leaks,
    /// Faults off, no slow answers: the quiet phase.
    pub quiet: bool,
    next_inv: u32,
    next_process: u32,
    next_attempt: u32,
    next_cred: u32,
    /// The latest moment a pending write lands.
    pub last_landing: Duration,
    /// Writes that land later, by id: (true time they land, the write).
    pub pending: BTreeMap<u32, (Duration, Landing)>,
    next_landing: u32,
    pub stats: Stats,
    /// Key Vault's events not yet handed to Event Grid (see `crate::sim`'s event grid).
    pub events_out: Vec<KvEvent>,
    /// Wakes the event grid when `events_out` fills.
    pub events_ready: Arc<tokio::sync::Notify>,
    /// What each `SecretEvent` invocation answered (Event Grid redelivers after a failure).
    pub event_status: BTreeMap<u32, u16>,
}

/// An event Key Vault raises (contract §10 "Key Vault events").
#[derive(Debug, Clone)]
pub struct KvEvent {
    pub kind: crate::scenario::EventKind,
    pub host: String,
    /// The secret's name as stored.
    pub name: String,
    /// The version's id (its full URL).
    pub id: String,
    pub exp: Option<i64>,
}

/// A value nobody can guess: `prefix` and 32 hex digits.
pub fn secret_value(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

impl World {
    pub fn new(sc: Scenario, runtime_rng: Rng, keep_log: bool) -> World {
        let mut w = World {
            start: Instant::now(),
            jumped: Duration::ZERO,
            jumps: Vec::new(),
            rng: runtime_rng,
            log: Log { keep: keep_log, lines: Vec::new() },
            vaults: BTreeMap::new(),
            ws_skews: BTreeMap::new(),
            quotas: BTreeMap::new(),
            lifetime_cap: None,
            creds: Vec::new(),
            issued: BTreeMap::new(),
            deployments: Vec::new(),
            processes: BTreeMap::new(),
            invs: BTreeMap::new(),
            holdings: Vec::new(),
            checker: Checker::default(),
            leaks: Leaks::default(),
            quiet: false,
            next_inv: 1,
            next_process: 1,
            next_attempt: 1,
            next_cred: 1,
            last_landing: Duration::ZERO,
            pending: BTreeMap::new(),
            next_landing: 1,
            stats: Stats::default(),
            events_out: Vec::new(),
            events_ready: Arc::new(tokio::sync::Notify::new()),
            event_status: BTreeMap::new(),
            sc,
        };
        w.leaks.add(IDENTITY_HEADER);
        for (i, host) in VAULTS.iter().enumerate() {
            let skew = w.sc.vault_skews[i];
            w.vaults.insert(host.to_string(), Vault { host: host.to_string(), skew, secrets: BTreeMap::new() });
        }
        for (i, host) in WORKSPACES.iter().enumerate() {
            w.ws_skews.insert(host.to_string(), w.sc.ws_skews[i]);
            w.quotas.insert(host.to_string(), w.sc.quotas[i]);
        }
        if w.sc.seed % 8 == 2 {
            let hours = 6 + (w.sc.seed / 8 % 3) as i64 * 6;
            w.lifetime_cap = Some((String::new(), 30, Duration::ZERO, Duration::hours(hours)));
        }
        for (dep, d) in w.sc.deployments.clone().iter().enumerate() {
            let targets = d.targets.iter().map(|t| TargetView::from_spec(dep, t)).collect();
            w.deployments.push(Deployment { targets, present: d.from == Duration::ZERO });
        }
        w.seed_state();
        w
    }

    // ---- clocks ------------------------------------------------------------------------

    pub fn now(&self) -> Duration {
        Duration::try_from(Instant::now() - self.start).expect("true time fits") + self.jumped
    }
    pub fn vault_at(&self, host: &str, t: Duration) -> OffsetDateTime {
        EPOCH + t + self.vaults.get(host).map(|v| v.skew).unwrap_or_default()
    }
    pub fn vault_now(&self, host: &str) -> OffsetDateTime {
        self.vault_at(host, self.now())
    }
    pub fn ws_at(&self, host: &str, t: Duration) -> OffsetDateTime {
        EPOCH + t + self.ws_skews.get(host).copied().unwrap_or_default()
    }
    pub fn ws_now(&self, host: &str) -> OffsetDateTime {
        self.ws_at(host, self.now())
    }
    pub fn accounts_now(&self) -> OffsetDateTime {
        EPOCH + self.now() + self.sc.accounts_skew
    }
    /// The clock a credential's times are on, at true time `t`.
    pub fn issuer_at(&self, h: &Holder, t: Duration) -> OffsetDateTime {
        match h {
            Holder::Pat { ws, .. } => self.ws_at(ws, t),
            Holder::OAuth { .. } => EPOCH + t + self.sc.accounts_skew,
        }
    }
    /// A process's wall clock.
    pub fn local_now(&self, process: u32) -> OffsetDateTime {
        self.local_at(process, self.now())
    }

    /// Process `process`'s wall clock at true time `now`.
    pub fn local_at(&self, process: u32, now: Duration) -> OffsetDateTime {
        let base = match self.sc.local_jump {
            Some((at, to)) if now >= at => to,
            _ => self.sc.local_skew,
        };
        EPOCH + now + base + self.processes.get(&process).map(|p| p.skew).unwrap_or_default()
    }

    /// A suspended process (a laptop's lid closed during a CLI run): the world's clocks move
    /// `d` ahead while the process's monotonic clock — tokio's, which the deadline and the
    /// timeouts use — does not. Every other actor stands still meanwhile, as if suspended too.
    pub fn jump(&mut self, d: Duration) {
        self.jumps.push((self.now(), d));
        self.jumped += d;
        // The vault did not stand still: what was to land meanwhile has landed.
        let now = self.now();
        let due: Vec<u32> = self.pending.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
        for id in due {
            self.land_due(id);
        }
    }

    /// A write that lands at true time `at` (a task of the transport wakes for it; a jump past
    /// it lands it at once). Returns its id.
    pub fn schedule_landing(&mut self, at: Duration, l: Landing) -> u32 {
        let id = self.next_landing;
        self.next_landing += 1;
        self.pending.insert(id, (at, l));
        id
    }

    /// Lands write `id` if it has not landed yet.
    pub fn land_due(&mut self, id: u32) {
        if let Some((_, l)) = self.pending.remove(&id) {
            self.land(l);
        }
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

    pub fn who(inv: u32) -> String {
        if inv == 0 { "(none)".to_string() } else { format!("inv {inv}") }
    }

    // ---- faults and delays -------------------------------------------------------------

    /// The schedule's own time: true time without the jumps of suspended processes. The acts
    /// and the bursts of the script are placed on it, so a burst meets the acts it was drawn
    /// for whatever suspensions happened before.
    pub fn script_now(&self) -> Duration {
        Duration::try_from(Instant::now() - self.start).expect("true time fits")
    }

    pub fn burst(&self, service: Service, kind: BurstKind) -> bool {
        let now = self.script_now();
        !self.quiet
            && self.sc.bursts.iter().any(|b| b.service == service && b.kind == kind && b.from <= now && now < b.to)
    }

    /// Whether this request gets the fault: a burst of that kind is on, or the per-request
    /// rate hits.
    pub fn fault(&mut self, service: Service, burst: Option<BurstKind>, per_mille: u32) -> bool {
        if self.quiet {
            return false;
        }
        let flaky = self.burst(service, BurstKind::Flaky) && self.rng.chance(250);
        let hit = flaky || burst.is_some_and(|b| self.burst(service, b)) || self.rng.chance(per_mille);
        if hit {
            self.stats.faults += 1;
        }
        hit
    }

    /// The latency before a request's effect.
    pub fn delay_before(&mut self) -> std::time::Duration {
        if !self.quiet && self.rng.chance(self.sc.faults.slow.max(2)) {
            return self.rng.millis(2_000, 8_000);
        }
        self.rng.millis(2, 700)
    }

    /// The latency after a request's effect, before its answer arrives: usually short, now and
    /// then seconds or longer than any client waits.
    pub fn delay_after(&mut self) -> std::time::Duration {
        if !self.quiet && self.rng.chance(self.sc.faults.slow.max(2)) {
            return if self.rng.chance(300) { self.rng.millis(40_000, 200_000) } else { self.rng.millis(2_000, 9_000) };
        }
        self.rng.millis(2, 700)
    }

    /// A CLI process may be suspended while it waits for an answer (5–45 minutes).
    pub fn maybe_suspend(&mut self, inv: u32) {
        let cli = self.invs.get(&inv).is_some_and(|i| self.processes.get(&i.process).is_some_and(|p| p.cli));
        if self.quiet || !cli {
            return;
        }
        // Laptops close their lids now and then; during a storm (a flaky service and a crowd of
        // CLIs) a little more often.
        let rate = if self.burst(Service::Workspace, BurstKind::Flaky) || self.burst(Service::Vault, BurstKind::Flaky) {
            20
        } else {
            self.sc.faults.slow / 3
        };
        if self.rng.chance(rate) {
            let d = Duration::milliseconds(self.rng.range(300_000, 2_700_000) as i64);
            self.jump(d);
            self.note(&Self::who(inv), |_| format!("the process is suspended for {}", crate::log::span(d)));
        }
    }

    /// An activity id, as Azure and Databricks error texts carry one: upstream detail that must
    /// never reach a caller's body.
    pub fn activity(&mut self) -> String {
        format!("activity id {:08x}-{:04x}", self.rng.next_u64() as u32, self.rng.next_u64() as u16)
    }

    // ---- the transport's entry -----------------------------------------------------------

    /// One request of process `process` on behalf of invocation `inv`, sent at true time
    /// `sent`: its effect, and the answer the service sends.
    pub fn serve(&mut self, process: u32, inv: u32, sent: Duration, call: &Call) -> Answer {
        self.absorb();
        self.stats.requests += 1;
        let read = call.method == azure_core::http::Method::Get && call.host != IDENTITY_HOST;
        if read && let Some(x) = self.invs.get_mut(&inv) {
            x.unanswered_reads += 1;
        }
        let answer = if call.host == IDENTITY_HOST {
            self.identity(process, inv, call)
        } else if self.vaults.contains_key(&call.host) {
            self.keyvault(process, inv, sent, call)
        } else if self.ws_skews.contains_key(&call.host) {
            self.databricks(process, inv, sent, call)
        } else {
            let now = self.now();
            self.checker.violation(
                0,
                now,
                format!("{} sent a request to {}, which is no service of the world", Self::who(inv), call.host),
            );
            Answer::refused()
        };
        self.absorb();
        self.classify(inv, call, &answer);
        if read { answer.deliver(crate::wire::Delivered::ReadAnswered) } else { answer }
    }

    /// What kind of trouble an answer is, for the checker's judgement of error codes
    /// (invariant 12): recorded on the invocation whether or not the answer reaches it.
    fn classify(&mut self, inv: u32, call: &Call, a: &Answer) {
        use crate::wire::After;
        let mut tags: Vec<&'static str> = Vec::new();
        match a.after {
            After::Refused => tags.push("refused"),
            After::Hang => tags.push("hang"),
            After::Answer(d) if d >= std::time::Duration::from_secs(9) => tags.push("slow"),
            After::Answer(_) => {}
        }
        let status = a.status;
        if a.after != After::Refused && status >= 400 {
            let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            if call.host == IDENTITY_HOST {
                tags.push("mi_error");
            } else if self.vaults.contains_key(&call.host) {
                let inner = body["error"]["innererror"]["code"].as_str().unwrap_or_default();
                match status {
                    401 => {}
                    429 => tags.push("throttle"),
                    503 => tags.extend(["throttle", "5xx"]),
                    408 | 500..=599 => tags.push("5xx"),
                    409 if inner == "ObjectIsDeletedButRecoverable" => tags.push("kv_deleted"),
                    403 if inner == "SecretDisabled" => {}
                    // A read's 404 says "absent"; a 404 elsewhere is an error.
                    404 if call.method == azure_core::http::Method::Get && !call.path.ends_with("/versions") => {}
                    _ => tags.push("kv_4xx"),
                }
            } else {
                let code = body["error_code"].as_str().or(body["error"].as_str()).unwrap_or_default();
                match status {
                    429 => tags.push("throttle"),
                    503 => tags.extend(["throttle", "5xx"]),
                    500..=599 => tags.push("5xx"),
                    400 if code == "QUOTA_EXCEEDED" => tags.push("db_quota"),
                    // (the world's own refusal of a lifetime above the workspace's cap)
                    400 if call.path.ends_with("/token/create") && code == "INVALID_PARAMETER_VALUE" => {
                        tags.push("db_lifetime")
                    }
                    401 => tags.push("db_401"),
                    403 => tags.push("db_403"),
                    404 => tags.push("db_404"),
                    _ => tags.push("db_4xx"),
                }
            }
        }
        if let Some(x) = self.invs.get_mut(&inv) {
            x.trouble.extend(tags);
        }
    }

    /// Files the log lines and warnings the code under test emitted since the last effect.
    pub fn absorb(&mut self) {
        for (inv, line) in crate::capture::drain() {
            self.check_output(inv, "log line", &line.text);
            self.check_log_words(inv, &line.text);
            if line.warn
                && let Some(target) = &line.target
            {
                self.check_warning_claims(inv, target, &line.text);
            }
            if let Some(target) = &line.target
                && let Some(ids) = crate::capture::cap_ids(&line.text)
                && let Some(p) = self.invs.get_mut(&inv).and_then(|i| i.per.get_mut(target))
            {
                p.cap_ids.extend(ids);
            }
            if line.warn && self.log.keep {
                let who = Self::who(inv);
                let text = line.text.clone();
                self.note(&who, |_| format!("warns: {text}"));
            }
        }
    }

    /// An answer reached its invocation: what it learnt.
    pub fn deliver(&mut self, inv: u32, d: crate::wire::Delivered) {
        let Some(x) = self.invs.get_mut(&inv) else { return };
        match d {
            crate::wire::Delivered::Read { targets, read } => {
                // Contract §10's guard, by the checker's reading: a managed latest version whose
                // `rotated-by` is not this identity (`unknown` included); no tag is accepted.
                let other = read.as_ref().filter(|r| {
                    let v = &r.version;
                    v.tag(pat_rotator::rotation::model::tags::MANAGED_BY)
                        == Some(pat_rotator::rotation::model::tags::MANAGED_BY_VALUE)
                        && v.tag(pat_rotator::rotation::model::tags::ROTATED_BY)
                            .is_some_and(|by| !by.eq_ignore_ascii_case(&x.identity))
                });
                for t in targets {
                    if let Some(p) = x.per.get_mut(&t) {
                        if p.first_read.is_none() {
                            p.first_read = Some(read.clone());
                        }
                        p.reads.push(read.clone());
                        match other {
                            Some(r) => p.guarded = Some(r.version.clone()),
                            None => p.guard_clear = true,
                        }
                    }
                }
            }
            crate::wire::Delivered::Usage { id, seen } => {
                x.usage.insert(id, seen);
            }
            crate::wire::Delivered::WriteRefused { targets } => {
                for t in targets {
                    if let Some(last) = x.writes.entry(t).or_default().last_mut() {
                        *last = true;
                    }
                }
            }
            crate::wire::Delivered::Deleted { id } => {
                x.delete_failed.remove(&id);
            }
            crate::wire::Delivered::ReadAnswered => x.unanswered_reads = x.unanswered_reads.saturating_sub(1),
            crate::wire::Delivered::Listing { holder, ids, from, req, dated } => {
                if from == 0 {
                    x.listing_req.insert(holder.clone(), req);
                    x.listing_dated.insert(holder.clone(), dated);
                } else if dated {
                    x.listing_dated.insert(holder.clone(), true);
                }
                let l = x.listings.entry(holder).or_default();
                if from == 0 {
                    l.clear();
                }
                l.extend(ids);
            }
        }
    }

    // ---- processes and invocations -----------------------------------------------------

    pub fn new_process(&mut self, dep: usize, cli: bool, identity: &str) -> u32 {
        let id = self.next_process;
        self.next_process += 1;
        let skew = if cli { Duration::seconds(self.rng.range(0, 120) as i64 - 60) } else { Duration::ZERO };
        self.processes.insert(id, Process { dep, cli, skew, identity: identity.to_string() });
        id
    }

    /// An invocation begins: what it acts on, in the configuration its process has.
    pub fn begin(
        &mut self,
        dep: usize,
        process: u32,
        kind: InvKind,
        targets: Vec<TargetView>,
        configured: Vec<TargetView>,
    ) -> u32 {
        let id = self.next_inv;
        self.next_inv += 1;
        self.stats.invocations += 1;
        // Its targets as its identity sees them: the PATs of that identity.
        let identity = self.processes.get(&process).map(|p| p.identity.clone()).unwrap_or_default();
        let as_identity = |ts: Vec<TargetView>| -> Vec<TargetView> {
            ts.into_iter().map(|t| TargetView { owner: identity.clone(), ..t }).collect()
        };
        let (targets, configured) = (as_identity(targets), as_identity(configured));
        *self.stats.kinds.entry(kind.label()).or_default() += 1;
        let now = self.now();
        let per = targets
            .iter()
            .map(|t| (t.name.clone(), PerTarget { reads_ok: true, revokes_ok: true, ..Default::default() }))
            .collect();
        let inv = Inv {
            id,
            dep,
            process,
            kind,
            start: now,
            end: None,
            killed: false,
            targets,
            configured,
            per,
            listings: BTreeMap::new(),
            created: Vec::new(),
            revoke_id: None,
            reads_all_ok: true,
            unanswered_reads: 0,
            listing_req: BTreeMap::new(),
            listing_dated: BTreeMap::new(),
            last_call: BTreeMap::new(),
            full: BTreeSet::new(),
            lifetime_refused: BTreeMap::new(),
            lifetime_cap_failed: false,
            identity: identity.clone(),
            usage: BTreeMap::new(),
            usage_forbidden: BTreeSet::new(),
            trouble: BTreeSet::new(),
            writes: BTreeMap::new(),
            writes_of: BTreeMap::new(),
            delete_failed: BTreeSet::new(),
            codes: BTreeMap::new(),
        };
        for t in &inv.targets {
            let active = self
                .invs
                .values()
                .filter(|x| x.end.is_none() && x.targets.iter().any(|y| y.name == t.name && y.key == t.key))
                .count() as u32;
            self.stats.max_concurrent = self.stats.max_concurrent.max(active + 1);
        }
        let names: Vec<String> = inv.targets.iter().map(|t| t.name.clone()).collect();
        self.note(&Self::who(id), |_| {
            format!("starts: {} on process {process}, targets {}", inv.label(), names.join(", "))
        });
        self.invs.insert(id, inv);
        id
    }

    /// The targets of invocation `inv` that a request to this secret concerns.
    pub fn targets_of_secret(&self, inv: u32, host: &str, name: &str) -> Vec<String> {
        let Some(i) = self.invs.get(&inv) else { return Vec::new() };
        i.targets
            .iter()
            .filter(|t| t.vault == host && t.secret.eq_ignore_ascii_case(name))
            .map(|t| t.name.clone())
            .collect()
    }

    /// The targets of invocation `inv` a PAT with `comment` is created for
    /// (`pat-rotator/<target>/…`).
    pub fn targets_of_comment(&self, inv: u32, comment: Option<&str>) -> Vec<String> {
        let Some(i) = self.invs.get(&inv) else { return Vec::new() };
        let Some(named) = comment.and_then(|m| m.strip_prefix("pat-rotator/")).and_then(|r| r.split('/').next()) else {
            return Vec::new();
        };
        i.targets.iter().filter(|t| t.name == named).map(|t| t.name.clone()).collect()
    }

    /// The targets of invocation `inv` whose credentials `holder` holds.
    pub fn targets_of_holder(&self, inv: u32, holder: &Holder) -> Vec<String> {
        let Some(i) = self.invs.get(&inv) else { return Vec::new() };
        i.targets.iter().filter(|t| &t.holder() == holder).map(|t| t.name.clone()).collect()
    }

    /// Invocation `inv` created or verified credential `i` (for the targets it is of).
    pub fn called(&mut self, inv: u32, i: usize) {
        let req = self.stats.requests;
        let Some(x) = self.invs.get(&inv) else { return };
        let names: Vec<String> = x
            .targets
            .iter()
            .filter(|t| {
                t.holder() == self.creds[i].holder
                    && self.creds[i]
                        .comment
                        .as_deref()
                        .is_none_or(|m| m.starts_with(&format!("pat-rotator/{}/", t.name)))
            })
            .map(|t| t.name.clone())
            .collect();
        if let Some(x) = self.invs.get_mut(&inv) {
            for n in names {
                x.last_call.insert(n, req);
            }
        }
    }

    pub fn event_answered(&mut self, inv: u32, status: u16) {
        self.event_status.insert(inv, status);
        self.note(&Self::who(inv), |_| format!("SecretEvent answered {status}"));
    }

    pub fn read_failed(&mut self, inv: u32) {
        if let Some(i) = self.invs.get_mut(&inv) {
            i.reads_all_ok = false;
        }
    }

    pub fn per_mut(&mut self, inv: u32, targets: &[String], f: impl Fn(&mut PerTarget)) {
        if let Some(i) = self.invs.get_mut(&inv) {
            for t in targets {
                if let Some(p) = i.per.get_mut(t) {
                    f(p);
                }
            }
        }
    }

    // ---- credentials -------------------------------------------------------------------

    /// The workspace's `maxTokenLifetimeDays` now (0: no limit).
    pub fn max_lifetime_days(&self, ws: &str) -> u32 {
        match &self.lifetime_cap {
            Some((w, days, from, until))
                if (w.is_empty() || w == ws) && !self.quiet && (*from..*until).contains(&self.now()) =>
            {
                *days
            }
            _ => 0,
        }
    }

    pub fn live(&self, c: &Cred) -> bool {
        c.death.is_none() && c.expires.is_none_or(|e| e > self.issuer_at(&c.holder, self.now()))
    }

    pub fn cred_index(&self, id: &str) -> Option<usize> {
        self.creds.iter().position(|c| c.id == id)
    }

    pub fn cred_by_value(&self, value: &str) -> Option<usize> {
        self.creds.iter().position(|c| c.value == value)
    }

    /// A new credential (the leak check learns its value at once).
    pub fn add_cred(
        &mut self,
        holder: Holder,
        comment: Option<String>,
        created: OffsetDateTime,
        lifetime: Duration,
        made_by: Option<u32>,
    ) -> usize {
        let n = self.next_cred;
        self.next_cred += 1;
        let (id, value) = match holder {
            Holder::Pat { .. } => (format!("tok-{n:03}"), secret_value(&mut self.rng, "dapi")),
            Holder::OAuth { .. } => (format!("sec-{n:03}"), secret_value(&mut self.rng, "dose")),
        };
        let app = match &holder {
            Holder::OAuth { app } => Some(app.clone()),
            Holder::Pat { .. } => None,
        };
        self.leaks.add_credential(&value, app.as_deref());
        let now = self.now();
        self.creds.push(Cred {
            id,
            value,
            holder,
            comment,
            created,
            expires: Some(created + lifetime),
            last_used: now,
            used: None,
            made_by,
            death: None,
            accepted_from: Duration::ZERO,
            requested: now,
        });
        self.creds.len() - 1
    }

    /// A pat-rotator invocation revokes credential `i`: the checker judges it.
    pub fn kill_by_inv(&mut self, inv: u32, i: usize) {
        let (excuse, harmless) = self.check_revoke(inv, i);
        let now = self.now();
        self.creds[i].death = Some(Death { at: now, by: Some(inv), excuse, harmless });
        self.note(&Self::who(inv), |w| {
            format!("revoked {}{}", w.creds[i].id, excuse.map(|e| format!(" ({e:?})")).unwrap_or_default())
        });
    }

    /// Someone other than pat-rotator revokes credential `i`.
    pub fn kill_by_world(&mut self, who: &str, i: usize, why: Exception) {
        let harmless = self.check_world_revoke(i, why);
        let now = self.now();
        self.creds[i].death = Some(Death { at: now, by: None, excuse: Some(why), harmless });
        self.note(who, |w| format!("revokes {} ({why:?})", w.creds[i].id));
    }

    // ---- Key Vault helpers -------------------------------------------------------------

    pub fn secret(&self, host: &str, name: &str) -> Option<&Secret> {
        self.vaults.get(host)?.secrets.get(&name.to_ascii_lowercase())
    }

    /// The secret, created empty if needed, with the grace of the target that writes it.
    pub fn secret_mut(&mut self, host: &str, name: &str) -> &mut Secret {
        let grace = self
            .deployments
            .iter()
            .flat_map(|d| d.targets.iter())
            .find(|t| t.vault == host && t.secret.eq_ignore_ascii_case(name))
            .map(|t| t.grace)
            .unwrap_or_default();
        self.vaults
            .get_mut(host)
            .expect("a known vault")
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Secret { name: name.to_string(), grace, versions: Vec::new(), state: SecretState::Live })
    }

    /// What counts as the latest version of a secret (contract §7.4): the last one; when it is
    /// disabled (so that a reader finds it from the versions list), every version of its
    /// `created` second too.
    pub fn latest_set(s: &Secret) -> Vec<&Version> {
        let Some(last) = s.versions.last() else { return Vec::new() };
        if last.enabled {
            return vec![last];
        }
        let newest = s.versions.iter().map(|v| v.created).max().unwrap_or(last.created);
        s.versions.iter().filter(|v| v.created == newest || std::ptr::eq(*v, last)).collect()
    }

    /// The latest version of a target's secret (whatever its state).
    pub fn latest_of(&self, t: &TargetView) -> Option<&Version> {
        let (h, n) = t.secret_key();
        self.secret(&h, &n).and_then(|s| s.versions.last())
    }

    pub fn latest_mut(&mut self, t: &TargetView) -> Option<&mut Version> {
        let (h, n) = t.secret_key();
        self.vaults.get_mut(&h)?.secrets.get_mut(&n)?.versions.last_mut()
    }

    pub fn set_state(&mut self, t: &TargetView, state: SecretState) {
        let (h, n) = t.secret_key();
        self.secret_mut(&h, &n).state = state;
    }

    pub fn new_version_id(&mut self, host: &str, name: &str) -> String {
        format!("https://{host}/secrets/{name}/{}", version_hex(&mut self.rng))
    }

    // ---- consumers ---------------------------------------------------------------------

    pub fn consume(&mut self, consumer: u32) {
        // Now and then a consumer that has not read again uses what it read earlier: a
        // superseded credential still in use (contract §10 "Usage").
        if !self.holdings.is_empty() && self.rng.chance(300) {
            let k = self.rng.below(self.holdings.len() as u64) as usize;
            let h = self.holdings[k].clone();
            if let Some(i) = self.cred_index(&h.cred).filter(|i| self.live(&self.creds[*i])) {
                let now = self.now();
                self.creds[i].last_used = now;
                self.creds[i].used = Some(now);
                self.note(&format!("consumer {}", h.consumer), |_| format!("uses {} again", h.cred));
            }
            return;
        }
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
            .flat_map(|d| d.targets.iter().map(|t| t.secret_key()))
            .filter(|s| all.contains(s))
            .collect();
        let pool = if !configured.is_empty() && self.rng.chance(750) { configured } else { all };
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
            self.note(&who, |_| format!("reads {name}: {} holds no credential of an issuer", v.short()));
            return;
        };
        let now = self.now();
        let cred = self.creds[i].id.clone();
        self.note(&who, |_| format!("reads {name} {} → {cred}", v.short()));
        if self.live(&self.creds[i]) {
            self.creds[i].last_used = now;
            self.creds[i].used = Some(now);
        }
        self.check_consumer_read(&who, &host, &name, &v, i);
        self.holdings.push(Holding { consumer, cred, at: now });
    }

    // ---- the starting state ------------------------------------------------------------

    fn seed_version(&mut self, t: &TargetView, cred: usize, age: Duration, previous: Option<usize>, managed: bool) {
        use pat_rotator::rotation::model::{rfc3339, tags};
        let p = t.profile();
        let c = self.creds[cred].clone();
        let mut tg = BTreeMap::new();
        let content_type = if managed {
            tg.insert(pat_rotator::databricks::tags::HOST.to_string(), t.ws.clone());
            if t.kind == Kind::OAuth {
                tg.insert(pat_rotator::databricks::tags::CLIENT_ID.to_string(), t.app.clone());
            }
            tg.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
            tg.insert(tags::TARGET.to_string(), t.name.clone());
            tg.insert(p.id_tag.to_string(), c.id.clone());
            if let Some(et) = p.expires_tag {
                tg.insert(et.to_string(), c.expires.map(rfc3339).unwrap_or_default());
            }
            tg.insert(tags::ROTATED_AT.to_string(), rfc3339(EPOCH - age));
            if let Some(prev) = previous {
                tg.insert(p.previous_tag.to_string(), self.creds[prev].id.clone());
            }
            Some(p.content_type.to_string())
        } else {
            None
        };
        let (host, name) = (t.vault.clone(), t.secret.clone());
        let id = self.new_version_id(&host, &name);
        let v = Version {
            id,
            value: c.value.clone(),
            tags: tg,
            content_type,
            created: (self.vault_now(&host) - age).unix_timestamp(),
            enabled: true,
            exp: c.expires.map(|e| e.unix_timestamp()),
            landed: -age,
            late: false,
            by: 0,
            writer: None,
        };
        self.secret_mut(&host, &name).versions.push(v);
    }

    fn seed_state(&mut self) {
        let long = Duration::days(365);
        // Per workspace: foreign tokens, an unconfigured target's, legacy and orphan tokens of
        // the first PAT target configured there.
        for (w, ws) in WORKSPACES.iter().enumerate() {
            let holder = Holder::Pat { ws: ws.to_string(), owner: SERVICE_OID.to_string() };
            let now = self.ws_now(ws);
            for _ in 0..self.sc.foreign_creds[w] {
                let age = Duration::days(self.rng.range(1, 100) as i64);
                let comment = self.rng.pick(&["Terraform-generated token", "ci job", "notebook"]).to_string();
                self.add_cred(holder.clone(), Some(comment), now - age, long, None);
            }
            for _ in 0..self.sc.other_target_tokens[w] {
                let a = self.unique_id();
                let key = pat::secret_key("https://kv-billing.vault.azure.net/", "databricks-pat");
                let age = Duration::hours(self.rng.range(2, 100) as i64);
                self.add_cred(
                    holder.clone(),
                    Some(pat::comment("finance", &key, &a)),
                    now - age,
                    Duration::days(5),
                    None,
                );
            }
            let first = self.deployments[0].targets.iter().find(|t| t.kind == Kind::Pat && t.ws == *ws).cloned();
            if let Some(t) = first {
                for _ in 0..self.sc.legacy_unrecorded[w] {
                    let a = self.unique_id();
                    let age = Duration::hours(self.rng.range(2, 100) as i64);
                    let life = Duration::days(t.lifetime_days as i64);
                    self.add_cred(holder.clone(), Some(format!("pat-rotator/{}/{a}", t.name)), now - age, life, None);
                }
                for _ in 0..self.sc.orphans[w] {
                    let a = self.unique_id();
                    let age = Duration::minutes(self.rng.range(1, 180) as i64);
                    let life = Duration::days(t.lifetime_days as i64);
                    self.add_cred(holder.clone(), Some(pat::comment(&t.name, &t.key, &a)), now - age, life, None);
                }
            }
        }
        for (p, app) in PRINCIPALS.iter().enumerate() {
            for _ in 0..self.sc.foreign_secrets[p] {
                let age = Duration::days(self.rng.range(1, 30) as i64);
                let now = self.accounts_now();
                self.add_cred(Holder::OAuth { app: app.to_string() }, None, now - age, long, None);
            }
        }
        // Each target's secret.
        let all: Vec<TargetView> = self.deployments.iter().flat_map(|d| d.targets.clone()).collect();
        for (n, t) in all.iter().enumerate() {
            let lifetime = Duration::days(t.lifetime_days as i64);
            let holder = t.holder();
            let created_at = |w: &World, age: Duration| w.issuer_at(&holder, Duration::ZERO) - age;
            match self.sc.initial[n] {
                crate::scenario::InitialSecret::Absent => {}
                crate::scenario::InitialSecret::Foreign { age } => {
                    let comment = (t.kind == Kind::Pat).then(|| "Terraform-generated token".to_string());
                    let c = self.add_cred(
                        holder.clone(),
                        comment,
                        created_at(self, age + Duration::minutes(1)),
                        long,
                        None,
                    );
                    self.seed_version(t, c, age, None, false);
                }
                crate::scenario::InitialSecret::Managed { age, legacy, previous } => {
                    let comment = |w: &mut World| {
                        let a = w.unique_id();
                        (t.kind == Kind::Pat).then(|| {
                            if legacy {
                                format!("pat-rotator/{}/{a}", t.name)
                            } else {
                                pat::comment(&t.name, &t.key, &a)
                            }
                        })
                    };
                    let prev = previous.map(|p| {
                        let c = comment(self);
                        let i = self.add_cred(
                            holder.clone(),
                            c,
                            created_at(self, age + p + Duration::seconds(5)),
                            lifetime,
                            None,
                        );
                        self.seed_version(t, i, age + p, None, true);
                        i
                    });
                    let c = comment(self);
                    let i =
                        self.add_cred(holder.clone(), c, created_at(self, age + Duration::seconds(5)), lifetime, None);
                    self.seed_version(t, i, age, prev, true);
                }
            }
        }
        for i in 0..self.creds.len() {
            let c = self.creds[i].clone();
            self.note("start", |w| {
                format!(
                    "{} {:?} {:?} created {}{}",
                    c.id,
                    c.holder,
                    c.comment.as_deref().unwrap_or("(no comment)"),
                    at(c.created - EPOCH),
                    if w.live(&c) { "" } else { ", expired" }
                )
            });
        }
        let secrets: Vec<(String, String)> =
            self.vaults.iter().flat_map(|(h, v)| v.secrets.keys().map(move |n| (h.clone(), n.clone()))).collect();
        for (h, n) in secrets {
            let versions = self.secret(&h, &n).map(|s| s.versions.clone()).unwrap_or_default();
            for v in versions {
                self.note("start", |w| {
                    format!("{}/{n}: {}", h.split('.').next().unwrap_or_default(), w.describe_version(&v))
                });
            }
        }
    }

    pub fn describe_version(&self, v: &Version) -> String {
        use pat_rotator::databricks::tags as db;
        use pat_rotator::rotation::model::tags;
        let id = v.tag(db::TOKEN_ID).or(v.tag(db::SECRET_ID));
        let prev = v.tag(db::PREVIOUS_TOKEN_ID).or(v.tag(db::PREVIOUS_SECRET_ID));
        let holds = self.cred_by_value(&v.value).map(|i| self.creds[i].id.clone()).unwrap_or_else(|| "?".into());
        format!(
            "{} holds {holds}, names {}{}{}{} created {}",
            v.short(),
            id.unwrap_or("nothing"),
            prev.map(|p| format!(" (previous {p})")).unwrap_or_default(),
            if v.tag(tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE) { "" } else { " [not managed-by]" },
            if v.enabled { "" } else { " [disabled]" },
            at(OffsetDateTime::from_unix_timestamp(v.created).unwrap_or(EPOCH) - EPOCH)
        )
    }

    /// Every configured target of every present deployment.
    pub fn configured(&self) -> Vec<TargetView> {
        self.deployments.iter().filter(|d| d.present).flat_map(|d| d.targets.clone()).collect()
    }

    /// Ids of credentials named (by id tag) by some version of `t`'s secret.
    pub fn recorded_ids(&self, t: &TargetView) -> BTreeSet<String> {
        let p = t.profile();
        let (h, n) = t.secret_key();
        let mut out = BTreeSet::new();
        if let Some(s) = self.secret(&h, &n) {
            for v in &s.versions {
                out.extend(v.tag(p.id_tag).map(str::to_string));
                out.extend(v.tag(p.previous_tag).map(str::to_string));
            }
        }
        out
    }
}

/// Tags of a version whose value names credential `c` in the way pat-rotator writes them.
pub fn kind_profile(k: Kind) -> &'static Profile {
    match k {
        Kind::Pat => &pat::PROFILE,
        Kind::OAuth => &oauth_secret::PROFILE,
    }
}
