//! One schedule's script, drawn from its seed: the configuration of the target, the starting
//! state of the vault and the issuer, the fault profile, and what happens when (rotation runs,
//! operator actions, consumer reads).
//!
//! The script says what is *attempted* and when; how each call goes (its latency, its fault)
//! is drawn while the schedule runs, from a stream forked from the same seed. Every scenario
//! has at least two runs of one target that start within two seconds of each other and at
//! least one burst of faults, so every schedule searches concurrency and failure.

use std::fmt::Write;

use time::Duration;

use crate::rng::Rng;

/// Which credential the target rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Personal access tokens of the service's identity (contract §6, §7).
    Pat,
    /// OAuth secrets of a service principal (contract §9).
    OAuth,
}

/// How a rotation run is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `RotatePat`: `Force::No`.
    Timer,
    /// `ProvisionPat` with `force: true`: `Force::Provision { cooldown }`.
    Provision,
    /// `rotate --force`: `Force::Cli`.
    Cli,
    /// `rotate --dry-run` (half of them with `--force`).
    DryRun,
    /// `rotate --force --revoke-superseded --target …`.
    RevokeSuperseded,
}

impl RunKind {
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Timer => "timer",
            RunKind::Provision => "provision",
            RunKind::Cli => "cli --force",
            RunKind::DryRun => "dry run",
            RunKind::RevokeSuperseded => "cli --revoke-superseded",
        }
    }
}

/// How an operator replaces the tag map of the latest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retag {
    /// Every tag but `managed-by`.
    DropManagedBy,
    /// `managed-by` set to another tool's name.
    OtherManager,
    /// Only the credential-id tags and an operator's own tag.
    OnlyIds,
    /// Nothing of pat-rotator's: not even the credential id. Off unless
    /// [`Options::retag_strips_ids`](crate::Options::retag_strips_ids) (see sim/README.md).
    StripAll,
}

/// One thing that happens at a moment of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// A rotation run of deployment `dep`, dropped after `kill_after` if it has not ended.
    Run {
        dep: usize,
        kind: RunKind,
        kill_after: Option<Duration>,
    },
    /// A pipeline or a person calling `rotate --force` `runs` times in a row.
    ForceLoop {
        dep: usize,
        runs: u32,
    },
    /// The operator points the deployment at another secret name (a new secret key).
    Rename {
        dep: usize,
    },
    /// The operator points the deployment at another vault.
    MoveVault {
        dep: usize,
    },
    Retag {
        dep: usize,
        how: Retag,
    },
    /// The operator disables the latest version.
    Disable {
        dep: usize,
    },
    /// The operator soft-deletes the secret, recovers it `recover_after` later; reads answer
    /// 404 for `recovering_for` more after the recovery.
    SoftDelete {
        dep: usize,
        recover_after: Duration,
        recovering_for: Duration,
    },
    /// Someone revokes a credential of the identity (or the principal) in the workspace.
    OutOfBand,
    /// `pat-rotator tokens --revoke ID` of a credential the latest version of no configured
    /// secret names.
    TokensRevoke,
    /// A consumer reads the latest version of a secret.
    Consume,
    /// The issuer's inactivity rule (the 90-day revocation, compressed) sweeps.
    InactivitySweep,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub at: Duration,
    pub what: What,
}

/// The secret as the schedule finds it.
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

/// Per-call fault rates (per mille) of one schedule. Bursts come on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub kv_error: u32,
    pub kv_not_found: u32,
    pub kv_no_date: u32,
    pub kv_write_refused: u32,
    pub kv_write_stored_unknown: u32,
    pub kv_write_stored_failed: u32,
    pub kv_write_timeout_lost: u32,
    pub kv_write_timeout_lands: u32,
    pub is_error: u32,
    pub is_no_date: u32,
    pub is_create_lost_before: u32,
    pub is_create_lost_after: u32,
    pub is_revoke_error: u32,
    pub is_verify_error: u32,
    /// A call that hangs for minutes (up to 40) before its effect or its answer.
    pub slow: u32,
}

/// A window in which every call of one kind to one service misbehaves in one way.
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
    Issuer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstKind {
    /// 5xx / 429 until the retries give up.
    Errors,
    /// Reads answer 404 (Key Vault only).
    NotFound,
    /// Answers without `Date`.
    NoDate,
    /// Writes and creates time out; half of them take effect anyway.
    Timeouts,
}

