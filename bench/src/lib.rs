//! What the benchmark binary and the pacing tests share: finding the `pat-rotator` binary,
//! building its environment against the in-process emulators, running it while recording its
//! wall time and peak RSS (`wait4`), raw loopback HTTP (no client library between the stopwatch
//! and the socket), the emulators' merged call log, and small statistics.
//!
//! Nothing here talks to anything but `127.0.0.1`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use pat_rotator_emulators::Emulators;
use serde_json::{Value, json};

/// The repository root (the parent of `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ has a parent").to_path_buf()
}

/// The directory holding the binaries of the profile the running executable was built with
/// (`target/<profile>`; test executables live one level down, in `deps/`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable has a directory").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// `pat-rotator` next to the running executable (same profile), or `PAT_ROTATOR_BIN`.
///
/// # Panics
/// When the binary does not exist (build it first: `cargo build --bin pat-rotator`, or run
/// the workspace's tests, which build it).
pub fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("PAT_ROTATOR_BIN") {
        return PathBuf::from(p);
    }
    let bin = profile_dir().join("pat-rotator");
    assert!(
        bin.is_file(),
        "{} does not exist: build it first (`cargo build --bin pat-rotator` for tests, `cargo build --release --workspace --bins` for the benchmark), or set PAT_ROTATOR_BIN",
        bin.display()
    );
    if let (Some(built), Some(newest)) = (mtime(&bin), newest_mtime(&repo_root().join("src")))
        && newest > built
    {
        eprintln!("warning: {} is older than a file in src/; rebuild it to measure the current code", bin.display());
    }
    bin
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let t = if p.is_dir() { newest_mtime(&p) } else { mtime(&p) };
        newest = newest.max(t);
    }
    newest
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One target of `PAT_TARGETS`.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub name: String,
    /// Workspace index in the emulators.
    pub ws: usize,
    /// Vault index in the emulators.
    pub kv: usize,
    /// Send the management headers (`workspace_resource_id`), as the original script does.
    pub resource_id: bool,
    /// The target's PATs belong to this app registration, reached by federation (contract §8).
    pub client_id: Option<String>,
    /// The target holds this service principal's OAuth secret instead of a PAT (contract §9).
    pub oauth_sp: Option<String>,
}

impl TargetSpec {
    pub fn new(name: impl Into<String>, ws: usize, kv: usize) -> TargetSpec {
        TargetSpec { name: name.into(), ws, kv, resource_id: false, client_id: None, oauth_sp: None }
    }

    pub fn with_client_id(mut self, client_id: Option<&str>) -> TargetSpec {
        self.client_id = client_id.map(str::to_string);
        self
    }

    pub fn with_oauth_sp(mut self, application_id: Option<&str>) -> TargetSpec {
        self.oauth_sp = application_id.map(str::to_string);
        self
    }

    pub fn with_resource_id(mut self) -> TargetSpec {
        self.resource_id = true;
        self
    }
}

/// `PAT_TARGETS` for `specs` (secret name = target name, to keep the variable short: Linux
/// caps one environment string at 128 KiB and 1,000 targets come close).
pub fn targets_json(emu: &Emulators, specs: &[TargetSpec]) -> String {
    let s = targets_document(emu, specs);
    assert!(s.len() < 128 * 1024, "PAT_TARGETS is {} bytes, above Linux's 128 KiB per environment string", s.len());
    s
}

/// The JSON array of targets for `specs`, of any size (for `PAT_TARGETS_FILE`).
pub fn targets_document(emu: &Emulators, specs: &[TargetSpec]) -> String {
    let arr: Vec<Value> = specs
        .iter()
        .map(|s| {
            let mut t = json!({
                "name": s.name,
                "workspace_url": emu.workspace(s.ws).url(),
                "key_vault_url": emu.vault(s.kv).url(),
                "secret_name": s.name,
            });
            if s.resource_id {
                t["workspace_resource_id"] = json!(emu.workspace(s.ws).resource_id());
            }
            if let Some(c) = &s.client_id {
                t["client_id"] = json!(c);
            }
            if let Some(sp) = &s.oauth_sp {
                t["kind"] = json!("sp_oauth_secret");
                t["service_principal"] = json!(sp);
            }
            t
        })
        .collect();
    serde_json::to_string(&arr).expect("targets serialise")
}

/// The environment of a `pat-rotator` process: only `PATH` and `HOME` are inherited, then the
/// emulators' variables, then `settings` (later entries win).
pub fn program_env(emu: &Emulators, settings: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())),
        // The benches time forced ProvisionPat rotations back to back: no ProvisionPat cooldown.
        ("PAT_FORCE_COOLDOWN_MINUTES".into(), "0".into()),
    ];
    env.extend(emu.env());
    for (k, v) in settings {
        env.retain(|(key, _)| key != k);
        env.push(((*k).to_string(), v.clone()));
    }
    env
}

