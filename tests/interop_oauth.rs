//! Interop of the fake workspace's OAuth secrets with a client nobody here wrote: the official
//! Python `databricks-sdk` finds a service principal, creates, pages through and deletes its
//! OAuth secrets (`service_principal_secrets_proxy`), signs in with one (`oauth-m2m`, which
//! discovers the token endpoint) and calls `current_user.me()`; once the secret is deleted and
//! the minted token forced out, signing in fails. So the emulator pat-rotator is tested against
//! behaves like the workspace the SDK was written for.
//!
//! And end to end: pat-rotator provisions a §9 target; the official Key Vault client reads what
//! it wrote, and a `WorkspaceClient(auth_type="oauth-m2m")` signs in with that client id and
//! secret.
//!
//! Needs the virtualenv that `scripts/test.sh` creates (`PAT_ROTATOR_PYTHON`); without it (or
//! with `PAT_ROTATOR_SKIP_PYTHON=1` at build time) the tests are ignored, reported "skipped".

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const APP: &str = "0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb";

/// The interpreter of the interop venv. The tests that use it are ignored ("skipped") when the
/// build found none (see build.rs); under `CI=true` `interop_python_is_installed_in_ci` fails
/// instead.
fn python() -> String {
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-interop/bin/python");
    let p = std::env::var("PAT_ROTATOR_PYTHON").unwrap_or_else(|_| default.to_string());
    assert!(std::path::Path::new(&p).exists(), "{p} is missing: run scripts/setup-python.sh (or scripts/test.sh)");
    p
}

fn sha256_hex(s: &str) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
#[cfg_attr(
    not(has_interop_python),
    ignore = "skipped: no interop venv (scripts/setup-python.sh), or PAT_ROTATOR_SKIP_PYTHON=1"
)]
fn python_sdk_manages_secrets_and_signs_in_with_one() {
    let py = python();
    let w = World::new();
    let ws = w.emu.workspace(0);
    let sp = w.emu.add_oauth_service_principal(APP, "interop principal").remove(0);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/oauth_sp.py");
    let mut cmd = Command::new(py);
    cmd.arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // No ~/.databrickscfg or other user configuration can leak in.
        .env("HOME", w.emu.dir())
        .envs(w.emu.env())
        .env("REQUESTS_CA_BUNDLE", w.emu.ca_pem_path())
        .env("WORKSPACE_URL", ws.url())
        .env("SP_APP_ID", APP)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run python");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut read_phase = |child: &mut std::process::Child| -> Value {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        w.record(&line);
        if line.is_empty() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            w.record(&err);
            panic!("python ended early: {err}");
        }
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };

    // Phase 1: find, create two, list page by page, sign in with the first, delete it.
    let p1 = read_phase(&mut child);
    assert_eq!(p1["found"].as_array().unwrap().len(), 1, "{p1}");
    assert_eq!(p1["found"][0]["id"], sp.scim_id.as_str());
    assert_eq!(p1["found"][0]["application_id"], APP);
    assert_eq!(p1["found"][0]["display_name"], "interop principal");

    let created = p1["created"].as_array().unwrap();
    let issued: Vec<String> = ws.issued_sp_secrets().iter().map(|s| sha256_hex(s)).collect();
    let all = ws.all_sp_secrets();
    for (c, stored) in created.iter().zip(&all) {
        assert_eq!(c["id"], stored.id.as_str(), "the SDK parsed the ids the emulator issued");
        assert!(issued.contains(&c["secret_sha256"].as_str().unwrap().to_string()), "the SDK got the value");
        assert_eq!(c["status"], "ACTIVE");
        assert_eq!(c["has_secret_hash"], true);
        assert!(c["create_time"].as_str().unwrap().ends_with('Z') && c["expire_time"].as_str().unwrap().ends_with('Z'));
    }
    let first = created[0]["id"].as_str().unwrap().to_string();
    let second = created[1]["id"].as_str().unwrap().to_string();
    let listed: Vec<&str> = p1["listed"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(listed, vec![first.as_str(), second.as_str()], "paged with page_size=1, both found");
    assert!(ws.faults().count("sp_secret_list") >= 2, "more than one page");

    assert_eq!(p1["auth_type"], "oauth-m2m");
    assert_eq!(p1["me"]["id"], sp.scim_id.as_str(), "signed in as the service principal");
    assert_eq!(p1["me"]["user_name"], APP);
    let token_calls = ws.faults().calls().iter().filter(|c| c.op == "oidc_token" && c.status == 200).count();
    assert_eq!(token_calls, 1, "the SDK minted one access token");
    assert!(ws.faults().count("discovery") >= 2, "it discovered the token endpoint");

    assert_eq!(p1["after_delete"], serde_json::json!([second]));
    assert!(ws.sp_secret(&first).unwrap().deleted);
    assert_eq!(p1["me_after_delete"], sp.scim_id.as_str(), "the held token outlives the deleted secret");

    // Between the phases: the minted tokens are forced out (as an hour passing would).
    ws.expire_oauth_tokens();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();

    let p2 = read_phase(&mut child);
    assert_eq!(p2["old_client"]["type"], "PermissionDenied", "{p2}");
    assert!(p2["old_client"]["message"].as_str().unwrap().contains("Invalid access token"), "{p2}");
    let new_client = p2["new_client"]["message"].as_str().unwrap_or_default();
    assert!(new_client.contains("invalid_client"), "signing in with the deleted secret fails: {p2}");
    assert_eq!(p2["second_secret"]["ok"], sp.scim_id.as_str(), "the live secret still signs in: {p2}");

    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    w.record(&err);
    assert!(status.success(), "python failed: {err}");
    // Dropping the World checks that no secret or token appears in anything recorded.
}

