//! Bad input changes nothing: every invalid configuration field is exit 2 with a message that
//! names it, and every malformed ProvisionPat request in the corpus gets its 4xx with zero
//! upstream calls.

mod common;

use common::*;
use serde_json::{Value, json};

fn check(w: &World, env: &[(&str, &str)], needle: &str) {
    let o = w.cli(&["check-config"], env);
    assert_eq!(o.code, 2, "{env:?} should be invalid; stdout: {}", o.stdout);
    assert!(o.stderr.contains(needle), "{env:?}: expected {needle:?} in: {}", o.stderr);
    // rotate refuses the same configuration before any I/O.
    let r = w.cli(&["rotate"], env);
    assert_eq!(r.code, 2);
}

#[test]
fn every_invalid_target_field_is_named() {
    let w = World::new();
    let base = w.target("t", 0, 0);
    let with = |k: &str, v: Value| {
        let mut t = base.clone();
        if v.is_null() {
            t.as_object_mut().unwrap().remove(k);
        } else {
            t[k] = v;
        }
        json!([t]).to_string()
    };
    let with_all = |fields: &[(&str, Value)]| {
        let mut t = base.clone();
        for (k, v) in fields {
            t[*k] = v.clone();
        }
        json!([t]).to_string()
    };
    let sp = "11111111-2222-4333-8444-555555555555";
    let sp_target = |extra: &[(&str, Value)]| {
        let mut f = vec![("kind", json!("sp_oauth_secret")), ("service_principal", json!(sp))];
        f.extend_from_slice(extra);
        with_all(&f)
    };
    let long_secret = "a".repeat(128);
    let cases: Vec<(String, &str)> = vec![
        (with("name", json!("Bad_Name")), "targets[0].name: \"Bad_Name\""),
        (with("name", json!("-lead")), "targets[0].name"),
        (with("name", json!("a".repeat(64))), "targets[0].name"),
        (with("name", Value::Null), "targets[0].name: is required"),
        (with("name", json!(5)), "targets[0].name: must be a string"),
        (with("workspace_url", json!("http://adb-1.2.azuredatabricks.net")), "targets[0].workspace_url"),
        (with("workspace_url", json!("ftp://x")), "targets[0].workspace_url"),
        (with("workspace_url", json!("https://adb/path")), "targets[0].workspace_url"),
        (with("workspace_url", Value::Null), "targets[0].workspace_url: is required"),
        (
            with(
                "workspace_resource_id",
                json!("/subscriptions/1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/s"),
            ),
            "targets[0].workspace_resource_id",
        ),
        (with("key_vault_url", json!("http://127.0.0.1:9")), "targets[0].key_vault_url"),
        (with("key_vault_url", json!("not a url at all")), "targets[0].key_vault_url"),
        (with("key_vault_url", Value::Null), "targets[0].key_vault_url: is required"),
        (
            with("secret_name", json!("my_secret")),
            "targets[0].secret_name: \"my_secret\" is not a valid Key Vault secret name",
        ),
        (with("secret_name", json!(long_secret)), "targets[0].secret_name"),
        (with("secret_name", Value::Null), "targets[0].secret_name: is required"),
        (with("lifetime_days", json!(0)), "targets[0].lifetime_days: 0 is out of range"),
        (with("lifetime_days", json!(731)), "targets[0].lifetime_days: 731"),
        (with("lifetime_days", json!(1.5)), "targets[0].lifetime_days"),
        (with("lifetime_days", json!("ninety")), "targets[0].lifetime_days"),
        (with("renew_before_days", json!(0)), "targets[0].renew_before_days"),
        (
            with("renew_before_days", json!(90)),
            "targets[0].renew_before_days: 90 must be greater than 0 and less than lifetime_days (90)",
        ),
        (with("renew_before_days", json!(-1)), "targets[0].renew_before_days"),
        (with("revoke_grace_hours", json!(-1)), "targets[0].revoke_grace_hours"),
        (with("revoke_grace_hours", json!(721)), "targets[0].revoke_grace_hours: 721"),
        (with("scopes", json!(5)), "targets[0].scopes"),
        (with("scopes", json!(["sql", "bad scope"])), "targets[0].scopes: \"bad scope\""),
        (with("scopes", json!([1])), "targets[0].scopes"),
        (with("autoscope", json!("yes")), "targets[0].autoscope: \"yes\" must be true or false"),
        (with("autoscope", json!(1)), "targets[0].autoscope: must be a boolean"),
        (
            with("workspace_url", json!("https://adb-1.2.azuredatabricks.net.example.com")),
            "not an Azure Databricks workspace host",
        ),
        (with("workspace_url", json!("https://10.0.0.5")), "targets[0].workspace_url"),
        (with("lifetime", json!(30)), "targets[0]: unknown field \"lifetime\""),
        (with("kind", json!("oauth")), "targets[0].kind: \"oauth\" is not one of pat, sp_oauth_secret"),
        (with("kind", json!(1)), "targets[0].kind: must be a string"),
        (
            with("kind", json!("sp_oauth_secret")),
            "targets[0].service_principal: is required when kind is sp_oauth_secret",
        ),
        (with("service_principal", json!(sp)), "targets[0].service_principal: is not allowed when kind is pat"),
        (sp_target(&[("service_principal", json!("my-sp"))]), "targets[0].service_principal: \"my-sp\" is not a GUID"),
        (sp_target(&[("scopes", json!(["sql"]))]), "targets[0].scopes: is not allowed when kind is sp_oauth_secret"),
        (sp_target(&[("autoscope", json!(true))]), "targets[0].autoscope: is not allowed when kind is sp_oauth_secret"),
        (
            sp_target(&[("client_id", json!("0a1b2c3d-0000-4000-8000-00000000abcd"))]),
            "targets[0].client_id: is not allowed when kind is sp_oauth_secret",
        ),
        (sp_target(&[("lifetime_days", json!(731))]), "targets[0].lifetime_days: 731 is out of range (1..=730)"),
        (
            with("workspace_url", json!("https://u:pw@adb-1.2.azuredatabricks.net")),
            "targets[0].workspace_url: \"https://adb-1.2.azuredatabricks.net\" must not contain a user name or password",
        ),
        (
            with("key_vault_url", json!("https://127.0.0.1:1/?sig=x")),
            "targets[0].key_vault_url: \"https://127.0.0.1\" must not have a query",
        ),
        (
            with("key_vault_url", json!("https://127.0.0.1:1#x")),
            "targets[0].key_vault_url: \"https://127.0.0.1\" must not have a query",
        ),
        (json!([base.clone(), base.clone()]).to_string(), "targets[1].name: \"t\" is used by more than one target"),
        ("{not json".into(), "PAT_TARGETS: not valid JSON"),
        ("{}".into(), "PAT_TARGETS: must be a JSON array"),
        ("[]".into(), "PAT_TARGETS: the array is empty"),
        ("[1]".into(), "targets[0]: must be a JSON object"),
    ];
    for (targets, needle) in &cases {
        check(&w, &[("PAT_TARGETS", targets)], needle);
    }
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn every_invalid_flat_and_service_setting_is_named() {
    let w = World::new();
    let ws = w.emu.workspace(0).url().to_string();
    let kv = w.emu.vault(0).url().to_string();
    let ok: Vec<(&str, &str)> = vec![("DATABRICKS_HOST", &ws), ("KEY_VAULT_URL", &kv)];
    let plus = |extra: &[(&'static str, &'static str)]| {
        let mut v = ok.clone();
        v.extend_from_slice(extra);
        v
    };
    assert_eq!(w.cli(&["check-config"], &ok).code, 0);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("KEY_VAULT_URL", &kv)], "DATABRICKS_HOST: is required"),
        (vec![("DATABRICKS_HOST", &ws)], "KEY_VAULT_URL: is required"),
        (vec![], "no targets configured"),
        (vec![("DATABRICKS_HOST", &ws), ("KEY_VAULT_NAME", "1bad")], "KEY_VAULT_NAME: \"1bad\""),
        (plus(&[("PAT_SECRET_NAME", "my_secret")]), "PAT_SECRET_NAME: \"my_secret\""),
        (plus(&[("PAT_LIFETIME_DAYS", "x")]), "PAT_LIFETIME_DAYS: \"x\" is not an integer"),
        (plus(&[("PAT_LIFETIME_DAYS", "1000")]), "PAT_LIFETIME_DAYS: 1000"),
        (plus(&[("PAT_RENEW_BEFORE_DAYS", "95")]), "PAT_RENEW_BEFORE_DAYS: 95"),
        (plus(&[("PAT_REVOKE_GRACE_HOURS", "999")]), "PAT_REVOKE_GRACE_HOURS: 999"),
        (plus(&[("PAT_SCOPES", "sql,bad\u{7}scope")]), "PAT_SCOPES"),
        (plus(&[("PAT_AUTOSCOPE", "maybe")]), "PAT_AUTOSCOPE: \"maybe\" must be true or false"),
        (
            vec![("DATABRICKS_HOST", "https://example.com"), ("KEY_VAULT_URL", &kv)],
            "DATABRICKS_HOST: \"https://example.com\" is not an Azure Databricks workspace host",
        ),
        (plus(&[("PAT_HTTP_BUDGET_SECONDS", "231")]), "PAT_HTTP_BUDGET_SECONDS"),
        (plus(&[("AzureFunctionsJobHost__functionTimeout", "00:01:00")]), "PAT_TIMER_BUDGET_SECONDS: 540 s is beyond"),
        (plus(&[("PAT_CALL_TIMEOUT_SECONDS", "600"), ("PAT_RETRY_ATTEMPTS", "7")]), "orphan window"),
        (plus(&[("DATABRICKS_WORKSPACE_RESOURCE_ID", "/nope")]), "DATABRICKS_WORKSPACE_RESOURCE_ID"),
        (plus(&[("PAT_CREDENTIAL", "magic")]), "PAT_CREDENTIAL: \"magic\""),
        (
            plus(&[("PAT_CREDENTIAL", "client_secret"), ("AZURE_TENANT_ID", "t")]),
            "AZURE_CLIENT_ID: is required when PAT_CREDENTIAL is client_secret",
        ),
        (
            plus(&[("PAT_CREDENTIAL", "workload_identity"), ("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")]),
            "AZURE_FEDERATED_TOKEN_FILE: is required",
        ),
        (plus(&[("PAT_MAX_CONCURRENCY", "0")]), "PAT_MAX_CONCURRENCY"),
        (plus(&[("PAT_CALL_TIMEOUT_SECONDS", "-3")]), "PAT_CALL_TIMEOUT_SECONDS"),
        (plus(&[("AZURE_AUTHORITY_HOST", "http://login.example")]), "AZURE_AUTHORITY_HOST"),
        (plus(&[("PAT_KIND", "oauth")]), "PAT_KIND: \"oauth\" is not one of pat, sp_oauth_secret"),
        (
            plus(&[("PAT_KIND", "sp_oauth_secret")]),
            "PAT_SERVICE_PRINCIPAL: is required when PAT_KIND is sp_oauth_secret",
        ),
        (
            plus(&[("PAT_SERVICE_PRINCIPAL", "11111111-2222-4333-8444-555555555555")]),
            "PAT_SERVICE_PRINCIPAL: is not allowed when PAT_KIND is pat",
        ),
        (
            plus(&[
                ("PAT_KIND", "sp_oauth_secret"),
                ("PAT_SERVICE_PRINCIPAL", "11111111-2222-4333-8444-555555555555"),
                ("PAT_SCOPES", "sql"),
            ]),
            "PAT_SCOPES: is not allowed when PAT_KIND is sp_oauth_secret",
        ),
        (
            plus(&[("PAT_KIND", "sp_oauth_secret"), ("PAT_SERVICE_PRINCIPAL", "sp")]),
            "PAT_SERVICE_PRINCIPAL: \"sp\" is not a GUID",
        ),
        (
            plus(&[("PAT_FORCE_COOLDOWN_MINUTES", "1441")]),
            "PAT_FORCE_COOLDOWN_MINUTES: \"1441\" must be an integer in 0..=1440",
        ),
        (plus(&[("PAT_LOG_FORMAT", "xml")]), "PAT_LOG_FORMAT: \"xml\" is not one of text, json"),
        (
            vec![("DATABRICKS_HOST", &ws), ("KEY_VAULT_URL", "https://127.0.0.1:1/?sig=x")],
            "KEY_VAULT_URL: \"https://127.0.0.1\" must not have a query",
        ),
    ];
    for (env, needle) in &cases {
        let mut env = env.clone();
        // Clear the defaults the world would otherwise provide.
        for k in ["DATABRICKS_HOST", "KEY_VAULT_URL"] {
            if !env.iter().any(|(key, _)| *key == k) {
                env.push((k, ""));
            }
        }
        check(&w, &env, needle);
    }
    assert_eq!(w.upstream_calls(), 0);
}

