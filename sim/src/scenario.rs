//! One schedule's script, drawn from its seed: the deployments and their targets (several per
//! deployment: shared identities and workspaces, two OAuth targets on one principal, secrets in
//! two vaults), the settings, the starting state of every vault, workspace and principal, the
//! fault profile, and what happens when (timer passes, ProvisionPat calls, CLI commands,
//! operator actions, consumer reads).
//!
//! The script says what is *attempted* and when; how each request goes (its latency, its fault)
//! is drawn while the schedule runs, from a stream forked from the same seed. Every scenario has
//! at least two invocations touching one target that start at the same instant, and at least
//! one burst of faults over them, so every schedule searches concurrency and failure.

use std::fmt::Write;

use time::Duration;

use crate::rng::Rng;

/// Which credential a target rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Personal access tokens of the service's identity (contract §6, §7).
    Pat,
    /// OAuth secrets of a service principal (contract §9).
    OAuth,
}

/// The workspaces, vaults and principals of every schedule (their hosts and ids).
pub const WORKSPACES: [&str; 2] =
    ["adb-1111111111111111.11.azuredatabricks.net", "adb-2222222222222222.12.azuredatabricks.net"];
pub const VAULTS: [&str; 4] =
    ["kv-a.vault.azure.net", "kv-b.vault.azure.net", "kv-c.vault.azure.net", "kv-d.vault.azure.net"];
pub const PRINCIPALS: [&str; 2] = ["6f0c3f7e-1b7a-4c7e-9a52-3d1f0c2b9e11", "0d9c1b2a-7e6f-4a5b-8c9d-0e1f2a3b4c5d"];

/// One configured target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    pub name: String,
    pub kind: Kind,
    /// Index into [`WORKSPACES`].
    pub workspace: usize,
    /// Index into [`PRINCIPALS`] (OAuth targets).
    pub principal: usize,
    /// Index into [`VAULTS`].
    pub vault: usize,
    pub secret: String,
    pub lifetime_days: u32,
    pub renew_before_days: u32,
    pub grace_hours: u32,
    /// `keep_while_used` (PATs, contract §10 "Usage").
    pub keep_while_used: bool,
}

/// The settings of one deployment (contract §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub cooldown_minutes: u32,
    pub max_concurrency: u32,
    pub call_timeout_secs: u32,
    pub retry_attempts: u32,
    pub retry_base_ms: u32,
}

/// One pat-rotator deployment: a Function App (its instances share the configuration) and the
/// operator's CLI with the same configuration and identity.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub targets: Vec<TargetSpec>,
    /// Deployed from this moment.
    pub from: Duration,
    /// Function App instances (ProvisionPat calls spread over them; the timer runs on one).
    pub instances: usize,
    pub settings: Settings,
    /// The timer's schedule period.
    pub period: Duration,
}

/// How the operator replaces the tag map of the latest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retag {
    /// Every tag but `managed-by`.
    DropManagedBy,
    /// `managed-by` set to another tool's name.
    OtherManager,
    /// Only the credential-id tags and an operator's own tag.
    OnlyIds,
    /// Nothing of pat-rotator's: not even the credential id. Off unless
    /// [`Knobs::retag_strips_ids`] (sim/README.md, "Findings").
    StripAll,
}

/// A CLI `rotate` pass.
#[derive(Debug, Clone, PartialEq)]
pub struct CliRotate {
    /// `--target` names (indices into the deployment's targets); empty: every target.
    pub targets: Vec<usize>,
    pub force: bool,
    pub dry_run: bool,
    pub revoke_superseded: bool,
    /// Run as the operator's own identity rather than the service's (contract §10's guard).
    pub as_operator: bool,
    pub take_ownership: bool,
}

impl CliRotate {
    /// `rotate --force` of the given targets, as the service.
    pub fn forced(targets: Vec<usize>) -> CliRotate {
        CliRotate {
            targets,
            force: true,
            dry_run: false,
            revoke_superseded: false,
            as_operator: false,
            take_ownership: false,
        }
    }
}

/// The Key Vault events pat-rotator acts on (contract §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    NewVersion,
    NearExpiry,
    Expired,
}

impl EventKind {
    pub fn near_expiry(self) -> bool {
        matches!(self, EventKind::NearExpiry | EventKind::Expired)
    }

    pub fn event_type(self) -> &'static str {
        match self {
            EventKind::NewVersion => "Microsoft.KeyVault.SecretNewVersionCreated",
            EventKind::NearExpiry => "Microsoft.KeyVault.SecretNearExpiry",
            EventKind::Expired => "Microsoft.KeyVault.SecretExpired",
        }
    }
}

/// An event that is none of pat-rotator's business, or malformed (answered `200`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stray {
    /// A certificate's new version in a configured vault.
    Certificate,
    /// An event type Key Vault has but pat-rotator does not act on.
    OtherType,
    /// A secret of a vault no target uses.
    Unconfigured,
    /// `ObjectName` that differs from the name in `Id`.
    Malformed,
    /// `Data.event` a string that is not JSON.
    NotJson,
}

