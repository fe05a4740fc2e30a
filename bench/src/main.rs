//! `pat-rotator-bench`: the measurements of issue 5 against the in-process emulators.
//!
//! Sections (all by default; `--only a,b` picks some):
//! - `size`  — the stripped release binary.
//! - `cold`  — exec → first answered `GET /` of `pat-rotator serve`, vs the Python peer
//!   (`bench/python_peer.py`), interleaved.
//! - `rt`    — one due rotation of one target with the fakes adding D to every request: a
//!   fresh `pat-rotator rotate` (cold) and a second forced `ProvisionPat` on a running `serve`
//!   (warm); wall / D, the sequential rounds seen by the fakes, and the request sequence.
//! - `fed`   — the same cold and warm rotation for a `client_id` target (the managed identity
//!   federated into an app registration: one exchange at the Entra fake).
//! - `orig`  — `bench/original.sh` (curl) vs `pat-rotator rotate`, one target, interleaved.
//! - `scale` — 1,000 due targets in one vault (Key Vault throttling on, 10 rate-limited
//!   workspaces) and across 50 vaults / 50 workspaces; 429 counts; peak RSS of the process.
//! - `fleet` — 10,000 due targets in 100 vaults and 50 workspaces (contract §11), from
//!   `PAT_TARGETS_FILE`, `PAT_MAX_CONCURRENCY=64`, the fakes enforcing Key Vault's per-vault and
//!   subscription-wide limits in fixed 10 s windows: with the default `PAT_KEYVAULT_FLEET_FACTOR`
//!   (3) and with 1, against the floor those budgets set; CPU time of the program and of the
//!   emulators, to say what bounds the time.
//!
//! Prints markdown tables (medians, min–max, ratios against the baseline of the same run)
//! and writes them to `--out` (default `target/bench/results.md`). See bench/README.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pat_rotator_bench::*;
use pat_rotator_emulators::{EmulatorOptions, Emulators, WorkspaceOptions, WsRateLimit};
use serde_json::json;

const USAGE: &str = "usage: pat-rotator-bench [--only size,cold,rt,fed,oauth,orig,scale,fleet] [--quick] [--out FILE] [--bin PATH] \
[--python PATH] [--d-ms 20,50] [--cold-runs N] [--rt-runs N] [--orig-runs N] [--scale-runs N] [--scale50-runs N] \
[--fleet-targets N] [--fleet-factors 3,1] [--fleet-unpaced] [--all-sequences] [--set NAME=VALUE]...";

/// Every section, in the order they run.
const SECTIONS: [&str; 8] = ["size", "cold", "rt", "fed", "oauth", "orig", "scale", "fleet"];

/// Key Vault's documented limit, which the fake enforces by default.
const KV_WRITES_PER_WINDOW: usize = 300;
const KV_WINDOW: Duration = Duration::from_secs(10);
/// The estimate of one `az` process start (shared/reference/offline-tooling.md); not measured here.
const AZ_START_S: f64 = 0.7;
/// `az login --identity` + three `az account get-access-token`.
const AZ_CALLS: f64 = 4.0;
/// The fake workspaces' rate limit in the scale runs: above the client's default pacing
/// (30 requests per second per workspace), so bursts beyond it are refused.
const WS_RATE: WsRateLimit = WsRateLimit { burst: 40, per_second: 40.0 };
const SCALE_TARGETS: usize = 1000;
/// Longer than the engine's per-workspace pacing window (1 s + 150 ms margin).
const PACING_QUIET: Duration = Duration::from_millis(1200);

struct Opts {
    sections: Vec<String>,
    bin: PathBuf,
    python: PathBuf,
    out: PathBuf,
    ds: Vec<Duration>,
    orig_ds: Vec<Duration>,
    cold_runs: usize,
    rt_runs: usize,
    orig_runs: usize,
    scale_runs: usize,
    scale50_runs: usize,
    /// Print the request sequence of every round-trip run, not only the median one.
    all_sequences: bool,
    /// Extra environment of every `pat-rotator` process (`--set K=V`), after the bench's own.
    extra_env: Vec<(String, String)>,
    /// Targets of the `fleet` section.
    fleet_targets: usize,
    /// `PAT_KEYVAULT_FLEET_FACTOR` of each `fleet` run.
    fleet_factors: Vec<u32>,
    /// Also the reference run with the fleet pacing opened up (`PAT_KEYVAULT_FLEET_FACTOR=1000`).
    fleet_unpaced: bool,
}

