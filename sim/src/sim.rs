//! One schedule, start to end: a current-thread tokio runtime on a paused clock, one task per
//! act of the scenario, then a quiet phase and the liveness check.
//!
//! Determinism: one thread, tokio's paused clock (time moves only when every task waits), one
//! seeded stream for every draw, `BTreeMap`s, attempt ids from a counter. Two runs of a seed
//! give the same log byte for byte (tested).

use std::sync::{Arc, Mutex};

use futures::future::{Either, select};
use pat_rotator::rotation::ports::NoOtherSecrets;
use pat_rotator::rotation::rotate::{Ports, rotate};
use time::Duration;

use crate::capture::{self, InRun};
use crate::checker::{Exception, Violation};
use crate::ports::{SimBackoff, SimClock, SimIssuer, SimStore};
use crate::rng::Rng;
use crate::scenario::{Kind, Knobs, Retag, RunKind, Scenario, What};
use crate::world::{SecretState, Shared, Stats, VAULTS, World, lock};

/// How to run a schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Keep the event log (a replay, or a failure being reported).
    pub log: bool,
    /// Let the operator's retag drop the credential-id tags too (sim/README.md, "Findings").
    pub retag_strips_ids: bool,
}

/// What a schedule did and found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub kind: Kind,
    pub scenario: String,
    pub log: Vec<String>,
    pub violations: Vec<Violation>,
    pub exceptions: std::collections::BTreeMap<Exception, u32>,
    pub observations: std::collections::BTreeMap<&'static str, u32>,
    pub stats: Stats,
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The command that replays this schedule with its log.
    pub fn replay_command(&self, features: &str) -> String {
        format!("cargo run -p pat-rotator-sim --release{features} -- replay {}", self.seed)
    }

    /// The scenario, the event log, the violations and the replay command.
    pub fn render(&self, features: &str) -> String {
        let mut s = String::new();
        s.push_str(&self.scenario);
        s.push_str("--- event log ---\n");
        for l in &self.log {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("--- verdict ---\n");
        s.push_str(&self.summary());
        s.push('\n');
        for v in &self.violations {
            s.push_str(&format!("invariant {} at {}: {}\n", v.invariant, crate::log::at(v.at), v.text));
        }
        s.push_str(&format!("replay: {}\n", self.replay_command(features)));
        s
    }

    pub fn summary(&self) -> String {
        format!(
            "seed {} ({:?}): {} runs ({} killed, at most {} at once), {} calls, {} faults, outcomes {:?}, exceptions {:?}, observations {:?}, {} violation(s)",
            self.seed,
            self.kind,
            self.stats.runs,
            self.stats.killed,
            self.stats.max_concurrent,
            self.stats.calls,
            self.stats.faults,
            self.stats.actions,
            self.exceptions,
            self.observations,
            self.violations.len()
        )
    }
}

/// Runs schedule `seed`.
pub fn run(seed: u64, opts: Options) -> Report {
    let sc = Scenario::generate(seed, Knobs { retag_strips_ids: opts.retag_strips_ids });
    let mut builder = tokio::runtime::Builder::new_current_thread();
    paused(builder.enable_time());
    let rt = builder.build().expect("a current-thread runtime");
    let _catching = capture::install();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, simulate(sc, opts.log))
}

/// Every schedule runs on tokio's paused clock (its `test-util`, this crate's feature
/// `paused-clock`: the tests and `--features hunt` have it; see Cargo.toml for why it is not a
/// plain dependency).
#[cfg(feature = "paused-clock")]
fn paused(b: &mut tokio::runtime::Builder) {
    b.start_paused(true);
}

#[cfg(not(feature = "paused-clock"))]
fn paused(_: &mut tokio::runtime::Builder) {
    panic!("pat-rotator-sim runs on tokio's paused clock: build it with `--features paused-clock`");
}

