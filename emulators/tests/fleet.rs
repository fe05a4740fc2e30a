//! The fleet a 10,000-target benchmark needs (contract §11): 100 vaults and 50 workspaces in
//! one `Emulators`. Starting them is quick, costs a handful of threads and about one file
//! descriptor per listener, every fake answers on its own port as if it had a server to itself,
//! and dropping them gives everything back.
//!
//! One test in its own binary, so that the thread and descriptor counts of this process are
//! the emulators' and the test's own.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{DBX, KV, client, mi_token};
use pat_rotator_emulators::{EmulatorOptions, Emulators};
use serde_json::{Value, json};

const VAULTS: usize = 100;
const WORKSPACES: usize = 50;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("procfs").count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

#[test]
fn a_hundred_vaults_and_fifty_workspaces_start_quickly_and_cheaply() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (threads0, fds0) = (threads(), fds());
    let started = Instant::now();
    let emu = Emulators::start(EmulatorOptions { vaults: VAULTS, workspaces: WORKSPACES, ..Default::default() });
    let startup = started.elapsed();
    // Listeners: identity, AAD, one per vault, and per workspace its own plus its relay's.
    let listeners = 2 + VAULTS + 2 * WORKSPACES;
    // Give the server a moment to spin up its threads before counting.
    std::thread::sleep(Duration::from_millis(300));
    let (threads_idle, fds_idle) = (threads(), fds());

    rt.block_on(async {
        let http = client(&emu);
        let kv_token = mi_token(&emu, &http, KV).await;
        let dbx_token = mi_token(&emu, &http, DBX).await;
        // Every vault gets a write of its own over HTTPS ...
        for (i, kv) in emu.vaults().iter().enumerate() {
            let r = http
                .put(format!("{}/secrets/s{i}?api-version=7.5", kv.url()))
                .bearer_auth(&kv_token)
                .json(&json!({"value": format!("value of vault {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "vault {i}");
        }
        // ... and every workspace lists what was seeded into it, through its relay.
        for (i, ws) in emu.workspaces().iter().enumerate() {
            ws.seed_token(ws.principal(), &format!("w{i}"), SystemTime::now(), None);
            let r = http.get(format!("{}/api/2.0/token/list", ws.url())).bearer_auth(&dbx_token).send().await.unwrap();
            assert_eq!(r.status(), 200, "workspace {i}");
            assert!(r.headers().contains_key("date"));
            let b: Value = r.json().await.unwrap();
            let comments: Vec<&str> =
                b["token_infos"].as_array().unwrap().iter().map(|t| t["comment"].as_str().unwrap()).collect();
            assert_eq!(comments, vec![format!("w{i}")], "workspace {i} answered for itself");
        }
    });
    for (i, kv) in emu.vaults().iter().enumerate() {
        assert_eq!(kv.secret_names(), vec![format!("s{i}")], "vault {i} holds its own write only");
        assert_eq!(kv.faults().count("set"), 1, "vault {i}'s call log");
    }

    let (threads1, fds1) = (threads(), fds());
    eprintln!(
        "{VAULTS} vaults + {WORKSPACES} workspaces: start {startup:?}; idle: threads {threads0} -> {threads_idle}, \
file descriptors {fds0} -> {fds_idle} ({listeners} listeners); with {} client connections open: threads {threads1}, \
file descriptors {fds1}",
        VAULTS + WORKSPACES
    );
    assert!(startup < Duration::from_secs(3), "starting took {startup:?}");
    // One server for all fakes: an acceptor, its workers and the system thread, not two
    // threads per fake (one server per fake had 305 for this fleet).
    assert!(threads_idle - threads0 <= 8, "{} threads for the idle fleet", threads_idle - threads0);
    assert!(threads1 - threads0 <= 12, "{} threads for the busy fleet", threads1 - threads0);
    // Idle: the listeners and a few for the server's runtimes, not 7 per fake (1,118 with one server per fake).
    assert!(fds_idle - fds0 <= listeners + 24, "{} descriptors for the idle fleet", fds_idle - fds0);
    // Busy: plus both ends of each open connection (a vault's: client and server; a
    // workspace's: client, relay, relay's hop and server).
    let budget = listeners + 24 + 2 * (VAULTS + 2) + 4 * WORKSPACES;
    assert!(fds1 - fds0 <= budget, "{} descriptors, budget {budget}", fds1 - fds0);

    drop(rt);
    let stopping = Instant::now();
    drop(emu);
    assert!(stopping.elapsed() < Duration::from_secs(3), "stopping took {:?}", stopping.elapsed());
    assert!(threads() <= threads0, "threads left behind: {} -> {}", threads0, threads());
    assert!(fds() <= fds0 + 2, "descriptors left behind: {} -> {}", fds0, fds());
}