/// What an invocation of pat-rotator is.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoke {
    /// `RotatePat`: every target, unforced, on instance 0.
    Timer,
    /// `ProvisionPat` on an instance.
    Provision { target: usize, force: bool, dry_run: bool, instance: usize },
    /// `pat-rotator rotate …` (a new process).
    Cli(CliRotate),
    /// `pat-rotator status` (reads only), as the service or as the operator.
    Status { as_operator: bool },
    /// `pat-rotator tokens` (reads only).
    Tokens { as_operator: bool },
    /// `pat-rotator tokens --revoke ID`: an id the operator picks while the schedule runs (a
    /// live credential of one of the deployment's issuers — sometimes one a configured secret
    /// names, which the guard must refuse).
    TokensRevoke { protected: bool },
    /// `SecretEvent` on an instance: the host's invocation `body` carrying Key Vault's event(s)
    /// as Event Grid delivers them; `targets` those it matches (the checker's own reading of
    /// contract §10), which it evaluates as unforced runs.
    Event { kind: EventKind, body: String, targets: Vec<usize>, instance: usize },
}

/// One thing that happens at a moment of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// An invocation of deployment `dep`, dropped after `kill_after` if it has not ended.
    Run {
        dep: usize,
        invoke: Invoke,
        kill_after: Option<Duration>,
    },
    /// A pipeline or a person calling `rotate --force --target T` `runs` times in a row.
    ForceLoop {
        dep: usize,
        target: usize,
        runs: u32,
    },
    /// The operator points a target at another secret name (a new secret key).
    Rename {
        dep: usize,
        target: usize,
    },
    /// The operator points a target at another vault.
    MoveVault {
        dep: usize,
        target: usize,
    },
    Retag {
        dep: usize,
        target: usize,
        how: Retag,
    },
    /// The operator disables the latest version.
    Disable {
        dep: usize,
        target: usize,
    },
    /// The operator soft-deletes the secret, recovers it `recover_after` later; reads answer
    /// 404 for `recovering_for` more after the recovery.
    SoftDelete {
        dep: usize,
        target: usize,
        recover_after: Duration,
        recovering_for: Duration,
    },
    /// The operator copies the latest version of one target's secret into another's (backup
    /// and restore into a second vault, a sync tool, a migration): value and tags.
    Copy {
        dep: usize,
        from: usize,
        to: usize,
    },
    /// Someone revokes a credential in a workspace or deletes a principal's OAuth secret.
    OutOfBand,
    /// A consumer reads the latest version of a secret.
    Consume,
    /// The workspaces' inactivity rule (the 90-day revocation, compressed) sweeps.
    InactivitySweep,
    /// Key Vault raises `SecretNearExpiry` or `SecretExpired` for the latest version of a
    /// target's secret (it raises `SecretNewVersionCreated` for every version it stores).
    Expiry {
        dep: usize,
        target: usize,
        kind: EventKind,
    },
    /// Event Grid delivers an event pat-rotator does not act on.
    StrayEvent {
        dep: usize,
        kind: Stray,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub at: Duration,
    pub what: What,
}

/// A target's secret as the schedule finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialSecret {
    Absent,
    /// Written by pat-rotator `age` ago; `legacy`: by a release before the secret key (a
    /// three-segment comment); `previous`: a superseded version before it, whose credential is
    /// still live.
    Managed {
        age: Duration,
        legacy: bool,
        previous: Option<Duration>,
    },
    /// Written by someone else (the original script's "Terraform-generated token").
    Foreign {
        age: Duration,
    },
}

/// Per-request fault rates (per mille) of one schedule. Bursts come on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Key Vault reads and version lists: 429/5xx (retried by the client).
    pub kv_error: u32,
    /// Key Vault reads answer 404 although the secret exists (replication, a recovery).
    pub kv_not_found: u32,
    pub kv_no_date: u32,
    /// A write refused with a 4xx (429; or 400 quoting the value): not stored.
    pub kv_write_refused: u32,
    /// A write answered 5xx or 408 (applied now, later or never).
    pub kv_write_5xx: u32,
    /// A write without an answer (applied now, later or never).
    pub kv_write_hang: u32,
    pub ws_error: u32,
    pub ws_no_date: u32,
    /// A create without an answer or with a 5xx (applied or not).
    pub ws_create_ambiguous: u32,
    /// A create that never reached the workspace (connection refused; retried).
    pub ws_create_refused: u32,
    pub ws_revoke_error: u32,
    pub ws_verify_error: u32,
    /// An answer that takes seconds, or longer than the client waits.
    pub slow: u32,
}