/// One schedule.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub kind: Kind,
    pub lifetime_days: u32,
    pub renew_before_days: u32,
    pub grace_hours: u32,
    pub cooldown_minutes: u32,
    /// The timer's schedule period.
    pub period: Duration,
    /// The active phase; a quiet phase follows (sim/README.md).
    pub length: Duration,
    /// The issuer's limit: the identity's token quota (600 in Databricks, small here so that it
    /// is reached), or the principal's five OAuth secrets.
    pub quota: usize,
    pub vault_skew: Duration,
    pub issuer_skew: Duration,
    /// The rotation's local clock: this far off true time, and from `.0` on `.1` off.
    pub local_skew: Duration,
    pub local_jump: Option<(Duration, Duration)>,
    pub initial: InitialSecret,
    pub foreign_creds: u32,
    pub other_target_tokens: u32,
    pub legacy_unrecorded: u32,
    pub orphans: u32,
    pub faults: Faults,
    pub bursts: Vec<Burst>,
    /// A second deployment (same target name, identity and workspace; its own vault) from this
    /// moment.
    pub second_deployment: Option<Duration>,
    /// Credentials unused this long are revoked by the issuer (Databricks: 90 days).
    pub inactivity: Option<Duration>,
    /// Attempts of the one retry the core decides itself (a secret write).
    pub write_attempts: u32,
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

impl Scenario {
    pub fn generate(seed: u64, knobs: Knobs) -> Scenario {
        let mut root = Rng::new(seed);
        let mut r = root.fork();
        // Both kinds in every pair of consecutive seeds.
        let kind = if seed.is_multiple_of(2) { Kind::Pat } else { Kind::OAuth };
        let grace_hours = *r.pick(&[0, 1, 2, 6, 24, 24]);
        let cooldown_minutes = *r.pick(&[15, 15, 0, 60]);
        let period_hours = *r.pick(&[4, 6, 12, 24]);
        let period = Duration::hours(period_hours);
        // Rotations at least grace + two periods apart, so that a quiet phase can settle (a
        // target rotated more often than its grace relies on the cap alone: sim/README.md).
        let room = |l: u32| (l as i64 * 24 - grace_hours as i64 - 2 * period_hours) / 24;
        let lifetimes: Vec<u32> = [2, 3, 5, 90].into_iter().filter(|l| room(*l) >= 1).collect();
        let lifetime_days = *r.pick(&lifetimes);
        let renew_before_days = if lifetime_days == 90 {
            30
        } else {
            r.range(1, room(lifetime_days).min(lifetime_days as i64 - 1) as u64) as u32
        };
        let length = Duration::days(r.range(1, 3) as i64);
        let quota = match kind {
            Kind::Pat => r.range(8, 12) as usize,
            Kind::OAuth => 5,
        };
        let skew = |r: &mut Rng, max: u64| Duration::seconds(r.range(0, 2 * max) as i64 - max as i64);
        let vault_skew = skew(&mut r, 120);
        let issuer_skew = skew(&mut r, 120);
        let local_skew = match r.below(4) {
            0 => Duration::ZERO,
            1 => skew(&mut r, 600),
            _ => skew(&mut r, 30 * H as u64),
        };
        let local_jump =
            r.chance(250).then(|| (secs(r.below(length.whole_seconds() as u64)), skew(&mut r, 30 * H as u64)));

        let initial = match r.below(10) {
            0 | 1 => InitialSecret::Absent,
            2 | 3 => InitialSecret::Foreign { age: secs(r.range(60, 40 * H as u64)) },
            _ => {
                let age = secs(r.range(60, (lifetime_days as u64 * 24 - 1) * H as u64));
                let previous = r.chance(500).then(|| secs(r.range(60, 30 * H as u64)));
                InitialSecret::Managed { age, legacy: kind == Kind::Pat && r.chance(250), previous }
            }
        };
        let (foreign_creds, other_target_tokens, legacy_unrecorded, orphans) = match kind {
            Kind::Pat => (r.range(0, 2) as u32, r.range(0, 2) as u32, r.range(0, 1) as u32, r.range(0, 2) as u32),
            Kind::OAuth => (r.range(0, 1) as u32, 0, 0, 0),
        };

        let faults = match r.below(3) {
            0 => Faults::default(),
            1 => Faults::light(),
            _ => Faults::heavy(),
        };
        let second_deployment = r
            .chance(250)
            .then(|| if r.chance(500) { Duration::ZERO } else { secs(r.below(length.whole_seconds() as u64)) });
        let inactivity = r.chance(150).then(|| Duration::hours(r.range(24, 60) as i64));
        let write_attempts = r.range(1, 4) as u32;

        let mut sc = Scenario {
            seed,
            kind,
            lifetime_days,
            renew_before_days,
            grace_hours,
            cooldown_minutes,
            period,
            length,
            quota,
            vault_skew,
            issuer_skew,
            local_skew,
            local_jump,
            initial,
            foreign_creds,
            other_target_tokens,
            legacy_unrecorded,
            orphans,
            faults,
            bursts: Vec::new(),
            second_deployment,
            inactivity,
            write_attempts,
            acts: Vec::new(),
        };
        let mut a = root.fork();
        let (acts, clusters) = sc.draw_acts(&mut a, knobs);
        sc.acts = acts;
        sc.bursts = sc.draw_bursts(&mut root.fork(), &clusters);
        sc
    }

