//! The simulator's command line.
//!
//! ```text
//! pat-rotator-sim replay SEED [--bug NAME]... [--retag-strips-ids]   one schedule with its event log
//! pat-rotator-sim soak [--from N] [--count N] [--threads N] [--show N] [--bug NAME]...
//!                                                                 many schedules; schedules per second
//! pat-rotator-sim hunt NAME [--max N]                              seeds 0, 1, … with one old defect on
//! ```
//!
//! Exit status: 0 when no schedule broke an invariant, 1 when one did, 2 for a usage error.

use std::process::ExitCode;
use std::time::Instant;

use pat_rotator_sim::{Options, features, run, set_bugs};

/// A schedule allocates much: mimalloc runs the soak about a sixth faster than glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> ExitCode {
    eprintln!(
        "usage: pat-rotator-sim replay SEED [--bug NAME]... [--retag-strips-ids]\n       pat-rotator-sim soak [--from N] [--count N] [--threads N] [--show N] [--bug NAME]...\n       pat-rotator-sim hunt NAME [--max N]"
    );
    ExitCode::from(2)
}

struct Args {
    positional: Vec<String>,
    bugs: Vec<String>,
    from: u64,
    count: u64,
    threads: usize,
    max: u64,
    strips: bool,
    show: usize,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        positional: Vec::new(),
        bugs: Vec::new(),
        from: 0,
        count: 100_000,
        threads: 2,
        max: 5_000,
        strips: false,
        show: 100,
    };
    let num = |v: Option<String>, what: &str| -> Result<u64, String> {
        v.ok_or(format!("{what} needs a value"))?.parse().map_err(|e| format!("{what}: {e}"))
    };
    while let Some(x) = it.next() {
        match x.as_str() {
            "--bug" => a.bugs.push(it.next().ok_or("--bug needs a name")?),
            "--from" => a.from = num(it.next(), "--from")?,
            "--count" => a.count = num(it.next(), "--count")?,
            "--threads" => a.threads = num(it.next(), "--threads")?.max(1) as usize,
            "--max" => a.max = num(it.next(), "--max")?,
            "--show" => a.show = num(it.next(), "--show")? as usize,
            "--retag-strips-ids" => a.strips = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.positional.push(x),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else { return usage() };
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return usage();
        }
    };
    match cmd.as_str() {
        "replay" => {
            let Some(seed) = args.positional.first().and_then(|s| s.parse::<u64>().ok()) else { return usage() };
            if let Err(e) = set_bugs(&args.bugs) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let r = run(seed, Options { log: true, retag_strips_ids: args.strips });
            print!("{}", r.render(features()));
            if r.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        "soak" => soak(&args),
        "hunt" => {
            let Some(bug) = args.positional.first() else { return usage() };
            hunt(bug, args.max)
        }
        _ => usage(),
    }
}

#[cfg(feature = "hunt")]
fn hunt(name: &str, max: u64) -> ExitCode {
    use pat_rotator::rotation::bugs::Bug;
    let Some(bug) = Bug::ALL.into_iter().find(|b| format!("{b:?}").eq_ignore_ascii_case(name)) else {
        eprintln!("error: unknown bug {name:?}; one of {:?}", Bug::ALL);
        return ExitCode::from(2);
    };
    let t = Instant::now();
    match pat_rotator_sim::hunt::hunt(bug, max) {
        Ok(f) => {
            println!(
                "{bug:?}: found after {} schedule(s) (seed {}, {:.1} s; {} seed(s) failing without it skipped): invariant {}: {}",
                f.schedules,
                f.report.seed,
                t.elapsed().as_secs_f64(),
                f.elsewhere.len(),
                f.report.violations[0].invariant,
                f.report.violations[0].text
            );
            println!(
                "replay: cargo run -p pat-rotator-sim --profile sim --features hunt -- replay {} --bug {bug:?}",
                f.report.seed
            );
            ExitCode::SUCCESS
        }
        Err(elsewhere) => {
            println!("{bug:?}: not found in {max} schedules ({} failed without it too)", elsewhere.len());
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "hunt"))]
fn hunt(_: &str, _: u64) -> ExitCode {
    eprintln!("error: the hunt needs the build with --features hunt");
    ExitCode::from(2)
}

/// Schedules `from .. from + count` on `threads` threads (each schedule is single-threaded and
/// deterministic; threads only take different seeds).
fn soak(args: &Args) -> ExitCode {
    if let Err(e) = set_bugs(&args.bugs) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let t = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(args.from);
    let end = args.from + args.count;
    let failed = std::sync::Mutex::new(Vec::new());
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let done = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..args.threads {
            s.spawn(|| {
                set_bugs(&args.bugs).expect("checked above");
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let r = run(seed, Options::default());
                    {
                        let mut seen = seen.lock().unwrap();
                        for (o, n) in &r.observations {
                            *seen.entry(format!("observation: {o}")).or_default() += *n as u64;
                        }
                        for (e, n) in &r.exceptions {
                            *seen.entry(format!("exception: {e:?}")).or_default() += *n as u64;
                        }
                    }
                    if r.failed() {
                        failed.lock().unwrap().push((seed, r.violations[0].text.clone()));
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n.is_multiple_of(10_000) {
                        eprintln!("  {n} schedules, {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
                    }
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let mut failed = failed.into_inner().unwrap();
    failed.sort();
    println!(
        "soak: {} schedules (seeds {}..{}) in {secs:.1} s on {} thread(s): {:.0} schedules/s; {} failed",
        args.count,
        args.from,
        end,
        args.threads,
        args.count as f64 / secs,
        failed.len()
    );
    for (what, n) in seen.into_inner().unwrap() {
        println!("  {n:>8}  {what}");
    }
    for (seed, text) in failed.iter().take(args.show) {
        println!(
            "  seed {seed}: {text}\n    replay: cargo run -p pat-rotator-sim --profile sim{} -- replay {seed}",
            features()
        );
    }
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