/// A window in which every request of one kind to one service misbehaves in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub service: Service,
    pub from: Duration,
    pub to: Duration,
    pub kind: BurstKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Vault,
    Workspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstKind {
    /// 5xx / 429 until the retries give up.
    Errors,
    /// Reads answer 404 (Key Vault only).
    NotFound,
    /// Answers without `Date`.
    NoDate,
    /// Writes and creates get no answer; half of them take effect anyway.
    Timeouts,
    /// Every fault a request can meet, each now and then (a quarter of the time): the
    /// service is flaky rather than down, so that concurrent runs fare differently.
    Flaky,
}

/// One schedule.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub deployments: Vec<DeploymentSpec>,
    /// The active phase; a quiet phase follows (sim/README.md).
    pub length: Duration,
    /// Per workspace: the identity's token quota (600 in Databricks, small here so that it is
    /// reached).
    pub quotas: [usize; 2],
    /// Clock skews: per vault, per workspace, the accounts service (OAuth secrets' times).
    pub vault_skews: [Duration; 4],
    pub ws_skews: [Duration; 2],
    pub accounts_skew: Duration,
    /// The processes' local clocks: this far off true time, and from `.0` on `.1` off.
    pub local_skew: Duration,
    pub local_jump: Option<(Duration, Duration)>,
    /// Per target of deployment 0 (by index), and for deployment 1's targets after them.
    pub initial: Vec<InitialSecret>,
    /// Per workspace: foreign tokens, another (unconfigured) target's tokens, legacy-comment
    /// tokens no version records, orphans of the first PAT target there.
    pub foreign_creds: [u32; 2],
    pub other_target_tokens: [u32; 2],
    pub legacy_unrecorded: [u32; 2],
    pub orphans: [u32; 2],
    /// Per principal: secrets nobody records (made by hand).
    pub foreign_secrets: [u32; 2],
    /// The principal's secrets list comes in pages of this many.
    pub sp_page: usize,
    pub faults: Faults,
    pub bursts: Vec<Burst>,
    /// Credentials unused this long are revoked by the workspace (Databricks: 90 days).
    pub inactivity: Option<Duration>,
    /// Per workspace: the service is no admin of its Token Management API (usage lookups
    /// answer `403`).
    pub usage_forbidden: [bool; 2],
    pub acts: Vec<Act>,
}

/// What the generator may use beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Knobs {
    pub retag_strips_ids: bool,
}

const H: i64 = 3600;

fn secs(s: u64) -> Duration {
    Duration::seconds(s as i64)
}

/// Lifetime, renew-before and grace for a target whose timer runs every `period_hours`:
/// rotations at least grace + three periods apart, so that a quiet phase can settle (a target
/// rotated more often than its grace relies on the cap alone: sim/README.md) even when another
/// target on its issuer rotates in between.
fn draw_timing(r: &mut Rng, period_hours: i64) -> (u32, u32, u32) {
    let grace_hours = *r.pick(&[0, 1, 2, 6, 24, 24]);
    let room = |l: u32| (l as i64 * 24 - grace_hours as i64 - 3 * period_hours) / 24;
    let lifetimes: Vec<u32> = [2, 3, 5, 90].into_iter().filter(|l| room(*l) >= 1).collect();
    let lifetime_days = *r.pick(&lifetimes);
    let renew_before_days = if lifetime_days == 90 {
        30
    } else {
        r.range(1, room(lifetime_days).min(lifetime_days as i64 - 1) as u64) as u32
    };
    (lifetime_days, renew_before_days, grace_hours as u32)
}

