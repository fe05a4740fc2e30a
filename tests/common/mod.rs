//! Test harness: the emulators, the real `pat-rotator` binary (as CLI or as a custom handler
//! driven by a Functions host simulator), and a leak check over everything captured.
//!
//! Every `World` records every byte the program printed and every response body it sent;
//! dropping the `World` (at the end of a passing test) asserts that none of it contains a
//! secret the emulators issued: a PAT value, an Entra ID token, the identity header, a client
//! secret. So the redaction check covers the whole suite, not one test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pat_rotator_emulators::{EmulatorOptions, Emulators};
use serde_json::{Value, json};

#[allow(unused_imports)]
pub use pat_rotator_emulators::{Fault, identity, keyvault::Role};

pub mod azurite;

/// The binary under test: the one cargo built, or `PAT_ROTATOR_BIN` (to run today's tests
/// against an older build and watch them fail).
pub fn bin() -> String {
    std::env::var("PAT_ROTATOR_BIN")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_pat-rotator").into())
}
pub const CLIENT_SECRET: &str = "test-client-secret-Zq8v";

pub struct World {
    pub emu: Emulators,
    captured: Arc<Mutex<Vec<String>>>,
    /// Extra settings every process of this world gets.
    pub settings: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl World {
    pub fn new() -> World {
        World::with(EmulatorOptions::default())
    }

    pub fn with(opts: EmulatorOptions) -> World {
        World { emu: Emulators::start(opts), captured: Arc::new(Mutex::new(Vec::new())), settings: Vec::new() }
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.settings.retain(|(key, _)| key != k);
        self.settings.push((k.to_string(), v.to_string()));
        self
    }

    /// A target object for `PAT_TARGETS` on workspace `ws` and vault `kv`.
    pub fn target(&self, name: &str, ws: usize, kv: usize) -> Value {
        json!({
            "name": name,
            "workspace_url": self.emu.workspace(ws).url(),
            "key_vault_url": self.emu.vault(kv).url(),
            "secret_name": format!("{name}-pat"),
        })
    }

    /// A world with one target `t` (secret `t-pat`) on workspace 0 and vault 0, with the
    /// given fields of the target object overridden.
    pub fn one_target(fields: &[(&str, Value)]) -> World {
        let mut w = World::new();
        let mut t = w.target("t", 0, 0);
        for (k, v) in fields {
            t[*k] = v.clone();
        }
        w.targets(&[t]);
        w
    }

    pub fn targets(&mut self, targets: &[Value]) -> &mut Self {
        let s = serde_json::to_string(targets).unwrap();
        self.set("PAT_TARGETS", &s)
    }

    /// The environment of a program process: the emulators, fast retries, then the world's
    /// settings, then `extra`. Nothing is inherited from the test process except PATH.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())),
            ("RUST_LOG".into(), "info".into()),
            ("PAT_RETRY_BASE_DELAY_MS".into(), "20".into()),
            ("PAT_CALL_TIMEOUT_SECONDS".into(), "5".into()),
        ];
        env.extend(self.emu.env());
        env.extend(self.settings.iter().cloned());
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    pub fn record(&self, text: &str) {
        self.captured.lock().unwrap().push(text.to_string());
    }

    /// Forgets what was captured (for the harness's own tests, which plant a secret on purpose
    /// and must still let the world stop cleanly).
    pub fn discard_captured(&self) {
        self.captured.lock().unwrap().clear();
    }

    /// Runs `pat-rotator ARGS` to completion.
    pub fn cli(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.cli_at(None, args, extra)
    }

