//! ProvisionPat and RotatePat error bodies through the real binary (contract §3): the code, the
//! code's fixed sentence (docs/RUNBOOK.md) and the invocation id, nothing else; the detail an
//! operator needs is in the log line carrying the same invocation id.

mod common;

use common::*;
use pat_rotator::error::Code;
use pat_rotator::handler::public::sentence;
use serde_json::{Value, json};

/// The id `Handler::provision` sends as the host would (`X-Azure-Functions-InvocationId`).
const PROVISION_ID: &str = "1c7e5b2a-3f4d-4e6a-9b8c-7d6e5f4a3b2c";
/// The id `Handler::invoke_timer` sends.
const TIMER_ID: &str = "7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11";

/// Asserts `body` is exactly `{"error":{"code","message","invocation_id"}}` with `code`'s
/// sentence; returns the invocation id.
fn assert_public_error(body: &Value, code: Code) -> String {
    let e = body["error"].as_object().unwrap_or_else(|| panic!("no error object: {body}"));
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "invocation_id", "message"], "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "nothing beside the error object: {body}");
    assert_eq!(e["code"], code.as_str(), "{body}");
    assert_eq!(e["message"], sentence(code), "{body}");
    let id = e["invocation_id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    id
}

/// The log lines that carry `id`.
fn lines_with(log: &str, id: &str) -> Vec<String> {
    log.lines().filter(|l| l.contains(id)).map(str::to_string).collect()
}

#[test]
fn a_502_tells_the_caller_the_code_and_the_log_the_detail() {
    let w = World::one_target(&[]);
    let identity = w.emu.identity().system_principal().clone();
    w.emu.vault(0).set_role(&identity.object_id, Role::None);
    let vault_url = w.emu.vault(0).url().to_string();
    let vault_host = url::Url::parse(&vault_url).unwrap().host_str().unwrap().to_string();
    let h = w.serve(&[]);

    let r = h.provision(json!({"target": "t"}));
    assert_eq!(r.status, 502, "{}", r.text);
    assert_eq!(assert_public_error(&r.json(), Code::KeyvaultForbidden), PROVISION_ID);
    // What Key Vault said (and the program used to pass on) stays out of the body.
    for secret_to_the_caller in [
        identity.object_id.as_str(),
        identity.client_id.as_str(),
        w.emu.tenant_id(),
        vault_url.as_str(),
        vault_host.as_str(),
        "appid",
        "oid=",
        "sts.windows.net",
        "ForbiddenByRbac",
        "Assignment",
        "Key Vault Secrets Officer",
        "role",
    ] {
        assert!(!r.text.contains(secret_to_the_caller), "the body names {secret_to_the_caller:?}: {}", r.text);
    }
    assert_eq!(ws_count(&w, 0, "create"), 0, "refused at the read, before anything was created");

    // The log has it all, on one line with the invocation id and the code.
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            lines_with(&h.log(), PROVISION_ID).iter().any(|l| l.contains("ProvisionPat answered 502"))
        }),
        "no answer line; log:\n{}",
        h.log()
    );
    let log = h.log();
    let line = lines_with(&log, PROVISION_ID).into_iter().find(|l| l.contains("ProvisionPat answered 502")).unwrap();
    for detail in ["keyvault_forbidden", "Key Vault Secrets Officer", identity.object_id.as_str()] {
        assert!(line.contains(detail), "the log line lacks {detail:?}: {line}");
    }
    assert!(line.contains("ERROR") && line.contains("target_name"), "{line}");
}

#[test]
fn the_envelope_form_answers_the_same_and_keeps_the_detail_out_of_logs_and_body() {
    let w = World::one_target(&[]);
    let identity = w.emu.identity().system_principal().clone();
    w.emu.vault(0).set_role(&identity.object_id, Role::None);
    let vault_url = w.emu.vault(0).url().to_string();
    let h = w.serve(&[]);
    let env = json!({ "Data": { "req": { "Url": "https://app/api/ProvisionPat", "Method": "POST", "Query": {},
        "Headers": { "Content-Type": ["application/json"] }, "Body": "{\"target\":\"t\"}" } },
        "Metadata": { "sys": { "MethodName": "ProvisionPat", "UtcNow": "2026-11-26T03:00:00Z" } } });
    let r = h.post_raw("/ProvisionPat", "application/json", env.to_string());
    assert_eq!(r.status, 200, "the host envelope is always 2xx: {}", r.text);
    let v = r.json();
    assert_eq!(v["Outputs"]["res"]["statusCode"], 502, "{v}");
    // Sent without the host's header: a fresh UUID stands in, and the log carries the same one.
    let id = assert_public_error(&v["Outputs"]["res"]["body"], Code::KeyvaultForbidden);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    for leak in [vault_url.as_str(), identity.object_id.as_str(), "Key Vault Secrets Officer"] {
        assert!(!r.text.contains(leak), "the envelope (body or Logs) names {leak:?}: {}", r.text);
    }
    assert!(eventually(std::time::Duration::from_secs(5), || lines_with(&h.log(), &id)
        .iter()
        .any(|l| l.contains("Key Vault Secrets Officer"))));
}