impl Scenario {
    pub fn generate(seed: u64, knobs: Knobs) -> Scenario {
        let mut root = Rng::new(seed);
        let mut r = root.fork();
        let length = Duration::days(r.range(1, 3) as i64);
        let skew = |r: &mut Rng, max: u64| Duration::seconds(r.range(0, 2 * max) as i64 - max as i64);

        // Deployment 0: one to three targets. The first target's kind alternates with the seed.
        let first_kind = if seed.is_multiple_of(2) { Kind::Pat } else { Kind::OAuth };
        let period_hours = *r.pick(&[4, 6, 12, 24]);
        let period = Duration::hours(period_hours);
        let base = |kind: Kind| if kind == Kind::Pat { "databricks-pat" } else { "databricks-sp-secret" };
        let mut targets = Vec::new();
        let (l, rb, g) = draw_timing(&mut r, period_hours);
        targets.push(TargetSpec {
            name: "analytics".into(),
            kind: first_kind,
            workspace: 0,
            principal: 0,
            vault: 0,
            secret: base(first_kind).into(),
            lifetime_days: l,
            renew_before_days: rb,
            grace_hours: g,
            keep_while_used: false,
        });
        if r.chance(550) {
            // A second target sharing the first one's issuer: the same identity and workspace
            // (PATs), or the same principal (OAuth); its secret in the same or another vault.
            let kind = if r.chance(800) { first_kind } else { [Kind::Pat, Kind::OAuth][r.below(2) as usize] };
            let (l, rb, g) = draw_timing(&mut r, period_hours);
            let vault = if r.chance(500) { 0 } else { 1 };
            targets.push(TargetSpec {
                name: "billing".into(),
                kind,
                workspace: if kind == Kind::OAuth && r.chance(300) { 1 } else { 0 },
                principal: 0,
                vault,
                secret: format!("{}-billing", base(kind)),
                lifetime_days: l,
                renew_before_days: rb,
                grace_hours: g,
                keep_while_used: false,
            });
        }
        if r.chance(250) {
            let kind = [Kind::Pat, Kind::OAuth][r.below(2) as usize];
            let (l, rb, g) = draw_timing(&mut r, period_hours);
            targets.push(TargetSpec {
                name: "ml".into(),
                kind,
                workspace: 1,
                principal: 1,
                vault: 1,
                secret: format!("{}-ml", base(kind)),
                lifetime_days: l,
                renew_before_days: rb,
                grace_hours: g,
                keep_while_used: false,
            });
        }
        let settings = |r: &mut Rng| Settings {
            cooldown_minutes: *r.pick(&[15, 15, 0, 60]),
            max_concurrency: *r.pick(&[1, 2, 8]),
            call_timeout_secs: *r.pick(&[10, 20, 30]),
            retry_attempts: r.range(1, 5) as u32,
            retry_base_ms: *r.pick(&[200, 500, 1000]),
        };
        let mut deployments = vec![DeploymentSpec {
            targets,
            from: Duration::ZERO,
            instances: r.range(1, 2) as usize,
            settings: settings(&mut r),
            period,
        }];
        // A second deployment (another Function App) with a target of the same name, identity
        // and issuer as the first target, its secret in its own vault.
        if r.chance(250) {
            let t0 = deployments[0].targets[0].clone();
            let from = if r.chance(500) { Duration::ZERO } else { secs(r.below(length.whole_seconds() as u64)) };
            let p = *r.pick(&[6, 12, 24]);
            let (l, rb, g) = draw_timing(&mut r, p);
            deployments.push(DeploymentSpec {
                targets: vec![TargetSpec { vault: 2, lifetime_days: l, renew_before_days: rb, grace_hours: g, ..t0 }],
                from,
                instances: 1,
                settings: settings(&mut r),
                period: Duration::hours(p),
            });
        }

        let n_targets: usize = deployments.iter().map(|d| d.targets.len()).sum();
        let mut initial = Vec::new();
        for d in &deployments {
            for t in &d.targets {
                initial.push(match r.below(10) {
                    0 | 1 => InitialSecret::Absent,
                    2 | 3 => InitialSecret::Foreign { age: secs(r.range(60, 40 * H as u64)) },
                    _ => {
                        let age = secs(r.range(60, (t.lifetime_days as u64 * 24 - 1) * H as u64));
                        let previous = r.chance(500).then(|| secs(r.range(60, 30 * H as u64)));
                        InitialSecret::Managed { age, legacy: t.kind == Kind::Pat && r.chance(250), previous }
                    }
                });
            }
        }
        debug_assert_eq!(initial.len(), n_targets);
        let mut quotas = [0; 2];
        let mut ws_skews = [Duration::ZERO; 2];
        let (mut foreign_creds, mut other_target_tokens, mut legacy_unrecorded, mut orphans) =
            ([0; 2], [0; 2], [0; 2], [0; 2]);
        for w in 0..2 {
            quotas[w] = r.range(8, 12) as usize;
            ws_skews[w] = skew(&mut r, 120);
            foreign_creds[w] = r.range(0, 2) as u32;
            other_target_tokens[w] = r.range(0, 2) as u32;
            legacy_unrecorded[w] = r.range(0, 1) as u32;
            orphans[w] = r.range(0, 2) as u32;
        }
        let foreign_secrets = [r.range(0, 1) as u32, r.range(0, 1) as u32];
        let mut vault_skews = [Duration::ZERO; 4];
        for v in &mut vault_skews {
            *v = skew(&mut r, 120);
        }
        let accounts_skew = skew(&mut r, 60);
        let local_skew = match r.below(4) {
            0 => Duration::ZERO,
            1 => skew(&mut r, 600),
            _ => skew(&mut r, 30 * H as u64),
        };
        let local_jump =
            r.chance(250).then(|| (secs(r.below(length.whole_seconds() as u64)), skew(&mut r, 30 * H as u64)));
        let faults = match r.below(3) {
            0 => Faults::default(),
            1 => Faults::light(),
            _ => Faults::heavy(),
        };
        let inactivity = r.chance(150).then(|| Duration::hours(r.range(24, 60) as i64));
        let sp_page = *r.pick(&[100, 2, 1]);

        let mut sc = Scenario {
            seed,
            deployments,
            length,
            quotas,
            vault_skews,
            ws_skews,
            accounts_skew,
            local_skew,
            local_jump,
            initial,
            foreign_creds,
            other_target_tokens,
            legacy_unrecorded,
            orphans,
            foreign_secrets,
            sp_page,
            faults,
            bursts: Vec::new(),
            inactivity,
            usage_forbidden: [false; 2],
            acts: Vec::new(),
        };
        let mut a = root.fork();
        let (acts, clusters, storm) = sc.draw_acts(&mut a, knobs);
        sc.acts = acts;
        sc.bursts = sc.draw_bursts(&mut root.fork(), &clusters, storm);
        // Drawn last, from a stream of their own: what the operator's identity, usage and Key
        // Vault's events add to a schedule.
        let mut x = root.fork();
        for d in &mut sc.deployments {
            for t in &mut d.targets {
                t.keep_while_used = t.kind == Kind::Pat && x.chance(450);
            }
        }
        sc.usage_forbidden = [x.chance(200), x.chance(200)];
        let mut more = sc.draw_identity_and_events(&mut x);
        sc.acts.append(&mut more);
        sc.acts.sort_by_key(|a| a.at);
        sc
    }