    /// [`World::cli`] with `dir` as the working directory (a relative `PAT_TARGETS_FILE`).
    pub fn cli_at(&self, dir: Option<&std::path::Path>, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin());
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let out =
            cmd.args(args).env_clear().envs(self.env(extra)).stdin(Stdio::null()).output().expect("run pat-rotator");
        let o = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        };
        self.record(&o.stdout);
        self.record(&o.stderr);
        o
    }

    /// `rotate --json` for the given extra args, returning the result array.
    pub fn rotate(&self, args: &[&str], extra: &[(&str, &str)]) -> (i32, Vec<Value>) {
        let mut a = vec!["rotate", "--json"];
        a.extend_from_slice(args);
        let o = self.cli(&a, extra);
        let v = o.json();
        let arr = v.as_array().cloned().unwrap_or_else(|| panic!("not an array: {v}\nstderr: {}", o.stderr));
        (o.code, arr)
    }

    /// Starts `pat-rotator serve` as the Functions host does and waits for `GET /`.
    pub fn serve(&self, extra: &[(&str, &str)]) -> Handler {
        self.serve_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), extra)
    }

    /// Like [`World::serve`], with `dir` as the handler's working directory (where the host
    /// starts it, next to host.json).
    pub fn serve_in(&self, dir: &std::path::Path, extra: &[(&str, &str)]) -> Handler {
        let port = free_port();
        let port_s = port.to_string();
        let mut env = self.env(extra);
        env.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port_s));
        env.push(("FUNCTIONS_CUSTOMHANDLER_WORKER_ID".into(), "0d9e7a34-9c8b-4b53-9d10-5b3f0c2a1e77".into()));
        let started = Instant::now();
        let mut child = Command::new(bin())
            .arg("serve")
            .current_dir(dir)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pat-rotator serve");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, captured) = (log.clone(), self.captured.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    captured.lock().unwrap().push(line);
                }
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = rt.block_on(async {
            while started.elapsed() < Duration::from_secs(20) {
                if client.get(format!("{base}/")).send().await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        });
        let h =
            Handler { child, base, rt, client, log, captured: self.captured.clone(), ready_after: started.elapsed() };
        assert!(ready, "handler never answered GET /; log:\n{}", h.log());
        h
    }

    /// Every secret the emulators have issued so far.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = self.emu.identity().issued_tokens();
        s.extend(self.emu.aad().issued_tokens());
        s.push(self.emu.identity().header_value().to_string());
        s.push(CLIENT_SECRET.to_string());
        for w in self.emu.workspaces() {
            s.extend(w.issued_values());
        }
        s.retain(|v| v.len() >= 8);
        s
    }

    /// Asserts that no captured output or response contains any issued secret.
    pub fn assert_no_secrets(&self) {
        let secrets = self.secrets();
        // Found under the lock, reported after it (a panic must not poison the capture).
        let leak = self.captured.lock().unwrap().iter().find_map(|text| {
            secrets.iter().find(|s| text.contains(s.as_str())).map(|s| text.replace(s.as_str(), "<SECRET>"))
        });
        if let Some(shown) = leak {
            panic!("a secret leaked into captured output: {shown}");
        }
    }

    pub fn captured_len(&self) -> usize {
        self.captured.lock().unwrap().len()
    }

    /// Total calls the emulators received.
    pub fn upstream_calls(&self) -> usize {
        self.emu.all_faults().iter().map(|f| f.calls().len()).sum()
    }

    pub fn reset_calls(&self) {
        for f in self.emu.all_faults() {
            f.reset_calls();
        }
    }

    /// Registers app `client_id` trusting the service's (system-assigned) managed identity
    /// through a federated identity credential, and makes its service principal a member of
    /// workspace `ws`. Returns the service principal's object id.
    pub fn federated_app(&self, client_id: &str, ws: usize) -> String {
        let oid = self.emu.aad().trust_managed_identity(client_id, self.emu.identity().principal());
        self.emu.workspace(ws).add_member(&oid);
        oid
    }

    /// `principal`'s live tokens in workspace `ws` (ids), sorted.
    pub fn live_tokens_of(&self, ws: usize, principal: &str) -> Vec<String> {
        let mut v: Vec<String> = self.emu.workspace(ws).tokens(principal).into_iter().map(|t| t.token_id).collect();
        v.sort();
        v
    }

    /// The principals that wrote (successfully set) a secret in vault `kv`.
    pub fn vault_writers(&self, kv: usize) -> Vec<String> {
        self.emu
            .vault(kv)
            .faults()
            .calls()
            .iter()
            .filter(|c| c.op == "set" && c.status == 200)
            .map(|c| c.principal.clone().unwrap_or_default())
            .collect()
    }

    /// The identity's live tokens in workspace `ws` (ids), sorted.
    pub fn live_tokens(&self, ws: usize) -> Vec<String> {
        let w = self.emu.workspace(ws);
        let mut v: Vec<String> = w.tokens(w.principal()).into_iter().map(|t| t.token_id).collect();
        v.sort();
        v
    }

    /// Checks that the latest version of `secret` in vault `kv` holds a PAT that workspace `ws`
    /// accepts, tagged with its id; returns the token id.
    pub fn assert_secret_works(&self, kv: usize, ws: usize, secret: &str) -> String {
        let v = self.emu.vault(kv).latest(secret).unwrap_or_else(|| panic!("no secret {secret}"));
        let id = v.tags.get("databricks-token-id").cloned().expect("token id tag");
        assert!(self.emu.workspace(ws).authenticate_pat(&v.value), "the secret's token does not authenticate");
        let t = self.emu.workspace(ws).token(&id).expect("token in workspace");
        let stored_value_matches = self.emu.workspace(ws).tokens(&t.principal).iter().any(|x| x.token_id == id);
        assert!(stored_value_matches, "token {id} is not live");
        id
    }

    /// The comment pat-rotator gives a token of `target` whose secret is `{target}-pat` in vault
    /// `kv` (contract §6: target, secret key, attempt).
    pub fn comment(&self, target: &str, kv: usize, attempt: &str) -> String {
        let key = pat_rotator::databricks::pat::secret_key(self.emu.vault(kv).url(), &format!("{target}-pat"));
        pat_rotator::databricks::pat::comment(target, &key, attempt)
    }

    /// Seeds a token of `target` in workspace `ws` owned by the identity.
    pub fn seed_token(&self, ws: usize, comment: &str, age: Duration, lifetime: Duration) -> (String, String) {
        let w = self.emu.workspace(ws);
        w.seed_token(w.principal(), comment, SystemTime::now() - age, Some(lifetime))
    }

    /// Seeds a managed secret naming a seeded token, as pat-rotator would have written it.
    pub fn seed_managed(
        &self,
        kv: usize,
        ws: usize,
        target: &str,
        age: Duration,
        lifetime: Duration,
        previous: Option<&str>,
    ) -> String {
        let (id, value) = self.seed_token(ws, &self.comment(target, kv, "seeded"), age, lifetime);
        let created = time::OffsetDateTime::now_utc() - age;
        let expires = created + lifetime;
        let fmt = |t: time::OffsetDateTime| {
            t.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
        };
        let mut tags = vec![
            ("managed-by", "pat-rotator".to_string()),
            ("target", target.to_string()),
            ("databricks-host", "127.0.0.1".to_string()),
            ("databricks-token-id", id.clone()),
            ("token-expires-at", fmt(expires)),
            ("rotated-at", fmt(created)),
        ];
        if let Some(p) = previous {
            tags.push(("previous-token-id", p.to_string()));
        }
        let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let name = format!("{target}-pat");
        self.emu.vault(kv).seed_secret(
            &name,
            &value,
            Some("databricks-pat"),
            &tag_refs,
            Some(expires.unix_timestamp()),
        );
        // Written when the token was made.
        self.emu.vault(kv).age_latest_version(&name, age);
        id
    }

    /// Every token of workspace `ws` that was revoked while a version of `secret` in vault `kv`
    /// protected it (contract §7 step 4): named by the latest version at the time, or superseded
    /// less than `grace` before. Returns (token id, why) for each violation.
    pub fn revocations_inside_grace(
        &self,
        kv: usize,
        ws: usize,
        secret: &str,
        grace: Duration,
    ) -> Vec<(String, String)> {
        let versions = self.emu.vault(kv).versions(secret);
        let mut bad = Vec::new();
        for t in self.emu.workspace(ws).all_tokens() {
            let Some(at) = t.revoked_at else { continue };
            let at = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
            for (i, v) in versions.iter().enumerate() {
                if v.tags.get("databricks-token-id") != Some(&t.token_id) || v.created > at {
                    continue;
                }
                match versions.get(i + 1).filter(|next| next.created <= at) {
                    None => bad.push((t.token_id.clone(), "named by the latest version".to_string())),
                    Some(next) if at - next.created < grace.as_secs() as i64 => bad.push((
                        t.token_id.clone(),
                        format!("revoked {} s after its version was superseded", at - next.created),
                    )),
                    Some(_) => {}
                }
            }
        }
        bad
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_secrets();
        }
    }
}