async fn simulate(sc: Scenario, keep_log: bool) -> Report {
    let runtime_rng = Rng::new(sc.seed ^ 0xA5A5_5A5A_C3C3_3C3C).fork();
    let scenario = sc.describe();
    let (seed, kind, acts, second) = (sc.seed, sc.kind, sc.acts.clone(), sc.second_deployment);
    let w: Shared = Arc::new(Mutex::new(World::new(sc, runtime_rng, keep_log)));

    let mut tasks = Vec::new();
    if let Some(at) = second.filter(|a| *a > Duration::ZERO) {
        let w = w.clone();
        tasks.push(tokio::task::spawn_local(async move {
            sleep(at).await;
            let mut g = lock(&w);
            g.deployments[1].present = true;
            g.note("operator", |w| {
                format!(
                    "deploys a second pat-rotator: target {} on {}",
                    crate::world::TARGET,
                    w.deployments[1].spec.where_()
                )
            });
        }));
    }
    for (n, act) in acts.into_iter().enumerate() {
        let w = w.clone();
        tasks.push(tokio::task::spawn_local(async move {
            sleep(act.at).await;
            perform(&w, act.what, n as u32).await;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            panic_report(&w, e);
        }
    }
    // Writes that timed out land within minutes.
    let pending = {
        let g = lock(&w);
        g.last_landing - g.now()
    };
    if pending > Duration::ZERO {
        sleep(pending + Duration::seconds(1)).await;
    }
    quiet(&w).await;

    let mut g = lock(&w);
    g.absorb_warnings();
    Report {
        seed,
        kind,
        scenario,
        log: std::mem::take(&mut g.log.lines),
        violations: g.checker.violations.clone(),
        exceptions: g.checker.exceptions.clone(),
        observations: g.checker.observations.clone(),
        stats: g.stats.clone(),
    }
}

fn panic_report(w: &Shared, e: tokio::task::JoinError) {
    let msg = if e.is_panic() {
        let p = e.into_panic();
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    } else {
        "cancelled".to_string()
    };
    let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
    let now = g.now();
    g.checker.violations.push(Violation { invariant: 0, at: now, text: format!("a task panicked: {msg}") });
}

async fn sleep(d: Duration) {
    if d > Duration::ZERO {
        tokio::time::sleep(d.unsigned_abs()).await;
    }
}

async fn perform(w: &Shared, what: What, n: u32) {
    match what {
        What::Run { dep, kind, kill_after } => rotation_run(w, dep, kind, kill_after).await,
        What::ForceLoop { dep, runs } => {
            lock(w).note("operator", |_| format!("forces deployment {} {runs} times in a row", ["A", "B"][dep]));
            for _ in 0..runs {
                rotation_run(w, dep, RunKind::Cli, None).await;
            }
        }
        What::Rename { dep } => {
            let mut g = lock(w);
            let cur = g.deployments[dep].spec.clone();
            let next = g.spec_info(dep, &cur.vault, &format!("{}-v2", cur.spec.secret_name));
            g.note("operator", |_| format!("renames the secret: {} → {}", cur.where_(), next.where_()));
            g.deployments[dep].spec = next;
        }
        What::MoveVault { dep } => {
            let mut g = lock(w);
            let cur = g.deployments[dep].spec.clone();
            let next = g.spec_info(dep, VAULTS[1], &cur.spec.secret_name);
            g.note("operator", |_| format!("moves the vault: {} → {}", cur.where_(), next.where_()));
            g.deployments[dep].spec = next;
        }
        What::Retag { dep, how } => retag(w, dep, how),
        What::Disable { dep } => {
            let mut g = lock(w);
            match g.latest_mut(dep) {
                Some(v) => {
                    v.enabled = false;
                    let s = v.short();
                    g.note("operator", |_| format!("disables {s}"));
                }
                None => g.note("operator", |_| "would disable the latest version: there is none".into()),
            }
        }
        What::SoftDelete { dep, recover_after, recovering_for } => {
            {
                let mut g = lock(w);
                g.set_state(dep, SecretState::Deleted);
                let s = g.deployments[dep].spec.where_();
                g.note("operator", |_| format!("soft-deletes {s}"));
            }
            sleep(recover_after).await;
            {
                let mut g = lock(w);
                g.set_state(dep, SecretState::Recovering);
                g.note("operator", |_| "recovers it (reads answer 404 a while longer)".into());
            }
            sleep(recovering_for).await;
            let mut g = lock(w);
            g.set_state(dep, SecretState::Live);
            g.note("vault", |_| "the recovery is complete".into());
        }
        What::OutOfBand => {
            let mut g = lock(w);
            let live: Vec<usize> = (0..g.creds.len()).filter(|i| g.live(&g.creds[*i])).collect();
            if !live.is_empty() {
                let i = *g.rng.pick(&live);
                g.kill_by_world("someone", i, Exception::OutOfBand);
            }
        }
        What::TokensRevoke => {
            let mut g = lock(w);
            let p = g.profile();
            // `tokens --revoke` refuses an id that the latest version of a configured secret names.
            let named: Vec<String> = g
                .deployments
                .iter()
                .filter(|d| d.present)
                .filter_map(|d| {
                    let (h, n) = d.spec.secret();
                    g.secret(&h, &n)?.versions.last()?.tags.get(p.id_tag).cloned()
                })
                .collect();
            let eligible: Vec<usize> =
                (0..g.creds.len()).filter(|i| g.live(&g.creds[*i]) && !named.contains(&g.creds[*i].id)).collect();
            if !eligible.is_empty() {
                let i = *g.rng.pick(&eligible);
                g.kill_by_world("tokens --revoke", i, Exception::TokensRevoke);
            }
        }
        What::Consume => lock(w).consume(n),
        What::InactivitySweep => {
            let mut g = lock(w);
            if g.kind != Kind::Pat {
                return;
            }
            let window = g.sc.inactivity.unwrap_or(Duration::MAX);
            let now = g.now();
            let idle: Vec<usize> =
                (0..g.creds.len()).filter(|i| g.live(&g.creds[*i]) && now - g.creds[*i].last_used >= window).collect();
            for i in idle {
                g.kill_by_world("workspace", i, Exception::Inactivity);
            }
        }
    }
}

fn retag(w: &Shared, dep: usize, how: Retag) {
    use pat_rotator::rotation::model::tags;
    let mut g = lock(w);
    let p = g.profile();
    let Some(v) = g.latest_mut(dep) else {
        g.note("operator", |_| "would retag the latest version: there is none".into());
        return;
    };
    let old = std::mem::take(&mut v.tags);
    v.tags = match how {
        Retag::DropManagedBy => old.into_iter().filter(|(k, _)| k != tags::MANAGED_BY).collect(),
        Retag::OtherManager => {
            let mut t = old;
            t.insert(tags::MANAGED_BY.into(), "terraform".into());
            t
        }
        Retag::OnlyIds => old
            .into_iter()
            .filter(|(k, _)| k == p.id_tag || k == p.previous_tag)
            .chain([("owner".to_string(), "data-platform".to_string())])
            .collect(),
        Retag::StripAll => [("owner".to_string(), "data-platform".to_string())].into(),
    };
    let s = v.short();
    g.note("operator", |_| format!("retags {s} ({how:?})"));
}

/// One rotation run: the real core against the simulated ports, dropped when killed.
pub async fn rotation_run(w: &Shared, dep: usize, kind: RunKind, kill_after: Option<Duration>) {
    let (info, profile, attempts) = {
        let mut g = lock(w);
        let info = g.begin_run(dep, kind, kill_after);
        (info, g.profile(), g.sc.write_attempts)
    };
    let id = info.id;
    let issuer = SimIssuer { w: w.clone(), run: id, profile };
    let store = SimStore { w: w.clone(), run: id, vault: info.spec.vault.clone() };
    let clock = SimClock { w: w.clone() };
    let backoff = SimBackoff { w: w.clone(), run: id, attempts };
    let (spec, req) = (info.spec.spec.clone(), info.req);
    let run = InRun::new(id, async {
        let ports = Ports { issuer: &issuer, store: &store, clock: &clock, backoff: &backoff, others: &NoOtherSecrets };
        rotate(&spec, req, &ports).await
    });
    let killer = Box::pin(async {
        loop {
            let (now, stop) = {
                let g = lock(w);
                (g.now(), g.stop_at(id))
            };
            if now >= stop {
                break;
            }
            sleep(stop - now).await;
        }
    });
    let outcome = match select(run, killer).await {
        Either::Left((o, _)) => Some(o),
        Either::Right(((), run)) => {
            drop(run);
            None
        }
    };
    lock(w).end_run(id, outcome);
}

/// The quiet phase: faults off, timer runs every period. Each configured target is checked
/// (invariant 4) after the first round whose run began once its latest version was past the
/// grace and every orphan past its hour (a round that wrote a new version does not count).
async fn quiet(w: &Shared) {
    let (q0, grace, period) = {
        let mut g = lock(w);
        g.quiet = true;
        g.note("quiet", |_| "the quiet phase: no faults, no operator, timer runs every period".into());
        (g.now(), Duration::hours(g.sc.grace_hours as i64), g.sc.period)
    };
    let margin = Duration::minutes(1);
    let deps: Vec<usize> = {
        let g = lock(w);
        (0..g.deployments.len()).filter(|d| g.deployments[*d].present).collect()
    };
    let mut pending = deps.clone();
    // Enough for a latest version inside its grace when the phase begins, a rotation once that
    // grace has passed (a full issuer may need it), and the new version's grace.
    let rounds = ((grace + period) * 2i32 + Duration::hours(2)).whole_seconds() / period.whole_seconds();
    let rounds = rounds as u32 + 2;
    for round in 1..=rounds {
        for dep in pending.clone() {
            let start = lock(w).now();
            rotation_run(w, dep, RunKind::Timer, None).await;
            let mut g = lock(w);
            let (h, n) = g.deployments[dep].spec.secret();
            let settled = start >= q0 + Duration::hours(1) + margin
                && g.secret(&h, &n).and_then(|s| s.versions.last()).is_none_or(|v| start >= v.landed + grace + margin);
            if settled {
                g.check_quiet_end(dep);
                pending.retain(|d| *d != dep);
            }
        }
        if pending.is_empty() {
            return;
        }
        let now = lock(w).now();
        sleep(q0 + period * round - now).await;
    }
    let mut g = lock(w);
    let now = g.now();
    g.checker.violations.push(Violation {
        invariant: 4,
        at: now,
        text: format!("the quiet phase did not settle in {rounds} periods for deployment(s) {pending:?}: new versions kept landing"),
    });
}