    /// The operator's CLI as its own identity (with and without `--take-ownership`, now and
    /// then `--revoke-superseded`), `status` and `tokens` as the operator, Key Vault's
    /// near-expiry and expired events, and events pat-rotator does not act on.
    fn draw_identity_and_events(&self, r: &mut Rng) -> Vec<Act> {
        let len = self.length.whole_seconds() as u64;
        let mut acts = Vec::new();
        for _ in 0..(r.chance(500) as u32 + r.chance(250) as u32 + r.chance(100) as u32) {
            let at = secs(r.below(len));
            let dep = *r.pick(&self.deps_at(at));
            let n = self.deployments[dep].targets.len();
            let revoke_superseded = r.chance(150);
            let invoke = Invoke::Cli(CliRotate {
                targets: if r.chance(400) && !revoke_superseded {
                    Vec::new()
                } else {
                    vec![r.below(n as u64) as usize]
                },
                force: r.chance(800) || revoke_superseded,
                dry_run: !revoke_superseded && r.chance(100),
                revoke_superseded,
                as_operator: true,
                take_ownership: r.chance(500),
            });
            acts.push(Act { at, what: What::Run { dep, invoke, kill_after: None } });
        }
        for invoke in [Invoke::Status { as_operator: true }, Invoke::Tokens { as_operator: true }] {
            if r.chance(150) {
                let at = secs(r.below(len));
                acts.push(Act { at, what: What::Run { dep: *r.pick(&self.deps_at(at)), invoke, kill_after: None } });
            }
        }
        for _ in 0..(r.chance(400) as u32 + r.chance(150) as u32) {
            let at = secs(r.below(len));
            let dep = *r.pick(&self.deps_at(at));
            let target = r.below(self.deployments[dep].targets.len() as u64) as usize;
            let kind = if r.chance(700) { EventKind::NearExpiry } else { EventKind::Expired };
            acts.push(Act { at, what: What::Expiry { dep, target, kind } });
        }
        if r.chance(300) {
            let at = secs(r.below(len));
            let kind =
                *r.pick(&[Stray::Certificate, Stray::OtherType, Stray::Unconfigured, Stray::Malformed, Stray::NotJson]);
            acts.push(Act { at, what: What::StrayEvent { dep: *r.pick(&self.deps_at(at)), kind } });
        }
        acts
    }

    /// Every deployment present at `at`.
    fn deps_at(&self, at: Duration) -> Vec<usize> {
        (0..self.deployments.len()).filter(|d| self.deployments[*d].from <= at).collect()
    }

    /// Faults in windows: the first one over the first cluster of concurrent invocations, of a
    /// kind every invocation meets (its first reads), so that every schedule has concurrency
    /// under a fault.
    fn draw_bursts(&self, r: &mut Rng, clusters: &[Duration], storm: Option<Duration>) -> Vec<Burst> {
        let len = self.length.whole_seconds() as u64;
        let mut bursts = Vec::new();
        // A storm meets answers that do not come: creates (their clean-up lists again) or
        // writes (outcomes unknown) for a good part of it.
        if let Some(at) = storm {
            for service in [Service::Workspace, Service::Vault] {
                if r.chance(700) {
                    bursts.push(Burst { service, from: at, to: at + secs(r.range(600, 3600)), kind: BurstKind::Flaky });
                }
            }
        }
        for (n, at) in clusters.iter().enumerate().skip(1) {
            // Every further cluster meets timeouts or errors half the time.
            if n > 0 && r.chance(500) {
                let service = if r.chance(500) { Service::Vault } else { Service::Workspace };
                let kind = if r.chance(500) { BurstKind::Timeouts } else { BurstKind::Errors };
                bursts.push(Burst { service, from: *at, to: *at + secs(r.range(30, 900)), kind });
            }
        }
        for i in 0..r.range(1, 3) {
            let service = if r.chance(500) { Service::Vault } else { Service::Workspace };
            let (from, kind) = if i == 0 {
                let kind = match (service, r.below(3)) {
                    (Service::Vault, 0) => BurstKind::NotFound,
                    (_, 1) => BurstKind::NoDate,
                    _ => BurstKind::Errors,
                };
                (clusters[0] - secs(r.range(0, 3)), kind)
            } else {
                let kind = match (service, r.below(4)) {
                    (Service::Vault, 0) => BurstKind::NotFound,
                    (_, 0) | (_, 1) => BurstKind::Errors,
                    (_, 2) => BurstKind::NoDate,
                    _ => BurstKind::Timeouts,
                };
                (secs(r.below(len)), kind)
            };
            bursts.push(Burst { service, from, to: from + secs(r.range(10, 1800)), kind });
        }
        bursts
    }