pub struct Handler {
    child: Child,
    pub base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    log: Arc<Mutex<String>>,
    captured: Arc<Mutex<Vec<String>>>,
    pub ready_after: Duration,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl Handler {
    /// What the handler has logged so far. The reader threads drain its pipes on their own
    /// time (a loaded machine lets them trail the answer): this waits until the log has not
    /// grown for 50 ms, at most a second.
    pub fn log(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let mut seen = self.log.lock().unwrap().len();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.log.lock().unwrap().len();
            if now == seen || std::time::Instant::now() >= deadline {
                return self.log.lock().unwrap().clone();
            }
            seen = now;
        }
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = self.rt.block_on(async {
            let resp = req.send().await.expect("handler answered");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            Reply { status, headers, text }
        });
        self.captured.lock().unwrap().push(r.text.clone());
        r
    }

    /// The timer invocation exactly as the Functions host sends it.
    pub fn invoke_timer(&self, schedule_status_null: bool) -> Reply {
        let status = if schedule_status_null {
            Value::Null
        } else {
            json!({ "Last": "2026-11-25T03:00:00.0019837+00:00", "Next": "2026-11-26T03:00:00+00:00", "LastUpdated": "2026-11-25T03:00:00.0019837+00:00" })
        };
        let body = json!({
            "Data": { "timer": { "Schedule": { "AdjustForDST": true }, "ScheduleStatus": status, "IsPastDue": false } },
            "Metadata": { "sys": { "MethodName": "RotatePat", "UtcNow": "2026-11-26T03:00:00.0132177Z", "RandGuid": "4e773554-f6b7-4ea2-b07d-4c5fd5aba741" } }
        });
        self.send(
            self.client
                .post(format!("{}/RotatePat", self.base))
                .header("Content-Type", "application/json; charset=utf-8")
                .header("X-Azure-Functions-InvocationId", "7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11")
                .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
                .header("User-Agent", "Azure-Functions-Host/4.1037.0.0")
                .body(body.to_string()),
        )
    }