#[test]
fn config_invalid_bodies_carry_the_sentence_and_the_log_the_problem() {
    let mut w = World::new();
    let mut t = w.target("t", 0, 0);
    t["secret_name"] = json!("my_secret");
    w.targets(&[t]);
    let h = w.serve(&[]);

    let r = h.provision(json!({"target": "t"}));
    assert_eq!(r.status, 500);
    assert_eq!(assert_public_error(&r.json(), Code::ConfigInvalid), PROVISION_ID);
    let r2 = h.invoke_timer(true);
    assert_eq!(r2.status, 500);
    let v = r2.json();
    assert_eq!(v["error"]["code"], "config_invalid");
    assert_eq!(v["error"]["message"], sentence(Code::ConfigInvalid));
    assert_eq!(v["error"]["invocation_id"], TIMER_ID);
    let env = json!({ "Data": { "req": { "Headers": { "Content-Type": ["application/json"] }, "Body": "{\"target\":\"t\"}" } } });
    let r3 = h.post_raw("/ProvisionPat", "application/json", env.to_string());
    assert_public_error(&r3.json()["Outputs"]["res"]["body"], Code::ConfigInvalid);
    for text in [&r.text, &r2.text, &r3.text] {
        assert!(!text.contains("my_secret") && !text.contains("targets[0]"), "the problem reached a body: {text}");
        assert!(!text.contains(w.emu.vault(0).url()), "{text}");
    }
    assert!(eventually(std::time::Duration::from_secs(5), || {
        let log = h.log();
        [PROVISION_ID, TIMER_ID].iter().all(|id| {
            lines_with(&log, id).iter().any(|l| l.contains("targets[0].secret_name") && l.contains("config_invalid"))
        })
    }));
    assert_eq!(w.upstream_calls(), 0);
}

#[test]
fn revoke_superseded_is_not_offered_by_provision_pat() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    for v in [json!(true), json!(false)] {
        let r = h.provision(json!({"target": "t", "force": true, "revoke_superseded": v}));
        assert_eq!(r.status, 400, "{}", r.text);
        assert_public_error(&r.json(), Code::InvalidRequest);
    }
    assert_eq!(w.upstream_calls(), 0, "rejected before any upstream call");
    assert!(eventually(std::time::Duration::from_secs(5), || h.log().contains("CLI only")), "{}", h.log());
}

#[test]
fn every_4xx_body_is_the_sentence_and_the_invocation_id() {
    let w = World::one_target(&[]);
    let h = w.serve(&[]);
    let cases: Vec<(Option<&str>, Vec<u8>, u16, Code)> = vec![
        (Some("application/json"), b"{not json".to_vec(), 400, Code::InvalidRequest),
        (Some("application/json"), br#"{"target":"t","vault":"https://evil"}"#.to_vec(), 400, Code::InvalidRequest),
        (Some("text/plain"), br#"{"target":"t"}"#.to_vec(), 415, Code::InvalidRequest),
        (Some("application/json"), vec![b' '; 64 * 1024 + 1], 413, Code::InvalidRequest),
        (Some("application/json"), br#"{"target":"../t"}"#.to_vec(), 404, Code::UnknownTarget),
    ];
    for (ct, body, status, code) in cases {
        let r = h.provision_raw(ct, body);
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(assert_public_error(&r.json(), code), PROVISION_ID);
        assert!(!r.text.contains("evil") && !r.text.contains("../t"), "the caller's input is not echoed: {}", r.text);
    }
    assert_eq!(w.upstream_calls(), 0);
}