/// A finished child process.
#[derive(Debug)]
pub struct Finished {
    /// When `spawn` was called.
    pub started: Instant,
    /// From just before `spawn` to the return of `wait4`.
    pub wall: Duration,
    /// Exit code, or 128 + signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// `ru_maxrss` of the child (KiB on Linux). With [`run`] this includes the high-water mark
    /// of the calling process, which Linux carries across `exec`; see [`run_with_peak_rss`].
    pub max_rss_kib: u64,
    /// CPU time (user + system) of the child. With [`run_with_peak_rss`] the program's own.
    pub cpu: Duration,
}

fn cpu_of(ru: &libc::rusage) -> Duration {
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (user + system) this process has used so far: in the benchmark, the emulators'.
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    cpu_of(&ru)
}

impl Finished {
    /// stdout as JSON (panics with the output when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, tail(&self.stderr, 40)))
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to completion (stdin closed, stdout and stderr captured) and reports its wall
/// time and peak RSS. The child is reaped with `wait4`, whose `rusage` is the child's own.
pub fn run(cmd: &mut Command) -> io::Result<Finished> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let (code, rusage) = wait4(&child)?;
    let wall = started.elapsed();
    // Reaped by wait4 above; `Child` has no destructor that waits or kills.
    drop(child);
    Ok(Finished {
        started,
        wall,
        code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        max_rss_kib: u64::try_from(rusage.ru_maxrss).unwrap_or(0),
        cpu: cpu_of(&rusage),
    })
}

fn reader(stream: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait4(child: &Child) -> io::Result<(i32, libc::rusage)> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals, a pid we spawned and have not reaped.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    Ok((code, ru))
}

/// The argument that turns the benchmark binary into the small spawner of [`run_with_peak_rss`].
pub const RUSAGE_SPAWN: &str = "--rusage-spawn";

/// Like [`run`], but the peak RSS is the program's own.
///
/// Linux carries `ru_maxrss` across `exec`: a child exec'd by this (large, emulator-hosting)
/// process starts with this process's high-water mark. So the program is started by a fresh,
/// small copy of `spawner` (an executable that calls [`rusage_spawn`] when its first argument
/// is [`RUSAGE_SPAWN`]), and that copy reports its child's `ru_maxrss` through a file. The
/// spawner's own few MiB are the floor of what can be measured this way.
pub fn run_with_peak_rss(
    spawner: &Path,
    program: &Path,
    args: &[&str],
    env: Vec<(String, String)>,
) -> io::Result<Finished> {
    let out = std::env::temp_dir().join(format!("pat-rotator-bench-rss-{}-{}", std::process::id(), free_port()));
    let mut cmd = Command::new(spawner);
    cmd.arg(RUSAGE_SPAWN).arg(&out).arg(program).args(args).env_clear().envs(env);
    let mut f = run(&mut cmd)?;
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    let text = text.map_err(|e| io::Error::other(format!("the spawner reported no peak RSS: {e}")))?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let mut next = |what: &str| {
        fields
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| io::Error::other(format!("the spawner's {what} is not a number: {text:?}")))
    };
    f.max_rss_kib = next("peak RSS")?;
    f.cpu = Duration::from_micros(next("CPU time")?);
    Ok(f)
}

/// The spawner side of [`run_with_peak_rss`]: `args` = `[OUT_FILE, PROGRAM, ARGS...]`. Runs the
/// program with this process's stdio and environment, writes its `ru_maxrss` (KiB) and CPU time
/// (µs) to `OUT_FILE`, and exits with its exit code.
pub fn rusage_spawn(args: &[std::ffi::OsString]) -> i32 {
    let [out, program, rest @ ..] = args else {
        eprintln!("{RUSAGE_SPAWN} OUT_FILE PROGRAM [ARGS...]");
        return 2;
    };
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{RUSAGE_SPAWN}: {}: {e}", Path::new(program).display());
            return 127;
        }
    };
    match wait4(&child) {
        Ok((code, ru)) => {
            let _ = std::fs::write(out, format!("{} {}", ru.ru_maxrss, cpu_of(&ru).as_micros()));
            code
        }
        Err(e) => {
            eprintln!("{RUSAGE_SPAWN}: wait4: {e}");
            1
        }
    }
}