    /// A `SecretEvent` invocation exactly as the Functions host sends it for an Event Grid
    /// trigger with single dispatch: `Data.event` is `event` as given (an object, a string
    /// holding its JSON, or an array), `Metadata` the binding data (`data`: the event's data)
    /// and `sys`. Sources: `ScriptInvocationContextExtensions.ToHttpScriptInvocationContext`
    /// (Azure/azure-functions-host) and the Event Grid extension's
    /// `EventGridTriggerAttributeBindingProvider` / `EventGridExtensionConfigProvider`
    /// (Azure/azure-sdk-for-net); see `src/handler/event.rs`.
    pub fn invoke_event(&self, event: Value) -> Reply {
        self.send(self.event_request(event, "5d0c9e1a-7b3f-4c2d-9e8a-1f2b3c4d5e6f"))
    }

    fn event_request(&self, event: Value, invocation_id: &str) -> reqwest::RequestBuilder {
        let first = match &event {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
            other => other.clone(),
        };
        let body = json!({
            "Data": { "event": event },
            "Metadata": {
                "data": first.get("data").cloned().unwrap_or(Value::Null),
                "sys": { "MethodName": "SecretEvent", "UtcNow": "2026-11-26T03:00:00.0132177Z", "RandGuid": "0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f" }
            }
        });
        self.client
            .post(format!("{}/SecretEvent", self.base))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Azure-Functions-InvocationId", invocation_id)
            .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
            .header("User-Agent", "Azure-Functions-Host/4.1037.0.0")
            .body(body.to_string())
    }

