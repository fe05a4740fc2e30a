//! Logs an operator can query (contract §2: `RUST_LOG`, `PAT_LOG_FORMAT`), through the real
//! binary: a plain `RUST_LOG` level keeps the Azure SDK, HTTP and server crates quiet, and in
//! JSON mode every line of `rotate` and of `serve` is one object with the contract's keys, the
//! rotation target's name in `target` and the invocation id on every line of an invocation.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// INFO lines of the SDK and server crates that a rotation or a `serve` start produces when
/// they are let through (checked below with a full directive string).
const SDK_INFO: &[&str] = &[
    "ManagedIdentityCredential will use", // azure_identity
    "starting 2 workers",                 // actix_server
    "runtime found; starting in",         // actix_server
    "SIGTERM received",                   // actix_server
    "starting service:",                  // actix_server
    "accept thread stopped",              // actix_server
];
/// DEBUG lines of the Azure SDK's HTTP pipeline.
const SDK_DEBUG: &[&str] = &["==> Request:", "<== Response:", "creating an http client using `reqwest`"];

const KEYS: &[&str] =
    &["timestamp", "level", "message", "target", "action", "reason", "code", "token_id_prefix", "invocation_id"];

const TIMER_ID: &str = "7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11";
const PROVISION_ID: &str = "1c7e5b2a-3f4d-4e6a-9b8c-7d6e5f4a3b2c";

fn due_world() -> World {
    let w = World::one_target(&[]);
    w.seed_managed(0, 0, "t", 80 * DAY, 90 * DAY, None);
    w
}

#[test]
fn a_plain_level_keeps_sdk_http_and_server_crates_at_warn() {
    let w = due_world();
    for level in ["info", "debug"] {
        let o = w.cli(&["rotate", "--force"], &[("RUST_LOG", level)]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        for marker in SDK_INFO.iter().chain(SDK_DEBUG) {
            assert!(!o.stderr.contains(marker), "RUST_LOG={level} let {marker:?} through:\n{}", o.stderr);
        }
        assert!(o.stderr.contains("secret written"), "pat-rotator's own lines still come: {}", o.stderr);
    }
    // debug reaches pat-rotator's own debug lines.
    let o = w.cli(&["status"], &[("RUST_LOG", "debug")]);
    assert!(o.stderr.contains("databricks call"), "{}", o.stderr);

    let h = w.serve(&[("RUST_LOG", "info")]);
    assert_eq!(h.invoke_timer(true).status, 200);
    assert_eq!(h.provision(json!({"target": "t", "force": true})).status, 200);
    let log = h.log();
    h.stop();
    for marker in SDK_INFO {
        assert!(!log.contains(marker), "serve with RUST_LOG=info let {marker:?} through:\n{log}");
    }

    // The same lines are there when asked for by a full directive string, which is taken as
    // given: so the checks above can fail.
    let o = w.cli(&["rotate", "--force"], &[("RUST_LOG", "info,azure_identity=info,typespec_client_core=debug")]);
    assert!(o.stderr.contains(SDK_INFO[0]), "{}", o.stderr);
    assert!(SDK_DEBUG.iter().any(|m| o.stderr.contains(m)), "{}", o.stderr);
    let h = w.serve(&[("RUST_LOG", "info,actix_server=info")]);
    assert!(eventually(Duration::from_secs(5), || h.log().contains(SDK_INFO[1])), "{}", h.log());
}

/// Parses every line as one JSON object with the contract's keys; returns them.
fn json_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not one JSON object ({e}): {l}"));
            let o = v.as_object().unwrap_or_else(|| panic!("{what}: not an object: {l}"));
            for k in o.keys() {
                assert!(KEYS.contains(&k.as_str()), "{what}: key {k:?} is not the contract's: {l}");
            }
            for k in &KEYS[..3] {
                assert!(o.get(*k).is_some_and(Value::is_string), "{what}: no {k}: {l}");
            }
            for (k, val) in o {
                assert!(val.is_string(), "{what}: {k} is not a string: {l}");
            }
            let ts = o["timestamp"].as_str().unwrap();
            let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{what}: timestamp {ts} is not RFC 3339 ({e})"));
            assert!(ts.ends_with('Z') && t.offset().is_utc(), "{what}: not UTC: {ts}");
            assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&o["level"].as_str().unwrap()), "{l}");
            v
        })
        .collect()
}

#[test]
fn rotate_logs_one_json_object_per_line() {
    let w = due_world();
    let o = w.cli(&["rotate", "--json"], &[("PAT_LOG_FORMAT", "json"), ("RUST_LOG", "debug")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.json().is_array(), "stdout is still the result document");
    let lines = json_lines(&o.stderr, "rotate stderr");
    assert!(lines.len() >= 3, "{}", o.stderr);
    let targets: Vec<&str> = lines.iter().filter_map(|l| l["target"].as_str()).collect();
    assert!(!targets.is_empty(), "no line names the target: {}", o.stderr);
    assert!(targets.iter().all(|t| *t == "t"), "target is the rotation target's name: {targets:?}");
    let written = lines.iter().find(|l| l["message"] == "secret written").expect("the write line");
    assert_eq!((written["target"].as_str(), written["reason"].as_str()), (Some("t"), Some("expiring")));
    assert!(written["token_id_prefix"].as_str().is_some_and(|p| !p.is_empty()), "{written}");
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "RUST_LOG=debug reaches the JSON layer too");
    // Fields outside the contract's set are folded into the message.
    let call =
        lines.iter().find(|l| l["message"].as_str().unwrap().starts_with("databricks call")).expect("debug line");
    assert!(call["message"].as_str().unwrap().contains(" status=200"), "{call}");
}

