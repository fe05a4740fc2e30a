//! Client-side pacing, end to end: the real `pat-rotator` binary (the one of this build
//! profile, `target/<profile>/pat-rotator`, or `PAT_ROTATOR_BIN`) against the emulators with
//! their limits shrunk so that a pass over a few targets crosses them.
//!
//! Each paced check has a twin with the pacing switched off, which shows that the fake does
//! refuse the unpaced traffic with 429 (so the zero-429 assertion can fail) and that the engine
//! still converges through its retries.
//!
//! Needs the binary built: `cargo test --workspace` does that; for this package alone run
//! `cargo build --bin pat-rotator` first.

use std::process::Command;
use std::time::Duration;

use pat_rotator_bench::{
    Finished, TargetSpec, max_in_fixed_windows, max_in_window, program, program_env, run, tail, targets_json,
    write_times,
};
use pat_rotator_emulators::{EmulatorOptions, Emulators, KeyVaultOptions, KvThrottle, WorkspaceOptions, WsRateLimit};

/// The fake vault's shrunk limit: 10 secret writes per 2 s, in the fakes' fixed windows.
const WINDOW: Duration = Duration::from_secs(2);
const WRITE_LIMIT: usize = 10;

fn shrunk_vault() -> Emulators {
    Emulators::start(EmulatorOptions {
        keyvault: KeyVaultOptions {
            throttle: Some(KvThrottle {
                window: WINDOW,
                write_limit: WRITE_LIMIT,
                other_limit: 4000,
                retry_after: true,
            }),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `rotate --json` over targets `p0..p{n-1}` (workspace 0, vault 0) with `settings`.
fn rotate_all(emu: &Emulators, n: usize, settings: &[(&str, &str)]) -> Finished {
    let specs: Vec<TargetSpec> = (0..n).map(|i| TargetSpec::new(format!("p{i}"), 0, 0)).collect();
    let mut s: Vec<(&str, String)> = vec![
        ("PAT_TARGETS", targets_json(emu, &specs)),
        ("RUST_LOG", "info".into()),
        ("PAT_RETRY_BASE_DELAY_MS", "100".into()),
        ("PAT_CALL_TIMEOUT_SECONDS", "10".into()),
    ];
    s.extend(settings.iter().map(|(k, v)| (*k, (*v).to_string())));
    let env = program_env(emu, &s);
    run(Command::new(program()).args(["rotate", "--json"]).env_clear().envs(env)).expect("run pat-rotator")
}

/// Every target ended `created` without error, and its secret holds a token the workspace
/// accepts.
fn assert_all_created(emu: &Emulators, f: &Finished, n: usize) {
    assert_eq!(f.code, 0, "exit code; stderr:\n{}", tail(&f.stderr, 30));
    let v = f.json();
    let arr = v.as_array().expect("an array of results");
    assert_eq!(arr.len(), n);
    for o in arr {
        assert_eq!((o["action"].as_str(), o["error"].is_null()), (Some("created"), true), "{o}");
        let name = o["target"].as_str().unwrap();
        let stored = emu.vault(0).latest(name).expect("secret written");
        assert!(emu.workspace(0).authenticate_pat(&stored.value), "{name}: the stored token does not work");
    }
}

fn kv_set_statuses(emu: &Emulators) -> Vec<u16> {
    emu.vault(0).faults().calls().iter().filter(|c| c.op == "set").map(|c| c.status).collect()
}

#[test]
fn paced_vault_writes_get_no_429_and_span_at_least_two_windows() {
    let emu = shrunk_vault();
    let f = rotate_all(&emu, 25, &[("PAT_KV_WRITES_PER_10S", "10"), ("PAT_KV_WINDOW_MS", "2000")]);
    assert_all_created(&emu, &f, 25);

    assert_eq!(emu.vault(0).throttled_count(), 0, "the paced pass provoked Key Vault 429s");
    assert!(!kv_set_statuses(&emu).contains(&429));
    let writes = write_times(&emu, 0);
    assert_eq!(writes.len(), 25, "one successful write per target");
    assert!(max_in_window(&writes, WINDOW) <= WRITE_LIMIT, "more than {WRITE_LIMIT} writes arrived within {WINDOW:?}");
    // 25 writes at 10 per window: the 21st cannot arrive before two windows after the first.
    let span = writes[24].duration_since(writes[0]);
    eprintln!(
        "paced vault: {} writes, at most {} in any {WINDOW:?}, first→last {span:?}, pass {:?}, 429s {}",
        writes.len(),
        max_in_window(&writes, WINDOW),
        f.wall,
        emu.vault(0).throttled_count()
    );
    assert!(span >= 2 * WINDOW, "writes spanned only {span:?}");
    assert!(f.wall >= 2 * WINDOW, "the pass took only {:?}", f.wall);
}

#[test]
fn unpaced_vault_writes_are_throttled_by_the_fake_and_the_engine_converges_through_retries() {
    let emu = shrunk_vault();
    // A budget far above the fake's limit: the client does not pace.
    let f = rotate_all(&emu, 25, &[("PAT_KV_WRITES_PER_10S", "100000"), ("PAT_KV_WINDOW_MS", "2000")]);
    assert_all_created(&emu, &f, 25);

    let throttled = emu.vault(0).throttled_count();
    eprintln!("unpaced vault: {throttled} Key Vault 429s, pass {:?}", f.wall);
    assert!(throttled > 0, "the fake vault never answered 429: the paced test above would prove nothing");
    assert_eq!(kv_set_statuses(&emu).iter().filter(|s| **s == 429).count() as u64, throttled);
    let writes = write_times(&emu, 0);
    assert_eq!(writes.len(), 25, "every target's write eventually landed, once");
    // The fake counts fixed windows: two of them may straddle a sliding one.
    let most = max_in_fixed_windows(&writes, emu.kv_window_origin(), WINDOW);
    assert!(most <= WRITE_LIMIT, "the fake admitted {most} writes in one of its windows");
}

/// The fake workspace's shrunk limit (token bucket) and a client budget just under it.
fn shrunk_workspace() -> Emulators {
    Emulators::start(EmulatorOptions {
        workspace: WorkspaceOptions {
            rate_limit: Some(WsRateLimit { burst: 10, per_second: 10.0 }),
            ..Default::default()
        },
        ..Default::default()
    })
}

#[test]
fn paced_workspace_calls_get_no_429() {
    let emu = shrunk_workspace();
    let f = rotate_all(&emu, 10, &[("PAT_WORKSPACE_RPS", "8")]);
    assert_all_created(&emu, &f, 10);
    eprintln!("paced workspace: {} Databricks 429s, pass {:?}", emu.workspace(0).throttled_count(), f.wall);
    assert_eq!(emu.workspace(0).throttled_count(), 0, "the paced pass provoked Databricks 429s");
    // list + create + verify per target, at most 8 per (1 s + margin): over 3 s.
    assert!(f.wall >= Duration::from_secs(3), "30 calls at 8/s took only {:?}", f.wall);
}

#[test]
fn unpaced_workspace_calls_are_throttled_and_the_engine_converges_through_retries() {
    let emu = shrunk_workspace();
    let f = rotate_all(&emu, 10, &[("PAT_WORKSPACE_RPS", "0")]);
    assert_all_created(&emu, &f, 10);
    eprintln!("unpaced workspace: {} Databricks 429s, pass {:?}", emu.workspace(0).throttled_count(), f.wall);
    assert!(
        emu.workspace(0).throttled_count() > 0,
        "the fake workspace never answered 429: the paced test proves nothing"
    );
    // A refused create is retried (the workspace did not act): one token per target.
    let ws = emu.workspace(0);
    assert_eq!(ws.tokens(ws.principal()).len(), 10, "exactly one live token per target");
}