    /// Several `SecretEvent` invocations at once (as several deliveries of Event Grid would
    /// arrive); the replies in the order given.
    pub fn invoke_events_concurrently(&self, events: Vec<Value>) -> Vec<Reply> {
        let reqs: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.event_request(e, &format!("00000000-0000-4000-8000-{i:012}")))
            .collect();
        let replies = self.rt.block_on(async {
            let mut out = Vec::new();
            for r in futures::future::join_all(reqs.into_iter().map(|r| r.send())).await {
                let resp = r.expect("answered");
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                out.push(Reply { status, headers, text: resp.text().await.unwrap_or_default() });
            }
            out
        });
        for r in &replies {
            self.captured.lock().unwrap().push(r.text.clone());
        }
        replies
    }

    /// A forwarded `ProvisionPat` request (enableForwardingHttpRequest): the caller's request
    /// as sent, with the function key in the query and the host's two headers added.
    pub fn provision_raw(&self, content_type: Option<&str>, body: Vec<u8>) -> Reply {
        let mut req = self
            .client
            .post(format!("{}/api/ProvisionPat?code=FUNCTION-KEY-must-not-leak", self.base))
            .header("X-Azure-Functions-InvocationId", "1c7e5b2a-3f4d-4e6a-9b8c-7d6e5f4a3b2c")
            .header("X-Azure-Functions-HostVersion", "4.1037.0.0")
            .header("x-functions-key", "FUNCTION-KEY-must-not-leak")
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let r = self.send(req);
        assert!(!r.text.contains("FUNCTION-KEY") && !self.log().contains("FUNCTION-KEY"), "function key leaked");
        r
    }

    pub fn provision(&self, body: Value) -> Reply {
        self.provision_raw(Some("application/json"), body.to_string().into_bytes())
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: String) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)).header("Content-Type", content_type).body(body))
    }

    /// Several concurrent forwarded ProvisionPat requests and one timer invocation.
    pub fn concurrently(&self, provisions: Vec<Value>, with_timer: bool) -> Vec<Reply> {
        let replies = self.rt.block_on(async {
            let mut futs = Vec::new();
            for body in provisions {
                let req = self
                    .client
                    .post(format!("{}/api/ProvisionPat", self.base))
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
                futs.push(Box::pin(async move { req.send().await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>);
            }
            if with_timer {
                let req = self
                    .client
                    .post(format!("{}/RotatePat", self.base))
                    .header("Content-Type", "application/json")
                    .body(r#"{"Data":{"timer":{"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}"#);
                futs.push(Box::pin(async move { req.send().await }));
            }
            let mut out = Vec::new();
            for r in futures::future::join_all(futs).await {
                let resp = r.expect("answered");
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                out.push(Reply { status, headers, text: resp.text().await.unwrap_or_default() });
            }
            out
        });
        for r in &replies {
            self.captured.lock().unwrap().push(r.text.clone());
        }
        replies
    }

    /// Stops the handler like the host does (SIGTERM) and waits for it.
    pub fn stop(mut self) -> i32 {
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return -1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Handler::stop`], and everything the handler logged (also what it logged while
    /// shutting down).
    pub fn stop_keeping_log(self) -> (i32, String) {
        let log = self.log.clone();
        let code = self.stop();
        // The reader threads drain the pipes after the exit: wait until the log stops growing.
        let mut len = usize::MAX;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
            let now = log.lock().unwrap().len();
            if now == len {
                break;
            }
            len = now;
        }
        let text = log.lock().unwrap().clone();
        (code, text)
    }

    /// SIGKILL, no cleanup.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `f` is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// KV `set` calls that actually wrote (not the SDK's bodiless 401 challenge).
pub fn kv_writes(w: &World, kv: usize) -> usize {
    w.emu.vault(kv).faults().calls().iter().filter(|c| c.op == "set" && c.status == 200).count()
}

pub fn ws_count(w: &World, ws: usize, op: &str) -> usize {
    w.emu.workspace(ws).faults().count(op)
}

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(86_400);