/// `pat-rotator serve` with its stdout and stderr captured apart, driven over plain HTTP/1.1.
struct Serve {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(w: &World, extra: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut env = w.env(extra);
        env.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string()));
        let mut child = Command::new(bin())
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let (stdout, stderr) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        for (stream, sink) in [
            (Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, stdout.clone()),
            (Box::new(child.stderr.take().unwrap()), stderr.clone()),
        ] {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let s = Serve { child, port, stdout, stderr };
        assert!(
            eventually(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "serve did not start"
        );
        s
    }

    /// One request; (status, body).
    fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    fn lines(&self) -> usize {
        self.stdout.lock().unwrap().len() + self.stderr.lock().unwrap().len()
    }

    /// Waits until no new line arrived for a while (the lines of the last request are in).
    fn settle(&self) {
        let mut last = (self.lines(), Instant::now());
        let start = Instant::now();
        while last.1.elapsed() < Duration::from_millis(400) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
            if self.lines() != last.0 {
                last = (self.lines(), Instant::now());
            }
        }
    }

    /// (stdout, stderr) line counts, to take the lines of what follows.
    fn mark(&self) -> (usize, usize) {
        self.settle();
        (self.stdout.lock().unwrap().len(), self.stderr.lock().unwrap().len())
    }

    /// Lines since `mark`, parsed, each with the stream it came on.
    fn since(&self, mark: (usize, usize), w: &World) -> Vec<(&'static str, Value)> {
        self.settle();
        let mut out = Vec::new();
        for (name, lines, from) in [("stdout", &self.stdout, mark.0), ("stderr", &self.stderr, mark.1)] {
            let text = lines.lock().unwrap()[from..].join("\n");
            w.record(&text);
            out.extend(json_lines(&text, name).into_iter().map(|v| (name, v)));
        }
        out
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each line on the stream the host maps to its level: INFO and below on stdout, WARN and
/// ERROR on stderr.
fn assert_streams(lines: &[(&str, Value)]) {
    for (stream, l) in lines {
        let level = l["level"].as_str().unwrap();
        let want = if level == "WARN" || level == "ERROR" { "stderr" } else { "stdout" };
        assert_eq!(*stream, want, "{l}");
    }
}

#[test]
fn serve_logs_json_lines_that_carry_the_invocation_id() {
    let w = due_world();
    // No force cooldown: the forced ProvisionPat below follows the timer's rotation at once.
    let s = Serve::start(&w, &[("PAT_LOG_FORMAT", "json"), ("PAT_FORCE_COOLDOWN_MINUTES", "0")]);
    let start = s.mark();

    // RotatePat, as the host sends it.
    let timer = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"RotatePat","UtcNow":"2026-11-26T03:00:00Z"}}}"#;
    let (status, _) = s.post("/RotatePat", &[("X-Azure-Functions-InvocationId", TIMER_ID)], timer);
    assert_eq!(status, 200);
    let rotate = s.since(start, &w);
    assert!(rotate.iter().any(|(_, l)| l["message"].as_str().unwrap().starts_with("RotatePat invoked")), "{rotate:?}");
    assert!(rotate.iter().any(|(_, l)| l["message"] == "secret written" && l["target"] == "t"), "{rotate:?}");
    for (_, l) in &rotate {
        if l["message"].as_str().unwrap().contains("listening") {
            continue; // the start-up line, before any invocation
        }
        assert_eq!(l["invocation_id"], TIMER_ID, "a RotatePat line without its invocation id: {l}");
        assert!(l.get("target").is_none_or(|t| t == "t"), "{l}");
    }
    assert_streams(&rotate);

    // ProvisionPat, forwarded: a success and a failure (stderr), each with the host's id.
    let m = s.mark();
    let ok = r#"{"target":"t","force":true}"#;
    let (status, body) = s.post("/api/ProvisionPat", &[("X-Azure-Functions-InvocationId", PROVISION_ID)], ok);
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        s.post("/api/ProvisionPat", &[("X-Azure-Functions-InvocationId", PROVISION_ID)], r#"{"target":"nope"}"#);
    assert_eq!(status, 404, "{body}");
    let provision = s.since(m, &w);
    assert!(provision.iter().any(|(_, l)| l["message"] == "secret written" && l["target"] == "t"), "{provision:?}");
    let answered = provision
        .iter()
        .find(|(_, l)| l["message"].as_str().unwrap().starts_with("ProvisionPat answered 404"))
        .expect("the 404 is logged");
    assert_eq!((answered.0, answered.1["code"].as_str()), ("stderr", Some("unknown_target")));
    for (_, l) in &provision {
        assert_eq!(l["invocation_id"], PROVISION_ID, "a ProvisionPat line without its invocation id: {l}");
    }
    assert_streams(&provision);

    // Without the header (a direct call) a fresh UUID stands in, the same in body and log.
    let m = s.mark();
    let (status, body) = s.post("/api/ProvisionPat", &[], r#"{"target":"nope"}"#);
    assert_eq!(status, 404);
    let id = serde_json::from_str::<Value>(&body).unwrap()["error"]["invocation_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let lines = s.since(m, &w);
    assert!(!lines.is_empty() && lines.iter().all(|(_, l)| l["invocation_id"] == id.as_str()), "{lines:?}");

    // A caller who sends the header too arrives first; the host's value is the last one.
    let m = s.mark();
    let (_, body) =
        s.post("/api/ProvisionPat", &[("X-Azure-Functions-InvocationId", "caller-says, host-assigned-1")], "{}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["invocation_id"], "host-assigned-1");
    let (_, body) = s.post(
        "/api/ProvisionPat",
        &[("X-Azure-Functions-InvocationId", "caller-says"), ("X-Azure-Functions-InvocationId", "host-assigned-2")],
        "{}",
    );
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["invocation_id"], "host-assigned-2");
    s.since(m, &w);
}
