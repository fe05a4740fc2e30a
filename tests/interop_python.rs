//! Interop with clients nobody here wrote: the official Python `azure-keyvault-secrets` (with
//! `azure-identity` against the managed-identity emulator) reads what pat-rotator wrote, and
//! `databricks-sdk` uses the PAT — and gets PermissionDenied once it is revoked.
//!
//! Needs the virtualenv that `scripts/test.sh` creates (`PAT_ROTATOR_PYTHON`); without it the
//! test fails and says how to get it, unless `PAT_ROTATOR_SKIP_PYTHON=1` is set.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// The interpreter of the interop venv. The tests that use it are ignored ("skipped") when the
/// build found none (see build.rs); under `CI=true` `interop_python_is_installed_in_ci` fails
/// instead.
fn python() -> String {
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-interop/bin/python");
    let p = std::env::var("PAT_ROTATOR_PYTHON").unwrap_or_else(|_| default.to_string());
    assert!(std::path::Path::new(&p).exists(), "{p} is missing: run scripts/setup-python.sh (or scripts/test.sh)");
    p
}

fn read_with_python(w: &World, py: &str, secret: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/read_secret.py");
    let mut cmd = Command::new(py);
    cmd.arg(script).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in w.emu.env() {
        cmd.env(k, v);
    }
    cmd.env("REQUESTS_CA_BUNDLE", w.emu.ca_pem_path())
        .env("VAULT_URL", w.emu.vault(0).url())
        .env("SECRET_NAME", secret)
        .env("WORKSPACE_URL", w.emu.workspace(0).url());
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    w.record(&stdout);
    w.record(&stderr);
    assert!(out.status.success(), "python failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"))
}

fn sha256_hex(s: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        });
    String::from_utf8_lossy(&out.unwrap().stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
#[cfg_attr(
    not(has_interop_python),
    ignore = "skipped: no interop venv (scripts/setup-python.sh), or PAT_ROTATOR_SKIP_PYTHON=1"
)]
fn python_clients_read_the_secret_and_use_the_pat() {
    let py = python();
    let mut w = World::new();
    let mut t = w.target("interop", 0, 0);
    t["revoke_grace_hours"] = json!(0);
    w.targets(&[t]);
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0, "{r:?}");
    let token_id = r[0]["token_id"].as_str().unwrap().to_string();

    let got = read_with_python(&w, &py, "interop-pat");
    let stored = w.emu.vault(0).latest("interop-pat").unwrap();
    assert_eq!(got["value_sha256"], sha256_hex(&stored.value), "Python read the value pat-rotator wrote");
    assert_eq!(got["version"], stored.version.as_str());
    assert_eq!(got["content_type"], "databricks-pat");
    assert_eq!(got["tags"]["managed-by"], "pat-rotator");
    assert_eq!(got["tags"]["databricks-token-id"], token_id.as_str());
    assert_eq!(got["tags"]["target"], "interop");
    assert_eq!(got["expires_on"], json!(stored.exp.unwrap()));
    assert_eq!(r[0]["expires_at"], got["tags"]["token-expires-at"]);
    assert_eq!(got["databricks"], "ok", "{got}");
    assert!(got["token_ids_seen"].as_array().unwrap().contains(&json!(token_id)));

    // Revoke it (a forced rotation with grace 0 revokes the superseded token); the old value,
    // still held by anyone who read it before, is refused.
    let old_value = stored.value.clone();
    let (_, r) = w.rotate(&["--force"], &[]);
    assert_eq!(r[0]["revoked_token_ids"], json!([token_id]));
    assert!(!w.emu.workspace(0).authenticate_pat(&old_value));
    // Python reads the new version and it works...
    let got = read_with_python(&w, &py, "interop-pat");
    assert_eq!(got["databricks"], "ok");
    // ...and a revoked token is refused with PermissionDenied, as the real SDK reports it.
    w.emu.workspace(0).revoke(r[0]["token_id"].as_str().unwrap());
    let got = read_with_python(&w, &py, "interop-pat");
    assert_eq!(got["databricks"], "PermissionDenied", "{got}");
    assert!(got["message"].as_str().unwrap().contains("Invalid access token"), "{got}");
}