    fn draw_acts(&self, r: &mut Rng, knobs: Knobs) -> (Vec<Act>, Vec<Duration>, Option<Duration>) {
        let len = self.length.whole_seconds() as u64;
        let mut acts = Vec::new();
        let kill = |r: &mut Rng| r.chance(60).then(|| Duration::milliseconds(r.range(0, 15_000) as i64));
        let any_time = |r: &mut Rng| secs(r.below(len));
        let dep_at = |r: &mut Rng, at: Duration| *r.pick(&self.deps_at(at));
        let target_of = |r: &mut Rng, dep: usize| r.below(self.deployments[dep].targets.len() as u64) as usize;
        let cli = |r: &mut Rng, dep: usize, force: bool, dry_run: bool| {
            let n = self.deployments[dep].targets.len();
            let targets = if r.chance(500) { Vec::new() } else { vec![r.below(n as u64) as usize] };
            Invoke::Cli(CliRotate {
                targets,
                force,
                dry_run,
                revoke_superseded: false,
                as_operator: false,
                take_ownership: false,
            })
        };
        let provision = |r: &mut Rng, dep: usize, force: bool| Invoke::Provision {
            target: r.below(self.deployments[dep].targets.len() as u64) as usize,
            force,
            dry_run: r.chance(80),
            instance: r.below(self.deployments[dep].instances as u64) as usize,
        };

        // The timer of every deployment.
        for (dep, d) in self.deployments.iter().enumerate() {
            let period = d.period.whole_seconds() as u64;
            let mut t = d.from + secs(r.below(period));
            while t < self.length {
                acts.push(Act { at: t, what: What::Run { dep, invoke: Invoke::Timer, kill_after: kill(r) } });
                t += d.period;
            }
        }
        // Forced ProvisionPat calls, some as a retrying pipeline's burst.
        for _ in 0..r.range(1, 5) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let n = if r.chance(250) { r.range(2, 4) } else { 1 };
            let force = r.chance(850);
            let invoke = provision(r, dep, force);
            for i in 0..n {
                acts.push(Act {
                    at: at + secs(i * r.range(0, 20)),
                    what: What::Run { dep, invoke: invoke.clone(), kill_after: kill(r) },
                });
            }
        }
        for _ in 0..r.range(0, 2) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: What::Run { dep, invoke: cli(r, dep, true, false), kill_after: kill(r) } });
        }
        for _ in 0..r.range(0, 2) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let force = r.chance(500);
            acts.push(Act { at, what: What::Run { dep, invoke: cli(r, dep, force, true), kill_after: None } });
        }
        if r.chance(100) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let target = target_of(r, dep);
            let invoke = Invoke::Cli(CliRotate { revoke_superseded: true, ..CliRotate::forced(vec![target]) });
            acts.push(Act { at, what: What::Run { dep, invoke, kill_after: kill(r) } });
        }
        if r.chance(200) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let target = target_of(r, dep);
            acts.push(Act { at, what: What::ForceLoop { dep, target, runs: r.range(3, 9) as u32 } });
        }
        for invoke in [Invoke::Status { as_operator: false }, Invoke::Tokens { as_operator: false }] {
            if r.chance(200) {
                let at = any_time(r);
                acts.push(Act { at, what: What::Run { dep: dep_at(r, at), invoke, kill_after: None } });
            }
        }
        for _ in 0..(r.chance(150) as u32 + r.chance(100) as u32) {
            let at = any_time(r);
            let invoke = Invoke::TokensRevoke { protected: r.chance(300) };
            acts.push(Act { at, what: What::Run { dep: dep_at(r, at), invoke, kill_after: None } });
        }
        // Invocations touching one target that start together: at least one cluster per
        // schedule. The first two start at the same instant (so they overlap whatever their
        // requests answer); the seeded latencies decide who goes first.
        let mut clusters = Vec::new();
        for _ in 0..r.range(1, 3) {
            let at = any_time(r);
            clusters.push(at);
            let dep = dep_at(r, at);
            let target = target_of(r, dep);
            for i in 0..r.range(2, 3) {
                let invoke = match r.below(5) {
                    0 | 1 => Invoke::Timer,
                    2 => Invoke::Provision {
                        target,
                        force: true,
                        dry_run: false,
                        instance: r.below(self.deployments[dep].instances as u64) as usize,
                    },
                    3 => Invoke::Cli(CliRotate::forced(vec![target])),
                    _ => Invoke::Cli(CliRotate { force: false, ..CliRotate::forced(Vec::new()) }),
                };
                let offset = if i < 2 { 0 } else { r.range(0, 2000) as i64 };
                acts.push(Act {
                    at: at + Duration::milliseconds(offset),
                    what: What::Run { dep, invoke, kill_after: kill(r) },
                });
            }
            // Now and then the operator disables what the race left as the latest version:
            // two versions of one second, the newer disabled (contract §7.4's ties).
            if r.chance(350) {
                acts.push(Act { at: at + secs(r.range(120, 7200)), what: What::Disable { dep, target } });
            }
        }

        // A storm, in two schedules of five: several pipelines forcing one target at once
        // for a while, each from its own process, under a burst of faults — the cap, ambiguous
        // creates and their clean-up, unknown writes and suspended CLIs, all racing.
        let mut storm = None;
        if r.chance(400) {
            let at = any_time(r);
            storm = Some(at);
            let dep = dep_at(r, at);
            let target = target_of(r, dep);
            for _ in 0..r.range(2, 5) {
                let start = at + secs(r.range(0, 60));
                acts.push(Act { at: start, what: What::ForceLoop { dep, target, runs: r.range(3, 6) as u32 } });
            }
        }

        // The operator.
        if r.chance(150) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: What::Rename { dep, target: target_of(r, dep) } });
        }
        if r.chance(100) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: What::MoveVault { dep, target: target_of(r, dep) } });
        }
        let retags: &[Retag] = if knobs.retag_strips_ids {
            &[Retag::DropManagedBy, Retag::OtherManager, Retag::OnlyIds, Retag::StripAll]
        } else {
            &[Retag::DropManagedBy, Retag::OtherManager, Retag::OnlyIds]
        };
        for _ in 0..(r.chance(300) as u32 + r.chance(100) as u32) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: What::Retag { dep, target: target_of(r, dep), how: *r.pick(retags) } });
        }
        for _ in 0..(r.chance(200) as u32 + r.chance(100) as u32) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: What::Disable { dep, target: target_of(r, dep) } });
        }
        if r.chance(150) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let recover_after = secs(r.range(60, 6 * H as u64));
            acts.push(Act {
                at,
                what: What::SoftDelete {
                    dep,
                    target: target_of(r, dep),
                    recover_after,
                    recovering_for: secs(r.range(0, 120)),
                },
            });
            // The operator cleans up while the secret is away: `tokens --revoke` of what the
            // deleted secret names (contract §10: refused, the read said absent).
            if r.chance(500) {
                let when = at + secs(r.range(1, recover_after.whole_seconds() as u64));
                acts.push(Act {
                    at: when,
                    what: What::Run { dep, invoke: Invoke::TokensRevoke { protected: true }, kill_after: None },
                });
            }
        }
        // A copy between two targets of one deployment whose issuer could hold the credential.
        let d0 = &self.deployments[0].targets;
        let pairs: Vec<(usize, usize)> = (0..d0.len())
            .flat_map(|a| (0..d0.len()).map(move |b| (a, b)))
            .filter(|(a, b)| a != b && d0[*a].kind == d0[*b].kind)
            .filter(|(a, b)| match d0[*a].kind {
                Kind::Pat => d0[*a].workspace == d0[*b].workspace,
                Kind::OAuth => d0[*a].principal == d0[*b].principal,
            })
            .collect();
        if !pairs.is_empty() {
            for _ in 0..(r.chance(400) as u32 + r.chance(150) as u32) {
                let (from, to) = *r.pick(&pairs);
                acts.push(Act { at: any_time(r), what: What::Copy { dep: 0, from, to } });
            }
        }
        for _ in 0..(r.chance(300) as u32 + r.chance(100) as u32) {
            acts.push(Act { at: any_time(r), what: What::OutOfBand });
        }
        // Consumers.
        for _ in 0..r.range(10, 40) {
            acts.push(Act { at: any_time(r), what: What::Consume });
        }
        if self.inactivity.is_some() {
            let mut t = secs(r.below(H as u64));
            while t < self.length {
                acts.push(Act { at: t, what: What::InactivitySweep });
                t += Duration::hours(1);
            }
        }
        // A stable order (by time, then by draw order) for the same seed on every platform.
        acts.sort_by_key(|a| a.at);
        (acts, clusters, storm)
    }

    /// The scenario as a few readable lines (the head of every event log).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "seed {} · active {} then quiet · quotas {:?} · secrets pages of {} · usage forbidden {:?}",
            self.seed,
            crate::log::span(self.length),
            self.quotas,
            self.sp_page,
            self.usage_forbidden
        );
        for (i, d) in self.deployments.iter().enumerate() {
            let _ = writeln!(
                s,
                "deployment {} from {} · {} instance(s) · timer every {} · {:?}",
                ["A", "B"][i],
                crate::log::at(d.from),
                d.instances,
                crate::log::span(d.period),
                d.settings
            );
            for t in &d.targets {
                let _ = writeln!(
                    s,
                    "  target {} · {:?} · {} · {}/{} · lifetime {}d, renew before {}d, grace {}h{}",
                    t.name,
                    t.kind,
                    if t.kind == Kind::Pat { WORKSPACES[t.workspace] } else { PRINCIPALS[t.principal] },
                    VAULTS[t.vault].split('.').next().unwrap_or_default(),
                    t.secret,
                    t.lifetime_days,
                    t.renew_before_days,
                    t.grace_hours,
                    if t.keep_while_used { " · keep_while_used" } else { "" }
                );
            }
        }
        let _ = writeln!(
            s,
            "clocks: vaults {:?}s, workspaces {:?}s, accounts {:+}s, local {:+}s{}",
            self.vault_skews.map(|d| d.whole_seconds()),
            self.ws_skews.map(|d| d.whole_seconds()),
            self.accounts_skew.whole_seconds(),
            self.local_skew.whole_seconds(),
            match self.local_jump {
                Some((at, to)) => format!(" jumping to {:+}s at {}", to.whole_seconds(), crate::log::at(at)),
                None => String::new(),
            },
        );
        let _ = writeln!(
            s,
            "initial secrets {:?} · foreign {:?} · other target {:?} · legacy unrecorded {:?} · orphans {:?} · foreign OAuth secrets {:?} · inactivity {}",
            self.initial,
            self.foreign_creds,
            self.other_target_tokens,
            self.legacy_unrecorded,
            self.orphans,
            self.foreign_secrets,
            self.inactivity.map(crate::log::span).unwrap_or_else(|| "off".into()),
        );
        let _ = writeln!(s, "faults {:?}", self.faults);
        for b in &self.bursts {
            let _ = writeln!(
                s,
                "burst {:?} {:?} {} .. {}",
                b.service,
                b.kind,
                crate::log::at(b.from),
                crate::log::at(b.to)
            );
        }
        s
    }
}