    /// Every deployment present at `at`.
    fn deps_at(&self, at: Duration) -> Vec<usize> {
        let mut d = vec![0];
        if self.second_deployment.is_some_and(|s| s <= at) {
            d.push(1);
        }
        d
    }

    /// Faults in windows: the first one over the first cluster of concurrent runs, of a kind
    /// every run meets (its first reads), so that every schedule has concurrency under a fault.
    fn draw_bursts(&self, r: &mut Rng, clusters: &[Duration]) -> Vec<Burst> {
        let len = self.length.whole_seconds() as u64;
        let mut bursts = Vec::new();
        for i in 0..r.range(1, 3) {
            let service = if r.chance(500) { Service::Vault } else { Service::Issuer };
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

    fn draw_acts(&self, r: &mut Rng, knobs: Knobs) -> (Vec<Act>, Vec<Duration>) {
        let len = self.length.whole_seconds() as u64;
        let mut acts = Vec::new();
        let kill = |r: &mut Rng| r.chance(80).then(|| Duration::milliseconds(r.range(0, 15_000) as i64));
        let run = |r: &mut Rng, dep, kind| What::Run { dep, kind, kill_after: kill(r) };
        let any_time = |r: &mut Rng| secs(r.below(len));

        // The timer of every deployment.
        let period = self.period.whole_seconds() as u64;
        for dep in [0, 1] {
            let Some(from) = (if dep == 0 { Some(Duration::ZERO) } else { self.second_deployment }) else { continue };
            let mut t = from + secs(r.below(period));
            while t < self.length {
                acts.push(Act { at: t, what: run(r, dep, RunKind::Timer) });
                t += self.period;
            }
        }
        let dep_at = |r: &mut Rng, at: Duration| *r.pick(&self.deps_at(at));
        // Forced ProvisionPat calls, some as a retrying pipeline's burst.
        for _ in 0..r.range(1, 5) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            let n = if r.chance(250) { r.range(2, 4) } else { 1 };
            for i in 0..n {
                acts.push(Act { at: at + secs(i * r.range(0, 20)), what: run(r, dep, RunKind::Provision) });
            }
        }
        for (n, kind) in [(2, RunKind::Cli), (2, RunKind::DryRun)] {
            for _ in 0..r.range(0, n) {
                let at = any_time(r);
                let dep = dep_at(r, at);
                acts.push(Act { at, what: run(r, dep, kind) });
            }
        }
        if r.chance(100) {
            let at = any_time(r);
            let dep = dep_at(r, at);
            acts.push(Act { at, what: run(r, dep, RunKind::RevokeSuperseded) });
        }
        if r.chance(200) {
            let at = any_time(r);
            acts.push(Act { at, what: What::ForceLoop { dep: dep_at(r, at), runs: r.range(3, 9) as u32 } });
        }
        // Runs of one target that start together: at least one cluster per schedule.
        let mut clusters = Vec::new();
        for _ in 0..r.range(1, 3) {
            let at = any_time(r);
            clusters.push(at);
            let dep = dep_at(r, at);
            // The first two start at the same instant (so they overlap whatever their calls
            // answer); the seeded latencies decide who goes first.
            for i in 0..r.range(2, 3) {
                let kind = *r.pick(&[RunKind::Timer, RunKind::Timer, RunKind::Provision, RunKind::Cli]);
                let offset = if i < 2 { 0 } else { r.range(0, 2000) as i64 };
                acts.push(Act { at: at + Duration::milliseconds(offset), what: run(r, dep, kind) });
            }
        }

        // The operator.
        if r.chance(150) {
            acts.push(Act { at: any_time(r), what: What::Rename { dep: 0 } });
        }
        if r.chance(100) {
            acts.push(Act { at: any_time(r), what: What::MoveVault { dep: 0 } });
        }
        let retags: &[Retag] = if knobs.retag_strips_ids {
            &[Retag::DropManagedBy, Retag::OtherManager, Retag::OnlyIds, Retag::StripAll]
        } else {
            &[Retag::DropManagedBy, Retag::OtherManager, Retag::OnlyIds]
        };
        for _ in 0..(r.chance(300) as u32 + r.chance(100) as u32) {
            let at = any_time(r);
            acts.push(Act { at, what: What::Retag { dep: dep_at(r, at), how: *r.pick(retags) } });
        }
        if r.chance(150) {
            let at = any_time(r);
            acts.push(Act { at, what: What::Disable { dep: dep_at(r, at) } });
        }
        if r.chance(150) {
            let at = any_time(r);
            acts.push(Act {
                at,
                what: What::SoftDelete {
                    dep: dep_at(r, at),
                    recover_after: secs(r.range(60, 6 * H as u64)),
                    recovering_for: secs(r.range(0, 120)),
                },
            });
        }
        for _ in 0..(r.chance(300) as u32 + r.chance(100) as u32) {
            acts.push(Act { at: any_time(r), what: What::OutOfBand });
        }
        if r.chance(150) {
            acts.push(Act { at: any_time(r), what: What::TokensRevoke });
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
        (acts, clusters)
    }

    /// The scenario as a few readable lines (the head of every event log).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "seed {} · {:?} · lifetime {}d, renew before {}d, grace {}h, cooldown {}m · timer every {} · active {} then quiet",
            self.seed,
            self.kind,
            self.lifetime_days,
            self.renew_before_days,
            self.grace_hours,
            self.cooldown_minutes,
            crate::log::span(self.period),
            crate::log::span(self.length)
        );
        let _ = writeln!(
            s,
            "quota {} · clocks: vault {:+}s, issuer {:+}s, local {:+}s{} · write attempts {}",
            self.quota,
            self.vault_skew.whole_seconds(),
            self.issuer_skew.whole_seconds(),
            self.local_skew.whole_seconds(),
            match self.local_jump {
                Some((at, to)) => format!(" jumping to {:+}s at {}", to.whole_seconds(), crate::log::at(at)),
                None => String::new(),
            },
            self.write_attempts
        );
        let _ = writeln!(
            s,
            "initial secret {:?} · foreign {} · other target {} · legacy unrecorded {} · orphans {} · second deployment {} · inactivity {}",
            self.initial,
            self.foreign_creds,
            self.other_target_tokens,
            self.legacy_unrecorded,
            self.orphans,
            self.second_deployment.map(crate::log::at).unwrap_or_else(|| "no".into()),
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
            kv_write_stored_unknown: 20,
            kv_write_stored_failed: 20,
            kv_write_timeout_lost: 20,
            kv_write_timeout_lands: 20,
            is_error: 20,
            is_no_date: 20,
            is_create_lost_before: 20,
            is_create_lost_after: 20,
            is_revoke_error: 20,
            is_verify_error: 10,
            slow: 5,
        }
    }