/// Sends SIGTERM (as the Functions host does) and waits up to 10 s, then SIGKILL.
pub fn terminate(mut child: Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One HTTP/1.1 exchange with `127.0.0.1:port` (`Connection: close`): status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    let body = json_body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if json_body.is_some() {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {}", String::from_utf8_lossy(&raw))))
}

fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_string()));
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some((status, out));
        }
        out.push_str(after.get(..n)?);
        rest = after.get(n + 2..)?;
    }
}

/// Polls `GET /` on `port` until it answers 200 (a refused connection is retried after
/// 200 µs). Returns the time since `since`, or `None` after `limit`.
pub fn first_ok(port: u16, since: Instant, limit: Duration) -> Option<Duration> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while since.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = [0u8; 16];
                let mut got = 0;
                while got < 12 {
                    match s.read(&mut buf[got..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                if got >= 12 && buf.starts_with(b"HTTP/1.") && &buf[9..12] == b"200" {
                    return Some(since.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// One request an emulator received, with the name of the fake.
#[derive(Clone, Debug)]
pub struct LoggedCall {
    /// `identity`, `aad`, `kv<i>`, `ws<i>`.
    pub service: String,
    pub op: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Arrival at the fake (before its added latency).
    pub at: Instant,
}

/// Every fake's call log, merged and sorted by arrival.
pub fn all_calls(emu: &Emulators) -> Vec<LoggedCall> {
    let mut named = vec![("identity".to_string(), emu.identity().faults()), ("aad".to_string(), emu.aad().faults())];
    named.extend(emu.vaults().iter().enumerate().map(|(i, v)| (format!("kv{i}"), v.faults())));
    named.extend(emu.workspaces().iter().enumerate().map(|(i, w)| (format!("ws{i}"), w.faults())));
    let mut v: Vec<LoggedCall> = named
        .into_iter()
        .flat_map(|(service, f)| {
            f.calls().into_iter().map(move |c| LoggedCall {
                service: service.clone(),
                op: c.op,
                method: c.method,
                path: c.path,
                status: c.status,
                at: c.at,
            })
        })
        .collect();
    v.sort_by_key(|c| c.at);
    v
}

/// Forgets every fake's call log.
pub fn reset_calls(emu: &Emulators) {
    for f in emu.all_faults() {
        f.reset_calls();
    }
}

/// Successful secret writes (`PUT /secrets/{name}` answered 200) of vault `kv`, by arrival.
pub fn write_times(emu: &Emulators, kv: usize) -> Vec<Instant> {
    let mut v: Vec<Instant> =
        emu.vault(kv).faults().calls().iter().filter(|c| c.op == "set" && c.status == 200).map(|c| c.at).collect();
    v.sort();
    v
}

/// The most arrivals in any window of length `window` (each window starts at an arrival).
pub fn max_in_window(sorted: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut j = 0;
    for i in 0..sorted.len() {
        while j < sorted.len() && sorted[j].duration_since(sorted[i]) < window {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// The most arrivals in any one fixed window `[origin + k·window, origin + (k+1)·window)`: how
/// the Key Vault fakes count (their default `WindowMode::Fixed`).
pub fn max_in_fixed_windows(sorted: &[Instant], origin: Instant, window: Duration) -> usize {
    let mut per: std::collections::BTreeMap<u128, usize> = std::collections::BTreeMap::new();
    for t in sorted {
        *per.entry(t.saturating_duration_since(origin).as_nanos() / window.as_nanos().max(1)).or_default() += 1;
    }
    per.into_values().max().unwrap_or(0)
}

/// Groups calls into sequential rounds: a call that arrives at least `0.8 × d` after the first
/// call of the current round starts a new one (with the fakes adding `d` to every request, a
/// call that depends on an earlier answer cannot arrive sooner). Returns the rounds.
pub fn rounds(calls: &[LoggedCall], d: Duration) -> Vec<Vec<LoggedCall>> {
    let mut out: Vec<Vec<LoggedCall>> = Vec::new();
    for c in calls {
        let new_round = match out.last().and_then(|r| r.first()) {
            None => true,
            Some(first) => c.at.duration_since(first.at) >= d.mul_f64(0.8),
        };
        if new_round {
            out.push(vec![c.clone()]);
        } else if let Some(r) = out.last_mut() {
            r.push(c.clone());
        }
    }
    out
}

/// Median of `v` (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Milliseconds as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_window() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let t0 = Instant::now();
        let at: Vec<Instant> = [0u64, 1, 2, 10, 11, 25].iter().map(|s| t0 + Duration::from_secs(*s)).collect();
        assert_eq!(max_in_window(&at, Duration::from_secs(10)), 3);
        assert_eq!(max_in_window(&at, Duration::from_secs(11)), 4);
    }

    #[test]
    fn responses_plain_and_chunked() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), Some((200, "ok".into())));
        let chunked = b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((502, "abcde".into())));
    }
}