fn parse_args() -> Result<Opts, String> {
    let root = repo_root();
    let mut o = Opts {
        sections: SECTIONS.map(String::from).to_vec(),
        bin: profile_dir().join("pat-rotator"),
        python: root.join(".venv-interop/bin/python"),
        out: root.join("target/bench/results.md"),
        ds: vec![Duration::from_millis(20), Duration::from_millis(50)],
        orig_ds: vec![Duration::ZERO, Duration::from_millis(20)],
        cold_runs: 20,
        rt_runs: 5,
        orig_runs: 5,
        scale_runs: 3,
        scale50_runs: 3,
        all_sequences: false,
        extra_env: Vec::new(),
        fleet_targets: FLEET_TARGETS,
        fleet_factors: vec![3, 1],
        fleet_unpaced: false,
    };
    let mut it = std::env::args().skip(1);
    fn num(flag: &str, v: Option<String>) -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag}: '{v}' is not a number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let v = it.next().ok_or("--only needs a value")?;
                o.sections = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!("--only: unknown section '{bad}'"));
                }
            }
            "--quick" => {
                o.cold_runs = 5;
                o.rt_runs = 2;
                o.orig_runs = 2;
                o.scale_runs = 1;
                o.scale50_runs = 1;
                o.fleet_factors = vec![3];
            }
            "--fleet-targets" => o.fleet_targets = num(&a, it.next())?.max(1),
            "--fleet-factors" => {
                let v = it.next().ok_or("--fleet-factors needs a value")?;
                o.fleet_factors = v
                    .split(',')
                    .map(|f| f.trim().parse::<u32>().map_err(|_| format!("--fleet-factors: bad value '{f}'")))
                    .collect::<Result<_, _>>()?;
            }
            "--fleet-unpaced" => o.fleet_unpaced = true,
            "--out" => o.out = PathBuf::from(it.next().ok_or("--out needs a value")?),
            "--bin" => o.bin = PathBuf::from(it.next().ok_or("--bin needs a value")?),
            "--python" => o.python = PathBuf::from(it.next().ok_or("--python needs a value")?),
            "--d-ms" => {
                let v = it.next().ok_or("--d-ms needs a value")?;
                o.ds = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .map(Duration::from_millis)
                            .map_err(|_| format!("--d-ms: bad value '{s}'"))
                    })
                    .collect::<Result<_, _>>()?;
                if o.ds.iter().any(Duration::is_zero) {
                    return Err("--d-ms: D must be above 0".into());
                }
            }
            "--cold-runs" => o.cold_runs = num(&a, it.next())?.max(1),
            "--rt-runs" => o.rt_runs = num(&a, it.next())?.max(1),
            "--orig-runs" => o.orig_runs = num(&a, it.next())?.max(1),
            "--scale-runs" => o.scale_runs = num(&a, it.next())?,
            "--scale50-runs" => o.scale50_runs = num(&a, it.next())?,
            "--all-sequences" => o.all_sequences = true,
            "--set" => {
                let v = it.next().ok_or("--set needs K=V")?;
                let (k, val) = v.split_once('=').ok_or_else(|| format!("--set: '{v}' is not K=V"))?;
                o.extra_env.push((k.to_string(), val.to_string()));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

/// One target of the issue and what this run measured for it.
struct Check {
    what: String,
    target: String,
    measured: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    md: String,
    checks: Vec<Check>,
}

impl Report {
    fn line(&mut self, s: &str) {
        self.md.push_str(s);
        self.md.push('\n');
    }

    fn check(&mut self, what: &str, target: &str, measured: String, met: bool) {
        self.checks.push(Check { what: what.into(), target: target.into(), measured, met });
    }
}

/// [`program_env`] plus the `--set` settings.
fn env_for(o: &Opts, emu: &Emulators, settings: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = program_env(emu, settings);
    for (k, v) in &o.extra_env {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == RUSAGE_SPAWN) {
        return ExitCode::from(u8::try_from(rusage_spawn(&args[2..])).unwrap_or(1));
    }
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pat-rotator-bench: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if !o.bin.is_file() {
        eprintln!(
            "pat-rotator-bench: {} not found; build it with `cargo build --release --workspace --bins`",
            o.bin.display()
        );
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let mut r = Report::default();
    r.line("# pat-rotator benchmark results");
    r.line("");
    r.line(&machine_info(&o));
    if !o.extra_env.is_empty() {
        let set: Vec<String> = o.extra_env.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        r.line(&format!("Extra settings of every `pat-rotator` process: {}.\n", set.join(", ")));
    }
    let want = |s: &str| o.sections.iter().any(|x| x == s);
    let mut failed = Vec::new();
    type Section = fn(&Opts, &mut Report) -> Result<(), String>;
    let sections: [(&str, Section); 8] = [
        ("size", size),
        ("cold", cold_start),
        ("rt", round_trips),
        ("fed", federated_round_trips),
        ("oauth", oauth_round_trips),
        ("orig", original),
        ("scale", scale),
        ("fleet", fleet),
    ];
    for (name, f) in sections {
        if !want(name) {
            continue;
        }
        let t = Instant::now();
        if let Err(e) = f(&o, &mut r) {
            progress(&format!("section {name} FAILED: {e}"));
            r.line(&format!("\n**Section `{name}` failed:** {e}\n"));
            failed.push(name);
        }
        progress(&format!("section {name} took {:.1} s", t.elapsed().as_secs_f64()));
    }
    r.line("\n## Targets\n");
    r.line("| target | required | measured | met |");
    r.line("|---|---|---|---|");
    let checks = std::mem::take(&mut r.checks);
    for c in &checks {
        r.line(&format!("| {} | {} | {} | {} |", c.what, c.target, c.measured, if c.met { "yes" } else { "**no**" }));
    }
    r.line(&format!("\nWhole benchmark: {:.0} s.", started.elapsed().as_secs_f64()));
    println!("{}", r.md);
    if let Some(dir) = o.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&o.out, &r.md) {
        Ok(()) => progress(&format!("written to {}", o.out.display())),
        Err(e) => progress(&format!("could not write {}: {e}", o.out.display())),
    }
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn machine_info(o: &Opts) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"]).is_some_and(|s| !s.is_empty());
    format!(
        "Machine: {cpu}, {cores} cores available, Linux {}, load average at start {load}.\nProgram: `{}`, built from commit {commit}{}.\n",
        kernel.trim(),
        o.bin.display(),
        if dirty { " with uncommitted changes in src/" } else { "" }
    )
}

fn stats_cells(v: &[f64], unit: &str, prec: usize) -> String {
    format!("{:.p$} {unit} | {:.p$}–{:.p$}", median(v), min(v), max(v), p = prec)
}

// ---------------------------------------------------------------------------------------------
// size

fn size(o: &Opts, r: &mut Report) -> Result<(), String> {
    let bytes = std::fs::metadata(&o.bin).map_err(|e| format!("{}: {e}", o.bin.display()))?.len();
    let mb = bytes as f64 / 1e6;
    r.line("## Binary size\n");
    r.line(&format!(
        "`pat-rotator` release binary (profile `release`: strip, fat LTO, opt-level s, panic abort): {bytes} bytes = {mb:.2} MB ({:.2} MiB).\n",
        bytes as f64 / 1048576.0
    ));
    r.check("stripped release binary", "≤ 12 MB", format!("{mb:.2} MB"), bytes <= 12_000_000);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cold start

fn cold_start(o: &Opts, r: &mut Report) -> Result<(), String> {
    progress(&format!("cold start: {} runs each of pat-rotator serve and the Python peer", o.cold_runs));
    let emu = Emulators::start(EmulatorOptions::default());
    // A valid one-target configuration, as in a deployed Function App.
    let env = env_for(o, &emu, &[("PAT_TARGETS", targets_json(&emu, &[TargetSpec::new("cold", 0, 0)]))]);
    let ours = || -> Result<Duration, String> {
        let port = free_port();
        let mut cmd = Command::new(&o.bin);
        cmd.arg("serve")
            .env_clear()
            .envs(env.iter().cloned())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = Instant::now();
        let child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", o.bin.display()))?;
        let ready = first_ok(port, t0, Duration::from_secs(30));
        terminate(child);
        ready.ok_or_else(|| "pat-rotator serve never answered GET /".to_string())
    };
    let peer_script = repo_root().join("bench/python_peer.py");
    let python_ok = o.python.is_file();
    let peer = || -> Result<Duration, String> {
        let port = free_port();
        let mut cmd = Command::new(&o.python);
        cmd.arg(&peer_script)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", o.python.display()))?;
        let ready = first_ok(port, t0, Duration::from_secs(60));
        let _ = child.kill();
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        ready.ok_or_else(|| format!("the Python peer never answered GET /: {}", String::from_utf8_lossy(&out.stderr)))
    };
    // One untimed start each (page cache, Python's bytecode cache), then interleaved runs.
    ours()?;
    if python_ok {
        peer()?;
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..o.cold_runs {
        a.push(ms(ours()?));
        if python_ok {
            b.push(ms(peer()?));
        }
    }
    r.line("## Cold start: exec → first answered `GET /`\n");
    r.line(&format!(
        "{} runs each, interleaved, after one untimed start of each. Polling `GET /` every 0.2 ms on a raw socket.\n",
        o.cold_runs
    ));
    r.line("| process | runs | median | min–max | ratio to pat-rotator |");
    r.line("|---|---|---|---|---|");
    r.line(&format!("| `pat-rotator serve` (release) | {} | {} | 1.00 |", a.len(), stats_cells(&a, "ms", 1)));
    if python_ok {
        r.line(&format!(
            "| Python peer (`azure.identity`, `azure.keyvault.secrets`, `requests`, `http.server`) | {} | {} | {:.1} |",
            b.len(),
            stats_cells(&b, "ms", 1),
            median(&b) / median(&a)
        ));
    } else {
        r.line(&format!("| Python peer | – | not run: {} missing (scripts/setup-python.sh) | | |", o.python.display()));
    }
    r.line("");
    r.check(
        "cold start (exec → GET / answered)",
        "≤ 20 ms",
        format!("{:.1} ms median", median(&a)),
        median(&a) <= 20.0,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// round trips

/// Formats the request sequence of one run, relative to `t0`, grouped into rounds.
fn sequence(title: &str, calls: &[LoggedCall], t0: Instant, d: Duration, end: Duration) -> String {
    let mut s = format!("{title}\n");
    let rs = rounds(calls, d);
    for (i, round) in rs.iter().enumerate() {
        for (j, c) in round.iter().enumerate() {
            let off = c.at.saturating_duration_since(t0);
            let label = if j == 0 { format!("{:>5}", i + 1) } else { "     ".into() };
            let _ = writeln!(
                s,
                "{label}  +{:>7.1} ms ({:>4.2} D)  {:<8} {} {} → {}",
                ms(off),
                off.as_secs_f64() / d.as_secs_f64(),
                c.service,
                c.method,
                c.path,
                c.status
            );
        }
    }
    let _ = writeln!(
        s,
        "  end  +{:>7.1} ms ({:>4.2} D)  {} sequential rounds",
        ms(end),
        end.as_secs_f64() / d.as_secs_f64(),
        rs.len()
    );
    s
}

struct RtRun {
    wall: Duration,
    calls: Vec<LoggedCall>,
    t0: Instant,
}

fn pick_median(runs: &[RtRun]) -> &RtRun {
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by_key(|&i| runs[i].wall);
    &runs[idx[(idx.len() - 1) / 2]]
}

fn provision(port: u16, body: serde_json::Value) -> Result<serde_json::Value, String> {
    let (status, text) = http(port, "POST", "/api/ProvisionPat", Some(&body.to_string()), Duration::from_secs(60))
        .map_err(|e| format!("ProvisionPat: {e}"))?;
    if status != 200 {
        return Err(format!("ProvisionPat {body}: {status} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("ProvisionPat answer is not JSON ({e}): {text}"))
}

struct RtAtD {
    cold: Vec<RtRun>,
    warm: Vec<RtRun>,
    third: Vec<RtRun>,
    /// One bare request to a fake (raw socket, new connection): D plus the fake's own overhead.
    bare: Vec<f64>,
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a URL with a port")
}

/// Which kind of target a round-trip section rotates.
#[derive(Clone, Copy)]
enum RtTarget<'a> {
    /// A PAT of the service's identity (`None`) or of an app registration (contract §8).
    Pat(Option<&'a str>),
    /// A service principal's OAuth secret (contract §9): each target has a principal of its own
    /// (a principal holds at most five secrets), see [`sp_of`].
    OAuth,
}

impl RtTarget<'_> {
    fn spec(self, name: impl Into<String>) -> TargetSpec {
        let name = name.into();
        match self {
            RtTarget::Pat(client_id) => TargetSpec::new(name, 0, 0).with_client_id(client_id),
            RtTarget::OAuth => {
                let sp = sp_of(&name);
                TargetSpec::new(name, 0, 0).with_oauth_sp(Some(&sp))
            }
        }
    }

    /// Target names of one kind never meet another kind's secret.
    fn prefix(self) -> &'static str {
        match self {
            RtTarget::Pat(_) => "",
            RtTarget::OAuth => "o",
        }
    }
}

/// The application id of the principal of OAuth-secret target `name`.
fn sp_of(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    format!("0b0b0b0b-2222-4222-8222-{:012x}", h & 0xffff_ffff_ffff)
}

/// The target names [`rt_at`] rotates at `d`.
fn rt_names(o: &Opts, d: Duration, kind: RtTarget<'_>) -> Vec<String> {
    let (p, dm) = (kind.prefix(), d.as_millis());
    (0..o.rt_runs).flat_map(|i| [format!("{p}cold-{dm}-{i}"), format!("{p}warm-{dm}-{i}")]).collect()
}

fn rt_at(o: &Opts, emu: &Emulators, d: Duration, kind: RtTarget<'_>) -> Result<RtAtD, String> {
    let dm = d.as_millis();
    emu.set_latency(d);
    let ws_port = port_of(emu.workspace(0).url());
    let mut bare = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        let (status, _) = http(ws_port, "GET", "/.well-known/databricks-config", None, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        bare.push(ms(t0.elapsed()));
        if status != 200 {
            return Err(format!("probe answered {status}"));
        }
    }
    let rotate_one = |name: &str| -> Result<Finished, String> {
        let spec = kind.spec(name);
        let env = env_for(o, emu, &[("PAT_TARGETS", targets_json(emu, &[spec]))]);
        let f =
            run(Command::new(&o.bin).args(["rotate", "--json"]).env_clear().envs(env)).map_err(|e| e.to_string())?;
        let v = f.json();
        if f.code != 0 || v[0]["action"] != "created" {
            return Err(format!("rotate {name}: exit {} {v}\n{}", f.code, tail(&f.stderr, 20)));
        }
        Ok(f)
    };
    let mut cold = Vec::new();
    for i in 0..o.rt_runs {
        reset_calls(emu);
        let f = rotate_one(&format!("{}cold-{dm}-{i}", kind.prefix()))?;
        cold.push(RtRun { wall: f.wall, calls: all_calls(emu), t0: f.started });
    }
    // Warm: one serve, targets warm-D-i.
    let names: Vec<String> = (0..o.rt_runs).map(|i| format!("{}warm-{dm}-{i}", kind.prefix())).collect();
    let specs: Vec<TargetSpec> = names.iter().map(|n| kind.spec(n.clone())).collect();
    let port = free_port();
    let mut cmd = Command::new(&o.bin);
    cmd.arg("serve")
        .env_clear()
        .envs(env_for(o, emu, &[("PAT_TARGETS", targets_json(emu, &specs))]))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    let ready = first_ok(port, Instant::now(), Duration::from_secs(30));
    let mut warm = Vec::new();
    let mut third = Vec::new();
    let result = (|| -> Result<(), String> {
        ready.ok_or("serve never answered GET /")?;
        for n in &names {
            let v = provision(port, json!({ "target": n }))?;
            if v["action"] != "created" {
                return Err(format!("first ProvisionPat {n}: {v}"));
            }
            for runs in [&mut warm, &mut third] {
                // Let the client-side workspace pacing window (30 requests per 1 s + margin)
                // empty, so that the measured rotation is not held back by the previous ones.
                std::thread::sleep(PACING_QUIET);
                reset_calls(emu);
                let t0 = Instant::now();
                let v = provision(port, json!({ "target": n, "force": true }))?;
                let wall = t0.elapsed();
                if v["action"] != "rotated" {
                    return Err(format!("forced ProvisionPat {n}: {v}"));
                }
                runs.push(RtRun { wall, calls: all_calls(emu), t0 });
            }
        }
        Ok(())
    })();
    terminate(child);
    result?;
    Ok(RtAtD { cold, warm, third, bare })
}

fn round_trips(o: &Opts, r: &mut Report) -> Result<(), String> {
    let emu = Emulators::start(EmulatorOptions::default());
    progress(&format!("round trips at D = 0 (fixed overheads): {} cold, {} warm", o.rt_runs, o.rt_runs));
    let zero = rt_at(o, &emu, Duration::ZERO, RtTarget::Pat(None))?; // also warms the page cache and the fakes' TLS
    r.line("## Round trips: one due rotation of one target, the fakes adding D to every request\n");
    r.line(&format!(
        "{} runs per D. *Cold*: a fresh `pat-rotator rotate --json` for a target with no secret (exec → exit, identity tokens included). \
*Warm*: on a running `pat-rotator serve`, each target is provisioned once (untimed, warms clients and tokens), then a forced `ProvisionPat` is timed (send → answer); \
*warm, 3rd*: one more forced `ProvisionPat` on the same target (steady state of repeated forced rotations). \
Each timed `ProvisionPat` waits 1.2 s first, so the engine's per-workspace pacing window is empty. \
*Bare request*: one `GET` to a fake on a new raw connection (D plus the fake's own overhead), 10 per D. \
*Rounds* = sequential request rounds seen by the fakes (a call arriving ≥ 0.8 D after the first call of the current round starts a new one).\n",
        o.rt_runs
    ));
    r.line("| D | bare request (baseline) | case | runs | median wall | min–max | wall / D | wall ÷ bare request | rounds | target |");
    r.line("|---|---|---|---|---|---|---|---|---|---|");
    let bare0 = median(&zero.bare);
    for (case, runs) in [
        ("cold (`rotate`)", &zero.cold),
        ("warm (2nd `ProvisionPat`, force)", &zero.warm),
        ("warm, 3rd forced in a row", &zero.third),
    ] {
        let walls: Vec<f64> = runs.iter().map(|x| ms(x.wall)).collect();
        r.line(&format!(
            "| 0 | {bare0:.2} ms | {case} | {} | {} | – | – | – | – |",
            runs.len(),
            stats_cells(&walls, "ms", 1)
        ));
    }
    let mut seqs = String::new();
    let mut medians: Vec<(Duration, f64, f64)> = vec![(
        Duration::ZERO,
        median(&zero.cold.iter().map(|x| ms(x.wall)).collect::<Vec<_>>()),
        median(&zero.warm.iter().map(|x| ms(x.wall)).collect::<Vec<_>>()),
    )];
    for &d in &o.ds {
        let dm = d.as_millis();
        progress(&format!("round trips at D = {dm} ms: {} cold, {} warm", o.rt_runs, o.rt_runs));
        let at = rt_at(o, &emu, d, RtTarget::Pat(None))?;
        let bare = median(&at.bare);
        for (case, runs, target) in [
            ("cold (`rotate`)", &at.cold, Some(5.0)),
            ("warm (2nd `ProvisionPat`, force)", &at.warm, Some(4.0)),
            ("warm, 3rd forced in a row", &at.third, None),
        ] {
            let walls: Vec<f64> = runs.iter().map(|x| ms(x.wall)).collect();
            let m = pick_median(runs);
            let rounds = rounds(&m.calls, d).len();
            let per_d = median(&walls) / ms(d);
            r.line(&format!(
                "| {dm} ms | {bare:.2} ms | {case} | {} | {} | {per_d:.2} | {:.2} | {rounds} | {} |",
                runs.len(),
                stats_cells(&walls, "ms", 1),
                median(&walls) / bare,
                target.map(|t| format!("≤ {t} D")).unwrap_or_else(|| "–".into())
            ));
            if let Some(t) = target {
                r.check(
                    &format!("{case} at D = {dm} ms"),
                    &format!("≤ {t} D"),
                    format!("{per_d:.2} D ({:.2} × bare request), {rounds} sequential rounds", median(&walls) / bare),
                    per_d <= t,
                );
            }
            if o.all_sequences {
                for (i, x) in runs.iter().enumerate() {
                    seqs.push_str(&sequence(
                        &format!("{case}, D = {dm} ms, run {} ({:.1} ms):", i + 1, ms(x.wall)),
                        &x.calls,
                        x.t0,
                        d,
                        x.wall,
                    ));
                    seqs.push('\n');
                }
            } else {
                seqs.push_str(&sequence(
                    &format!("{case}, D = {dm} ms, median run ({:.1} ms):", ms(m.wall)),
                    &m.calls,
                    m.t0,
                    d,
                    m.wall,
                ));
                seqs.push('\n');
            }
        }
        medians.push((
            d,
            median(&at.cold.iter().map(|x| ms(x.wall)).collect::<Vec<_>>()),
            median(&at.warm.iter().map(|x| ms(x.wall)).collect::<Vec<_>>()),
        ));
    }
    emu.set_latency(Duration::ZERO);
    if medians.len() >= 3 {
        let (d1, c1, w1) = medians[1];
        let (d2, c2, w2) = medians[medians.len() - 1];
        let dd = ms(d2) - ms(d1);
        let (kc, kw) = ((c2 - c1) / dd, (w2 - w1) / dd);
        r.line("");
        r.line(&format!(
            "Slope between D = {} and {} ms (sequential round trips on the critical path): cold {kc:.2}, warm {kw:.2}. At D = 0: cold {:.1} ms, warm {:.1} ms (fixed costs).",
            d1.as_millis(),
            d2.as_millis(),
            medians[0].1,
            medians[0].2
        ));
    }
    r.line("\nRequest sequences (arrival at the fake, relative to exec for cold and to the request for warm):\n");
    r.line("```");
    r.md.push_str(&seqs);
    r.line("```\n");
    Ok(())
}

/// The same cold and warm rotations for a target with `client_id` (contract §8): the app's
/// token comes from exchanging the managed identity's token at Entra, which should add one
/// sequential round on a cold start and none on a warm rotation.
fn federated_round_trips(o: &Opts, r: &mut Report) -> Result<(), String> {
    const APP: &str = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa";
    let emu = Emulators::start(EmulatorOptions::default());
    let app = emu.aad().trust_managed_identity(APP, emu.identity().principal());
    emu.workspace(0).add_member(&app);
    progress(&format!("federated round trips at D = 0 (warm-up): {} cold, {} warm", o.rt_runs, o.rt_runs));
    rt_at(o, &emu, Duration::ZERO, RtTarget::Pat(Some(APP)))?;
    r.line("## Round trips of a `client_id` target (federated exchange)\n");
    r.line(&format!(
        "As the section above, for a target whose PATs belong to app registration `{APP}`: the managed identity's token for `api://AzureADTokenExchange` is exchanged at the Entra fake for the app's token. {} runs per D. Target: cold one sequential round more than the service identity's 5 (≤ 6 rounds), warm unchanged (≤ 4 rounds); wall / D is reported beside the rounds.\n",
        o.rt_runs
    ));
    r.line("| D | case | runs | median wall | min–max | wall / D | rounds | exchanges | target |");
    r.line("|---|---|---|---|---|---|---|---|---|");
    let mut seqs = String::new();
    for &d in &o.ds {
        let dm = d.as_millis();
        progress(&format!("federated round trips at D = {dm} ms: {} cold, {} warm", o.rt_runs, o.rt_runs));
        let at = rt_at(o, &emu, d, RtTarget::Pat(Some(APP)))?;
        // The claim is about sequential rounds (one more on a cold start, none warm), so the
        // rounds seen by the fakes are the target; wall / D is reported beside them.
        for (case, runs, target) in
            [("cold (`rotate`)", &at.cold, 6usize), ("warm (2nd `ProvisionPat`, force)", &at.warm, 4)]
        {
            let walls: Vec<f64> = runs.iter().map(|x| ms(x.wall)).collect();
            let m = pick_median(runs);
            let rounds = rounds(&m.calls, d).len();
            let exchanges = m.calls.iter().filter(|c| c.service == "aad").count();
            let per_d = median(&walls) / ms(d);
            r.line(&format!(
                "| {dm} ms | {case} | {} | {} | {per_d:.2} | {rounds} | {exchanges} | ≤ {target} rounds |",
                runs.len(),
                stats_cells(&walls, "ms", 1),
            ));
            r.check(
                &format!("`client_id` target, {case} at D = {dm} ms"),
                &format!("≤ {target} sequential rounds"),
                format!("{rounds} sequential rounds, {exchanges} exchange(s), {per_d:.2} D"),
                rounds <= target,
            );
            seqs.push_str(&sequence(
                &format!("client_id {case}, D = {dm} ms, median run ({:.1} ms):", ms(m.wall)),
                &m.calls,
                m.t0,
                d,
                m.wall,
            ));
            seqs.push('\n');
        }
    }
    emu.set_latency(Duration::ZERO);
    r.line("\n```");
    r.md.push_str(&seqs);
    r.line("```\n");
    Ok(())
}

/// An OAuth-secret rotation (contract §9) beside a PAT rotation, in the same emulators and run:
/// the secret's principal is found once per process (SCIM), so a cold rotation takes one more
/// sequential round than a PAT's and a warm one none.
fn oauth_round_trips(o: &Opts, r: &mut Report) -> Result<(), String> {
    let emu = Emulators::start(EmulatorOptions::default());
    for d in std::iter::once(Duration::ZERO).chain(o.ds.iter().copied()) {
        for name in rt_names(o, d, RtTarget::OAuth) {
            emu.add_oauth_service_principal(&sp_of(&name), &name);
        }
    }
    progress(&format!("OAuth-secret round trips at D = 0 (warm-up): {} cold, {} warm", o.rt_runs, o.rt_runs));
    rt_at(o, &emu, Duration::ZERO, RtTarget::OAuth)?;
    rt_at(o, &emu, Duration::ZERO, RtTarget::Pat(None))?;
    r.line("## Round trips of an OAuth-secret target beside a PAT target\n");
    r.line(&format!(
        "A target of `kind: sp_oauth_secret` (a principal of its own: SCIM lookup, the secrets proxy API, verification at `/oidc/v1/token`) and a PAT target, measured alternately in the same emulators, {} runs each per D. Targets: PAT ≤ 5 cold / ≤ 4 warm rounds (held from the section above); OAuth secret ≤ 6 cold (the SCIM lookup, once per process) / ≤ 4 warm.\n",
        o.rt_runs
    ));
    r.line("| D | kind | case | runs | median wall | min–max | wall / D | rounds | target |");
    r.line("|---|---|---|---|---|---|---|---|---|");
    let mut seqs = String::new();
    for &d in &o.ds {
        let dm = d.as_millis();
        progress(&format!(
            "OAuth-secret and PAT round trips at D = {dm} ms: {} cold, {} warm each",
            o.rt_runs, o.rt_runs
        ));
        let oauth = rt_at(o, &emu, d, RtTarget::OAuth)?;
        let pat = rt_at(o, &emu, d, RtTarget::Pat(None))?;
        for (kind, at, cold_target) in [("OAuth secret", &oauth, 6usize), ("PAT", &pat, 5)] {
            for (case, runs, target) in
                [("cold (`rotate`)", &at.cold, cold_target), ("warm (2nd `ProvisionPat`, force)", &at.warm, 4)]
            {
                let walls: Vec<f64> = runs.iter().map(|x| ms(x.wall)).collect();
                let m = pick_median(runs);
                let rounds = rounds(&m.calls, d).len();
                let per_d = median(&walls) / ms(d);
                r.line(&format!(
                    "| {dm} ms | {kind} | {case} | {} | {} | {per_d:.2} | {rounds} | ≤ {target} rounds |",
                    runs.len(),
                    stats_cells(&walls, "ms", 1),
                ));
                r.check(
                    &format!("{kind} target, {case} at D = {dm} ms"),
                    &format!("≤ {target} sequential rounds"),
                    format!("{rounds} sequential rounds, {per_d:.2} D"),
                    rounds <= target,
                );
                if kind == "OAuth secret" {
                    seqs.push_str(&sequence(
                        &format!("OAuth secret {case}, D = {dm} ms, median run ({:.1} ms):", ms(m.wall)),
                        &m.calls,
                        m.t0,
                        d,
                        m.wall,
                    ));
                    seqs.push('\n');
                }
            }
        }
    }
    emu.set_latency(Duration::ZERO);
    r.line("\n```");
    r.md.push_str(&seqs);
    r.line("```\n");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// original approach

fn original(o: &Opts, r: &mut Report) -> Result<(), String> {
    let emu = Emulators::start(EmulatorOptions::default());
    let script = repo_root().join("bench/original.sh");
    let ws = emu.workspace(0);
    let run_orig = |name: &str| -> Result<Duration, String> {
        let mut cmd = Command::new("bash");
        cmd.arg(&script).env_clear().envs(program_env(
            &emu,
            &[
                ("DATABRICKS_HOST", ws.url().to_string()),
                ("DATABRICKS_WORKSPACE_RESOURCE_ID", ws.resource_id().to_string()),
                ("KEY_VAULT_URL", emu.vault(0).url().to_string()),
                ("PAT_SECRET_NAME", name.to_string()),
            ],
        ));
        let f = run(&mut cmd).map_err(|e| e.to_string())?;
        if f.code != 0 {
            return Err(format!("original.sh exit {}: {}", f.code, tail(&f.stderr, 10)));
        }
        let stored = emu.vault(0).latest(name).ok_or_else(|| format!("original.sh wrote no secret {name}"))?;
        if !ws.authenticate_pat(&stored.value) {
            return Err("original.sh stored a token the workspace does not accept".into());
        }
        Ok(f.wall)
    };
    let run_tool = |name: &str| -> Result<Duration, String> {
        let spec = TargetSpec::new(name, 0, 0).with_resource_id();
        let env = env_for(o, &emu, &[("PAT_TARGETS", targets_json(&emu, &[spec]))]);
        let f =
            run(Command::new(&o.bin).args(["rotate", "--json"]).env_clear().envs(env)).map_err(|e| e.to_string())?;
        let v = f.json();
        if f.code != 0 || v[0]["action"] != "created" {
            return Err(format!("rotate {name}: exit {} {v}", f.code));
        }
        Ok(f.wall)
    };
    run_orig("orig-warmup")?;
    run_tool("tool-warmup")?;
    r.line("## Against the original approach: `bench/original.sh` (curl) vs `pat-rotator rotate`, one target\n");
    r.line(&format!(
        "{} runs each per D, interleaved, after one untimed run of each. Both use the management-header mode (three identity tokens: Databricks, management, vault). \
The script: 3 × curl to the identity endpoint (standing in for `az account get-access-token`), curl token create with the two management headers, curl `PUT` to Key Vault. \
pat-rotator additionally lists tokens, reads the secret, verifies the new token, tags the secret and sets its expiry. \
The *with az* column adds {AZ_CALLS} × {AZ_START_S} s (the reference's per-`az`-process start; `az login --identity` + 3 × get-access-token) to the script's median — an estimate, the Azure CLI is not installed here.\n",
        o.orig_runs
    ));
    r.line("| D | original.sh median | min–max | pat-rotator median | min–max | original ÷ pat-rotator | original with az (est.) ÷ pat-rotator |");
    r.line("|---|---|---|---|---|---|---|");
    for &d in &o.orig_ds {
        let dm = d.as_millis();
        progress(&format!("original vs tool at D = {dm} ms: {} runs each", o.orig_runs));
        emu.set_latency(d);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..o.orig_runs {
            a.push(ms(run_orig(&format!("orig-{dm}-{i}"))?));
            b.push(ms(run_tool(&format!("tool-{dm}-{i}"))?));
        }
        let (ma, mb) = (median(&a), median(&b));
        r.line(&format!(
            "| {dm} ms | {} | {} | {:.2} | {:.1} |",
            stats_cells(&a, "ms", 1),
            stats_cells(&b, "ms", 1),
            ma / mb,
            (ma + AZ_CALLS * AZ_START_S * 1000.0) / mb
        ));
    }
    emu.set_latency(Duration::ZERO);
    r.line("");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// scale and footprint

struct ScaleRun {
    wall: Duration,
    code: i32,
    created: usize,
    kv429: u64,
    ws429: u64,
    writes: usize,
    /// First and last successful write, relative to exec.
    first_write: Duration,
    last_write: Duration,
    /// Most successful writes any one vault admitted in any 10 s.
    max_writes_10s: usize,
    rss_kib: u64,
    kv_calls: usize,
    ws_calls: usize,
    warn_lines: usize,
}

fn scale_once(
    o: &Opts,
    vaults: usize,
    workspaces: usize,
    settings: &[(&str, String)],
    log: &std::path::Path,
) -> Result<ScaleRun, String> {
    let emu = Emulators::start(EmulatorOptions {
        workspaces,
        vaults,
        workspace: WorkspaceOptions { rate_limit: Some(WS_RATE), ..Default::default() },
        ..Default::default()
    });
    let specs: Vec<TargetSpec> =
        (0..SCALE_TARGETS).map(|i| TargetSpec::new(format!("t{i}"), i % workspaces, i % vaults)).collect();
    let mut all = vec![("PAT_TARGETS", targets_json(&emu, &specs))];
    all.extend(settings.iter().cloned());
    let env = env_for(o, &emu, &all);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let f = run_with_peak_rss(&me, &o.bin, &["rotate", "--json"], env).map_err(|e| e.to_string())?;
    let _ = std::fs::write(log, &f.stderr);
    let v = f.json();
    let arr = v.as_array().ok_or_else(|| format!("rotate: not an array: {}", tail(&f.stdout, 5)))?;
    let created = arr.iter().filter(|x| x["action"] == "created" && x["error"].is_null()).count();
    let mut writes = Vec::new();
    let mut max_writes_10s = 0;
    for k in 0..vaults {
        let w = write_times(&emu, k);
        max_writes_10s = max_writes_10s.max(max_in_window(&w, KV_WINDOW));
        writes.extend(w);
    }
    writes.sort();
    let rel = |t: Option<&Instant>| t.map(|t| t.saturating_duration_since(f.started)).unwrap_or_default();
    Ok(ScaleRun {
        wall: f.wall,
        code: f.code,
        created,
        kv429: emu.vaults().iter().map(|k| k.throttled_count()).sum(),
        ws429: emu.workspaces().iter().map(|w| w.throttled_count()).sum(),
        writes: writes.len(),
        first_write: rel(writes.first()),
        last_write: rel(writes.last()),
        max_writes_10s,
        rss_kib: f.max_rss_kib,
        kv_calls: emu.vaults().iter().map(|k| k.faults().count("*")).sum(),
        ws_calls: emu.workspaces().iter().map(|w| w.faults().count("*")).sum(),
        warn_lines: f.stderr.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count(),
    })
}

fn scale(o: &Opts, r: &mut Report) -> Result<(), String> {
    let dir = repo_root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    // Writes n cannot precede write n-300 by less than the window: the last of 1,000 writes
    // comes at least (ceil(1000/300) - 1) × 10 s after the first.
    let floor = KV_WINDOW * (SCALE_TARGETS.div_ceil(KV_WRITES_PER_WINDOW) as u32 - 1);
    // Across many vaults the fleet pacing sets the floor (contract §11): all vaults together get
    // PAT_KEYVAULT_FLEET_FACTOR (3 by default) × 300 writes per 10 s.
    let fleet_floor = |vaults: usize| kv_floor(SCALE_TARGETS, KV_WRITES_PER_WINDOW * vaults.min(3));
    r.line("## Scale: 1,000 due targets in one pass (`pat-rotator rotate --json`), default settings\n");
    r.line(&format!(
        "Fake Key Vault: documented limit on (300 secret writes and 4,000 other requests per 10 s per vault, 5× that for all vaults, in fixed windows on the fakes' clock). \
Fake workspaces: token bucket {} burst, {}/s (above the client's default pacing of 30 requests/s per workspace). \
Targets assigned round-robin. Throttle floor for one vault: the 1,000th write cannot come earlier than {} s after the first; \
over 50 vaults the fleet pacing (`PAT_KEYVAULT_FLEET_FACTOR` = 3: 900 writes per 10 s for all vaults together) sets it at {} s. \
Fresh emulators per run. D = 0.\n",
        WS_RATE.burst,
        WS_RATE.per_second,
        floor.as_secs(),
        fleet_floor(50).as_secs()
    ));
    r.line("| case | run | wall | wall ÷ floor | exit | created | Key Vault 429 | Databricks 429 | writes | first → last write | max writes / 10 s / vault | KV / DBX requests | warn+error log lines | peak RSS |");
    r.line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rss_all = Vec::new();
    let unpaced = vec![("PAT_KV_WRITES_PER_10S", "100000".to_string())];
    // (label, vaults, workspaces, runs, extra settings)
    type Case<'a> = (&'a str, usize, usize, usize, &'a [(&'a str, String)]);
    let cases: [Case; 3] = [
        ("1 vault, 10 workspaces", 1, 10, o.scale_runs, &[]),
        ("50 vaults, 50 workspaces", 50, 50, o.scale50_runs, &[]),
        // The same-run reference: what the client-side pacing of writes buys.
        (
            "1 vault, 10 workspaces, write pacing off (`PAT_KV_WRITES_PER_10S=100000`)",
            1,
            10,
            o.scale_runs.min(1),
            &unpaced,
        ),
    ];
    let mut summaries = Vec::new();
    for (label, vaults, workspaces, runs, settings) in cases {
        let paced = settings.is_empty();
        let mut walls = Vec::new();
        let mut all_ok = true;
        let mut kv429 = 0;
        let mut ws429 = 0;
        for i in 0..runs {
            progress(&format!("scale: {label}, run {}/{runs}", i + 1));
            let log = dir.join(format!("scale-{vaults}v{}-run{i}.stderr.log", if paced { "" } else { "-unpaced" }));
            let s = scale_once(o, vaults, workspaces, settings, &log)?;
            let f = if vaults == 1 { floor } else { fleet_floor(vaults) };
            let ratio = format!("{:.3}", s.wall.as_secs_f64() / f.as_secs_f64());
            r.line(&format!(
                "| {label} | {} | {:.2} s | {ratio} | {} | {} | {} | {} | {} | {:.2} → {:.2} s | {} | {} / {} | {} | {:.1} MiB |",
                i + 1,
                s.wall.as_secs_f64(),
                s.code,
                s.created,
                s.kv429,
                s.ws429,
                s.writes,
                s.first_write.as_secs_f64(),
                s.last_write.as_secs_f64(),
                s.max_writes_10s,
                s.kv_calls,
                s.ws_calls,
                s.warn_lines,
                s.rss_kib as f64 / 1024.0
            ));
            walls.push(s.wall.as_secs_f64());
            all_ok &= s.code == 0 && s.created == SCALE_TARGETS;
            kv429 += s.kv429;
            ws429 += s.ws429;
            rss_all.push(s.rss_kib);
        }
        summaries.push((label, vaults, paced, walls, all_ok, kv429, ws429));
    }
    r.line("");
    for (label, vaults, paced, walls, all_ok, kv429, ws429) in summaries {
        if walls.is_empty() {
            continue;
        }
        let m = median(&walls);
        r.line(&format!(
            "- {label}: median {m:.2} s over {} run(s){}; all targets created: {all_ok}; Key Vault 429s: {kv429}; Databricks 429s: {ws429}.",
            walls.len(),
            {
                let f = if vaults == 1 { floor } else { fleet_floor(vaults) };
                format!(" = {:.3} × floor", m / f.as_secs_f64())
            }
        ));
        if !paced {
            continue;
        }
        if vaults == 1 {
            let limit = floor.as_secs_f64() * 1.1;
            r.check(
                "1,000 targets, 1 vault",
                &format!("≤ 1.1 × floor = {limit:.0} s, 0 Key Vault 429s"),
                format!(
                    "{m:.2} s median ({:.3} × floor), {kv429} Key Vault 429s, {ws429} Databricks 429s",
                    m / floor.as_secs_f64()
                ),
                m <= limit && kv429 == 0 && all_ok,
            );
        } else {
            let f = fleet_floor(vaults).as_secs_f64();
            r.check(
                "1,000 targets, 50 vaults",
                &format!("≤ 1.1 × the fleet pacing's floor = {:.0} s, 0 Key Vault 429s", f * 1.1),
                format!("{m:.2} s median ({:.3} × floor), {kv429} Key Vault 429s, {ws429} Databricks 429s", m / f),
                m <= f * 1.1 && kv429 == 0 && all_ok,
            );
        }
    }
    if let Some(peak) = rss_all.iter().max() {
        let mib = *peak as f64 / 1024.0;
        r.line(&format!(
            "\nPeak RSS of the `pat-rotator rotate` process (`ru_maxrss` from `wait4` in a small spawner process, see `bench/src/lib.rs` `run_with_peak_rss`) over all {} scale runs: max {mib:.1} MiB ({:.1} MB), median {:.1} MiB. stderr of each run: `target/bench/scale-*.stderr.log`.\n",
            rss_all.len(),
            *peak as f64 * 1024.0 / 1e6,
            median(&rss_all.iter().map(|x| *x as f64 / 1024.0).collect::<Vec<_>>())
        ));
        r.check(
            "peak RSS at 1,000 targets",
            "≤ 40 MB",
            format!("{:.1} MB (max of {} runs)", *peak as f64 * 1024.0 / 1e6, rss_all.len()),
            *peak * 1024 <= 40_000_000,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fleet: 10,000 targets, 100 vaults, 50 workspaces (contract §11)

const FLEET_TARGETS: usize = 10_000;
const FLEET_VAULTS: usize = 100;
const FLEET_WORKSPACES: usize = 50;
const FLEET_CONCURRENCY: &str = "64";
/// Key Vault's subscription-wide limit, as a multiple of a vault's (the fakes' default).
const KV_SUBSCRIPTION_FACTOR: usize = 5;

struct FleetRun {
    wall: Duration,
    code: i32,
    created: usize,
    kv429: u64,
    sub429: u64,
    ws429: u64,
    writes: usize,
    first_write: Duration,
    last_write: Duration,
    /// Most successful writes of all vaults together in any 10 s (sliding), and in any of the
    /// fakes' fixed windows.
    max_writes_10s: usize,
    max_writes_fixed: usize,
    kv_calls: usize,
    ws_calls: usize,
    rss_kib: u64,
    cpu_program: Duration,
    cpu_emulators: Duration,
    progress_lines: usize,
    warn_lines: usize,
}

fn fleet_once(o: &Opts, factor: u32, log: &std::path::Path) -> Result<FleetRun, String> {
    let emu = Emulators::start(EmulatorOptions {
        workspaces: FLEET_WORKSPACES,
        vaults: FLEET_VAULTS,
        workspace: WorkspaceOptions { rate_limit: Some(WS_RATE), ..Default::default() },
        ..Default::default()
    });
    let specs: Vec<TargetSpec> = (0..o.fleet_targets)
        .map(|i| TargetSpec::new(format!("t{i}"), i % FLEET_WORKSPACES, i % FLEET_VAULTS))
        .collect();
    let file = std::env::temp_dir().join(format!("pat-rotator-bench-fleet-{}.json", std::process::id()));
    std::fs::write(&file, targets_document(&emu, &specs)).map_err(|e| e.to_string())?;
    let mut settings =
        vec![("PAT_TARGETS_FILE", file.display().to_string()), ("PAT_MAX_CONCURRENCY", FLEET_CONCURRENCY.to_string())];
    if factor != 3 {
        settings.push(("PAT_KEYVAULT_FLEET_FACTOR", factor.to_string()));
    }
    let env = env_for(o, &emu, &settings);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let cpu0 = self_cpu();
    let f = run_with_peak_rss(&me, &o.bin, &["rotate", "--json"], env).map_err(|e| e.to_string())?;
    let cpu_emulators = self_cpu().saturating_sub(cpu0);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::write(log, &f.stderr);
    let v = f.json();
    let arr = v.as_array().ok_or_else(|| format!("rotate: not an array: {}", tail(&f.stdout, 5)))?;
    let created = arr.iter().filter(|x| x["action"] == "created" && x["error"].is_null()).count();
    let mut writes: Vec<Instant> = (0..FLEET_VAULTS).flat_map(|k| write_times(&emu, k)).collect();
    writes.sort();
    let rel = |t: Option<&Instant>| t.map(|t| t.saturating_duration_since(f.started)).unwrap_or_default();
    Ok(FleetRun {
        wall: f.wall,
        code: f.code,
        created,
        kv429: emu.kv_throttled_total(),
        sub429: emu.kv_subscription().throttled_count(),
        ws429: emu.workspaces().iter().map(|w| w.throttled_count()).sum(),
        writes: writes.len(),
        first_write: rel(writes.first()),
        last_write: rel(writes.last()),
        max_writes_10s: max_in_window(&writes, KV_WINDOW),
        max_writes_fixed: max_in_fixed_windows(&writes, emu.kv_window_origin(), KV_WINDOW),
        kv_calls: emu.vaults().iter().map(|k| k.faults().count("*")).sum(),
        ws_calls: emu.workspaces().iter().map(|w| w.faults().count("*")).sum(),
        rss_kib: f.max_rss_kib,
        cpu_program: f.cpu,
        cpu_emulators,
        progress_lines: f.stderr.lines().filter(|l| l.contains("progress: ")).count(),
        warn_lines: f.stderr.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count(),
    })
}

/// The floor of a pass of `writes` secret writes at `budget` writes per 10 s: write n cannot
/// come less than 10 s after write n − budget.
fn kv_floor(writes: usize, budget: usize) -> Duration {
    KV_WINDOW * (writes.div_ceil(budget) as u32).saturating_sub(1)
}

fn fleet(o: &Opts, r: &mut Report) -> Result<(), String> {
    let dir = repo_root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let n = o.fleet_targets;
    r.line(&format!(
        "## Fleet: {n} due targets in one pass over {FLEET_VAULTS} vaults and {FLEET_WORKSPACES} workspaces (`pat-rotator rotate --json`)\n"
    ));
    r.line(&format!(
        "Targets from `PAT_TARGETS_FILE` (round-robin over vaults and workspaces), `PAT_MAX_CONCURRENCY={FLEET_CONCURRENCY}`. \
Fake Key Vaults: 300 writes and 4,000 other requests per 10 s per vault and {KV_SUBSCRIPTION_FACTOR}× that for all vaults together \
(one subscription), counted in fixed 10 s windows on the fakes' own clock. Fake workspaces: token bucket {} burst, {}/s. \
Floor: the last write cannot come earlier than (⌈writes ÷ budget⌉ − 1) × 10 s after the first, budget = 300 × `PAT_KEYVAULT_FLEET_FACTOR` \
per 10 s. *CPU*: user + system time of the `pat-rotator` process, and of the benchmark process that hosts the emulators. Fresh emulators per run; D = 0.\n",
        WS_RATE.burst, WS_RATE.per_second
    ));
    r.line("| `PAT_KEYVAULT_FLEET_FACTOR` | floor | wall | wall ÷ floor | exit | created | writes | Key Vault 429 (subscription) | Databricks 429 | first → last write | max writes / 10 s, all vaults (sliding / fixed) | KV / DBX requests | CPU pat-rotator / emulators | progress lines | warn+error lines | peak RSS |");
    r.line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut runs: Vec<(u32, bool)> = o.fleet_factors.iter().map(|f| (*f, true)).collect();
    if o.fleet_unpaced {
        runs.push((1000, false));
    }
    for (factor, paced) in runs {
        progress(&format!("fleet: {n} targets, PAT_KEYVAULT_FLEET_FACTOR={factor}"));
        let log = dir.join(format!("fleet-factor{factor}.stderr.log"));
        let s = fleet_once(o, factor, &log)?;
        // Beyond the subscription's own limit, that limit is the floor.
        let budget = KV_WRITES_PER_WINDOW * (factor as usize).min(KV_SUBSCRIPTION_FACTOR);
        let floor = kv_floor(n, budget);
        let ratio = s.wall.as_secs_f64() / floor.as_secs_f64().max(1e-9);
        r.line(&format!(
            "| {factor}{} | {:.0} s | {:.2} s | {ratio:.3} | {} | {} | {} | {} ({}) | {} | {:.2} → {:.2} s | {} / {} | {} / {} | {:.1} s / {:.1} s | {} | {} | {:.1} MiB |",
            if paced { "" } else { " (reference: fleet pacing opened up)" },
            floor.as_secs_f64(),
            s.wall.as_secs_f64(),
            s.code,
            s.created,
            s.writes,
            s.kv429,
            s.sub429,
            s.ws429,
            s.first_write.as_secs_f64(),
            s.last_write.as_secs_f64(),
            s.max_writes_10s,
            s.max_writes_fixed,
            s.kv_calls,
            s.ws_calls,
            s.cpu_program.as_secs_f64(),
            s.cpu_emulators.as_secs_f64(),
            s.progress_lines,
            s.warn_lines,
            s.rss_kib as f64 / 1024.0
        ));
        if !paced {
            continue;
        }
        let ok = s.code == 0 && s.created == n && s.kv429 == 0;
        r.check(
            &format!("{n} targets, {FLEET_VAULTS} vaults, factor {factor}"),
            &format!("≤ 1.1 × floor = {:.0} s, 0 Key Vault 429s", floor.as_secs_f64() * 1.1),
            format!(
                "{:.2} s = {ratio:.3} × floor, {} Key Vault 429s, {} Databricks 429s, all created: {}",
                s.wall.as_secs_f64(),
                s.kv429,
                s.ws429,
                s.created == n
            ),
            ok && ratio <= 1.1,
        );
        r.check(
            &format!("peak RSS at {n} targets, factor {factor}"),
            "≤ 64 MiB",
            format!("{:.1} MiB", s.rss_kib as f64 / 1024.0),
            s.rss_kib <= 64 * 1024,
        );
    }
    r.line("\nstderr of each run: `target/bench/fleet-factor*.stderr.log`.\n");
    Ok(())
}