/// Contract §2: a URL with userinfo, a query or a fragment is a configuration error that
/// shows only the scheme and host. Nothing the program prints or answers, in any command or
/// as the custom handler, carries the credential.
#[test]
fn url_credentials_are_never_echoed() {
    let w = World::new();
    let ws = w.emu.workspace(0).url().to_string();
    let kv = w.emu.vault(0).url().to_string();
    let secret = "Zq8vUrlS3cret";
    let with_secret = |url: &str, how: &str| {
        let (scheme, host) = url.split_once("://").unwrap();
        match how {
            "userinfo" => format!("{scheme}://admin:{secret}@{host}"),
            "query" => format!("{url}/?sig={secret}"),
            "fragment" => format!("{url}#{secret}"),
            // A password with a '#': no parser finds the host, so none is shown.
            _ => format!("{scheme}://admin:{secret}#x@{host}"),
        }
    };
    let mut envs: Vec<Vec<(&str, String)>> = Vec::new();
    for how in ["userinfo", "query", "fragment", "broken"] {
        envs.push(vec![("DATABRICKS_HOST", with_secret(&ws, how)), ("KEY_VAULT_URL", kv.clone())]);
        envs.push(vec![("DATABRICKS_HOST", ws.clone()), ("KEY_VAULT_URL", with_secret(&kv, how))]);
        let t = json!([{"name": "t", "workspace_url": with_secret(&ws, how), "key_vault_url": with_secret(&kv, how), "secret_name": "s"}]);
        envs.push(vec![("PAT_TARGETS", t.to_string())]);
    }
    for env in &envs {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for args in [&["check-config"][..], &["check-config", "--json"], &["rotate", "--json"], &["status", "--json"]] {
            let o = w.cli(args, &env);
            assert_eq!(o.code, 2, "{args:?} {env:?}: {}", o.stderr);
            assert!(
                !o.stdout.contains(secret) && !o.stderr.contains(secret),
                "{args:?} {env:?} leaked:\n{}{}",
                o.stdout,
                o.stderr
            );
            assert!(!o.stderr.contains("admin"), "{args:?} {env:?} leaked the user name: {}", o.stderr);
        }
    }
    // The handler: its log and every answer.
    let env: Vec<(&str, &str)> = envs[0].iter().map(|(k, v)| (*k, v.as_str())).collect();
    let h = w.serve(&env);
    let replies = [h.invoke_timer(false), h.provision(json!({"target": "default"})), h.get("/")];
    for r in &replies {
        assert!(!r.text.contains(secret), "answer leaked: {}", r.text);
    }
    assert_eq!(replies[0].status, 500);
    assert!(!h.log().contains(secret), "log leaked: {}", h.log());
    let o = w.cli(&["check-config"], &env);
    let host = ws.split_once("://").unwrap().1.split(':').next().unwrap();
    assert!(
        o.stderr.contains(&format!("DATABRICKS_HOST: \"http://{host}\" must not contain a user name or password")),
        "{}",
        o.stderr
    );
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn provision_corpus_gets_clear_4xx_and_no_upstream_call() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/provision");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut checked = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let want: u16 = name[..3].parse().expect("corpus file names start with the expected status");
        let body = std::fs::read(&path).unwrap();
        // Success cases only as a dry run: the corpus is about parsing.
        if want == 200 {
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["dry_run"] = json!(true);
            let r = h.provision(v);
            assert_eq!(r.status, 200, "{name}: {}", r.text);
            continue;
        }
        let r = h.provision_raw(Some("application/json; charset=utf-8"), body);
        assert_eq!(r.status, want, "{name}: {}", r.text);
        let v = r.json();
        let code = v["error"]["code"].as_str().unwrap_or_default();
        assert_eq!(code, if want == 404 { "unknown_target" } else { "invalid_request" }, "{name}");
        assert!(!v["error"]["message"].as_str().unwrap_or_default().is_empty(), "{name}: a message says what is wrong");
        assert!(r.text.len() < 1024, "{name}: the error does not echo a large body back");
        checked += 1;
    }
    assert!(checked >= 30, "corpus too small: {checked}");
    // Transport-level oddities.
    assert_eq!(h.provision_raw(Some("text/plain"), br#"{"target":"t"}"#.to_vec()).status, 415);
    assert_eq!(h.provision_raw(Some("multipart/form-data; boundary=x"), b"--x--".to_vec()).status, 415);
    assert_eq!(h.provision_raw(Some("application/json"), vec![b' '; 64 * 1024 + 1]).status, 413);
    assert_eq!(h.post_raw("/api/ProvisionPat/../RotatePat", "application/json", "{}".into()).status, 404);
    assert_eq!(h.post_raw("/api/ProvisionPat/extra", "application/json", "{}".into()).status, 404);
    assert_eq!(h.get("/RotatePat").status, 405);
    // Only the dry runs of the 200 cases reached upstream (reads), never a write.
    assert_eq!(kv_writes(&w, 0), 0);
    assert_eq!(ws_count(&w, 0, "create") + ws_count(&w, 0, "delete"), 0);
}

#[test]
fn bad_requests_alone_make_zero_upstream_calls() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    for body in [&b"{"[..], b"", br#"{"target":"nope"}"#, br#"{"target":"t","x":1}"#, br#"{"target":1}"#] {
        assert!(h.provision_raw(Some("application/json"), body.to_vec()).status >= 400);
    }
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn timer_corpus_never_fails_the_invocation_for_its_shape() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/timer");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let body = std::fs::read_to_string(&path).unwrap();
        let r = h.post_raw("/RotatePat", "application/json; charset=utf-8", body);
        assert_eq!(r.status, 200, "{}: {}", path.display(), r.text);
        assert!(r.json()["Logs"].as_array().is_some());
        n += 1;
    }
    assert!(n >= 10);
    w.assert_secret_works(0, 0, "t-pat");
}