    fn heavy() -> Faults {
        Faults {
            kv_error: 100,
            kv_not_found: 60,
            kv_no_date: 100,
            kv_write_refused: 80,
            kv_write_stored_unknown: 80,
            kv_write_stored_failed: 80,
            kv_write_timeout_lost: 80,
            kv_write_timeout_lands: 100,
            is_error: 100,
            is_no_date: 100,
            is_create_lost_before: 80,
            is_create_lost_after: 100,
            is_revoke_error: 100,
            is_verify_error: 40,
            slow: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_concurrent_runs_and_a_fault() {
        for seed in 0..300 {
            let s = Scenario::generate(seed, Knobs::default());
            assert!(!s.bursts.is_empty(), "seed {seed}");
            let runs: Vec<Duration> =
                s.acts.iter().filter(|a| matches!(a.what, What::Run { .. })).map(|a| a.at).collect();
            assert!(runs.windows(2).any(|w| w[1] == w[0]), "seed {seed}");
        }
    }

    #[test]
    fn a_seed_names_one_scenario_and_both_kinds_alternate() {
        let a = Scenario::generate(41, Knobs::default());
        let b = Scenario::generate(41, Knobs::default());
        assert_eq!(a.acts, b.acts);
        assert_eq!(a.describe(), b.describe());
        assert_eq!(a.kind, Kind::OAuth);
        assert_eq!(Scenario::generate(40, Knobs::default()).kind, Kind::Pat);
    }
}
