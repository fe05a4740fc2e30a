//! No secret in any log, error, response or panic — at the most verbose log level, for every
//! credential kind, on success and failure paths. The search is for the actual values the
//! emulators issued (PATs, Entra ID tokens, the identity header, the client secret); the same
//! check also runs at the end of every other integration test (see `common::World`'s drop).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

const TRACE: (&str, &str) = ("RUST_LOG", "trace");

fn world() -> World {
    World::one_target(&[("revoke_grace_hours", json!(0))])
}

fn exercise(w: &World, env: &[(&str, &str)]) {
    let (code, r) = w.rotate(&[], env);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["action"], "created");
    let (code, r) = w.rotate(&["--force"], env);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(r[0]["revoked_token_ids"].as_array().unwrap().len(), 1);
    assert_eq!(w.cli(&["status"], env).code, 0);
    // A failure path: the vault write refused.
    w.emu.vault(0).faults().inject("set", Fault::status(403).json(json!({"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}})), usize::MAX);
    let (code, _) = w.rotate(&["--force"], env);
    assert_eq!(code, 1);
    w.emu.vault(0).faults().clear();
    w.assert_secret_works(0, 0, "t-pat");
    w.assert_no_secrets();
}

#[test]
fn managed_identity_at_trace_level() {
    let w = world();
    exercise(&w, &[TRACE, ("PAT_CREDENTIAL", "managed_identity")]);
    // And the handler, with a failing and a succeeding invocation.
    let h = w.serve(&[TRACE]);
    assert_eq!(h.provision(json!({"target": "t", "force": true})).status, 200);
    w.emu.workspace(0).faults().inject("create", Fault::after_effect(500), 1);
    assert_eq!(h.provision(json!({"target": "t", "force": true})).status, 200);
    assert_eq!(h.invoke_timer(true).status, 200);
    assert!(h.log().contains("TRACE") || h.log().contains("DEBUG"), "trace logging was on");
    drop(h);
    w.assert_no_secrets();
}

#[test]
fn client_secret_credential() {
    let w = world();
    let object_id = w.emu.aad().add_service_principal("ci-app", CLIENT_SECRET);
    w.emu.workspace(0).add_member(&object_id);
    let env = [
        TRACE,
        ("PAT_CREDENTIAL", "auto"),
        ("IDENTITY_ENDPOINT", ""),
        ("IDENTITY_HEADER", ""),
        ("AZURE_CLIENT_ID", "ci-app"),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let o = w.cli(&["check-config", "--json"], &env);
    assert_eq!(o.json()["settings"]["credential"], "client_secret", "auto picks the client secret");
    exercise(&w, &env);
    // The tokens really belong to the service principal.
    let ws = w.emu.workspace(0);
    assert_eq!(ws.tokens(&object_id).len(), 1);
    assert!(ws.tokens(ws.principal()).is_empty());
    // A wrong secret is identity_unavailable and says so without echoing it.
    let (code, r) = w.rotate(
        &["--force"],
        &[
            TRACE,
            ("IDENTITY_ENDPOINT", ""),
            ("AZURE_CLIENT_ID", "ci-app"),
            ("AZURE_CLIENT_SECRET", "wrong-secret-value-123"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(r[0]["error"]["code"], "identity_unavailable");
    assert!(!r[0]["error"]["message"].as_str().unwrap().contains("wrong-secret-value-123"));
}

#[test]
fn azure_cli_credential_through_a_fake_az() {
    let w = world();
    // A stand-in for `az account get-access-token -o json --scope S`: it fetches a real token
    // from the managed-identity emulator and prints it the way az >= 2.54 does.
    let dir = w.emu.dir().join("fake-az");
    std::fs::create_dir_all(&dir).unwrap();
    let az = dir.join("az");
    std::fs::write(
        &az,
        r#"#!/usr/bin/env bash
set -euo pipefail
scope=""
while [[ $# -gt 0 ]]; do case "$1" in --scope) scope="$2"; shift 2;; *) shift;; esac; done
resource="${scope%/.default}"
python3 - "$resource" <<'PY'
import json, os, sys, urllib.parse, urllib.request, ssl
q = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": sys.argv[1]})
req = urllib.request.Request(os.environ["FAKE_AZ_IDENTITY_ENDPOINT"] + "?" + q, headers={"X-IDENTITY-HEADER": os.environ["FAKE_AZ_IDENTITY_HEADER"]})
t = json.load(urllib.request.urlopen(req))
print(json.dumps({"accessToken": t["access_token"], "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": int(t["expires_on"]),
                  "subscription": "00000000-0000-0000-0000-000000000000", "tenant": "t", "tokenType": "Bearer"}))
PY
"#,
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let endpoint = w.emu.identity().endpoint().to_string();
    let header = w.emu.identity().header_value().to_string();
    let env = [
        TRACE,
        ("PATH", path.as_str()),
        ("IDENTITY_ENDPOINT", ""),
        ("IDENTITY_HEADER", ""),
        ("FAKE_AZ_IDENTITY_ENDPOINT", endpoint.as_str()),
        ("FAKE_AZ_IDENTITY_HEADER", header.as_str()),
    ];
    let o = w.cli(&["check-config", "--json"], &env);
    assert_eq!(o.json()["settings"]["credential"], "azure_cli", "auto falls back to the Azure CLI");
    exercise(&w, &env);
}

#[test]
fn workload_identity_credential() {
    let w = world();
    let object_id = w.emu.aad().add_service_principal("wi-app", CLIENT_SECRET);
    w.emu.workspace(0).add_member(&object_id);
    // The AAD emulator accepts a client assertion equal to the registered secret.
    let file = w.emu.dir().join("federated-token");
    std::fs::write(&file, CLIENT_SECRET).unwrap();
    let file = file.display().to_string();
    let env = [
        TRACE,
        ("IDENTITY_ENDPOINT", ""),
        ("IDENTITY_HEADER", ""),
        ("AZURE_CLIENT_ID", "wi-app"),
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
    ];
    let o = w.cli(&["check-config", "--json"], &env);
    assert_eq!(o.json()["settings"]["credential"], "workload_identity");
    exercise(&w, &env);
    assert_eq!(w.emu.workspace(0).tokens(&object_id).len(), 1);
}

#[test]
fn identity_endpoint_without_its_header_is_refused_before_any_call() {
    let w = world();
    let o = w.cli(&["rotate", "--json"], &[("IDENTITY_HEADER", "")]);
    assert_eq!(o.code, 2, "a configuration error: {}", o.stderr);
    assert!(o.stderr.contains("IDENTITY_HEADER: is required when IDENTITY_ENDPOINT is set"), "{}", o.stderr);
    assert_eq!(w.emu.identity().faults().calls().len(), 0);
}