#[test]
#[cfg_attr(
    not(has_interop_python),
    ignore = "skipped: no interop venv (scripts/setup-python.sh), or PAT_ROTATOR_SKIP_PYTHON=1"
)]
fn the_sdk_signs_in_with_the_secret_pat_rotator_wrote() {
    let py = python();
    let mut w = World::new();
    let sp = w.emu.add_oauth_service_principal(APP, "etl principal").remove(0);
    let mut t = w.target("etl", 0, 0);
    t["kind"] = serde_json::json!("sp_oauth_secret");
    t["service_principal"] = serde_json::json!(APP);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!((code, r[0]["action"].as_str()), (0, Some("created")), "{r:?}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_oauth_secret.py");
    let out = Command::new(py)
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", w.emu.dir())
        .envs(w.emu.env())
        .env("REQUESTS_CA_BUNDLE", w.emu.ca_pem_path())
        .env("VAULT_URL", w.emu.vault(0).url())
        .env("SECRET_NAME", "etl-pat")
        .env("WORKSPACE_URL", w.emu.workspace(0).url())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    w.record(&stdout);
    w.record(&stderr);
    assert!(out.status.success(), "python failed: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["content_type"], "databricks-oauth-secret", "{v}");
    assert_eq!(v["tags"]["databricks-client-id"], APP);
    assert_eq!(v["tags"]["databricks-secret-id"], r[0]["token_id"]);
    assert!(v["expires_on"].is_number(), "{v}");
    assert!(v.get("error").is_none(), "the SDK could not sign in: {v}");
    assert_eq!(v["auth_type"], "oauth-m2m");
    assert_eq!(v["me"]["id"], sp.scim_id.as_str(), "signed in as the service principal: {v}");
    let issued: Vec<String> = w.emu.workspace(0).issued_sp_secrets().iter().map(|s| sha256_hex(s)).collect();
    assert!(issued.contains(&v["value_sha256"].as_str().unwrap().to_string()));
}

/// CI creates the venv (`scripts/test.sh`): there the interop tests must run, not be ignored.
#[test]
fn interop_python_is_installed_in_ci() {
    if std::env::var_os("CI").is_some() {
        let built_with_it = cfg!(has_interop_python);
        assert!(
            built_with_it,
            "the interop venv is required in CI (scripts/test.sh creates it); rebuild after creating it"
        );
    }
}