impl Faults {
    fn light() -> Faults {
        Faults {
            kv_error: 20,
            kv_not_found: 10,
            kv_no_date: 20,
            kv_write_refused: 20,
            kv_write_5xx: 30,
            kv_write_hang: 30,
            ws_error: 20,
            ws_no_date: 20,
            ws_create_ambiguous: 30,
            ws_create_refused: 20,
            ws_revoke_error: 20,
            ws_verify_error: 10,
            slow: 5,
        }
    }

    fn heavy() -> Faults {
        Faults {
            kv_error: 100,
            kv_not_found: 60,
            kv_no_date: 100,
            kv_write_refused: 80,
            kv_write_5xx: 150,
            kv_write_hang: 150,
            ws_error: 100,
            ws_no_date: 100,
            ws_create_ambiguous: 150,
            ws_create_refused: 60,
            ws_revoke_error: 100,
            ws_verify_error: 40,
            slow: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_concurrent_invocations_and_a_fault() {
        for seed in 0..300 {
            let s = Scenario::generate(seed, Knobs::default());
            assert!(!s.bursts.is_empty(), "seed {seed}");
            let runs: Vec<Duration> =
                s.acts.iter().filter(|a| matches!(a.what, What::Run { .. })).map(|a| a.at).collect();
            assert!(runs.windows(2).any(|w| w[1] == w[0]), "seed {seed}");
            assert_eq!(s.initial.len(), s.deployments.iter().map(|d| d.targets.len()).sum::<usize>());
        }
    }

    #[test]
    fn a_seed_names_one_scenario_and_both_kinds_alternate() {
        let a = Scenario::generate(41, Knobs::default());
        let b = Scenario::generate(41, Knobs::default());
        assert_eq!(a.acts, b.acts);
        assert_eq!(a.describe(), b.describe());
        assert_eq!(a.deployments[0].targets[0].kind, Kind::OAuth);
        assert_eq!(Scenario::generate(40, Knobs::default()).deployments[0].targets[0].kind, Kind::Pat);
    }

    #[test]
    fn the_shapes_the_issue_asks_for_are_drawn() {
        let (mut shared_ws, mut shared_sp, mut copies, mut two) = (0, 0, 0, 0);
        for seed in 0..400 {
            let s = Scenario::generate(seed, Knobs::default());
            let t = &s.deployments[0].targets;
            shared_ws += t.iter().filter(|x| x.kind == Kind::Pat && x.workspace == 0).count().saturating_sub(1).min(1);
            shared_sp +=
                t.iter().filter(|x| x.kind == Kind::OAuth && x.principal == 0).count().saturating_sub(1).min(1);
            copies += s.acts.iter().filter(|a| matches!(a.what, What::Copy { .. })).count().min(1);
            two += (s.deployments.len() == 2) as usize;
        }
        assert!(shared_ws > 40 && shared_sp > 40 && copies > 60 && two > 50, "{shared_ws} {shared_sp} {copies} {two}");
    }
}
