//! The command line as an operator meets it: `tokens` (the inventory and `--revoke`), `--help`,
//! and `--json` usage errors for every subcommand (contract §1).

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86_400);

fn row<'a>(tokens: &'a Value, id: &str) -> &'a Value {
    tokens.as_array().unwrap().iter().find(|t| t["token_id"] == id).unwrap_or_else(|| panic!("{id} not in {tokens}"))
}

/// The original script's "Terraform-generated token" is listed as not the target's and not in
/// the vault, and can be revoked by id; the token the vault names cannot.
#[test]
fn tokens_lists_legacy_tokens_and_revokes_them_by_id() {
    let w = World::one_target(&[]);
    let cur = w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    let (legacy, _) = w.seed_token(0, "Terraform-generated token", 200 * DAY, 400 * DAY);
    let out = w.cli(&["tokens", "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v[0]["target"], "t");
    let tokens = &v[0]["tokens"];
    let l = row(tokens, &legacy);
    assert_eq!((l["managed"].as_bool(), l["in_vault"].as_bool()), (Some(false), Some(false)), "{l}");
    assert_eq!(l["comment"], "Terraform-generated token");
    assert!(l["created_at"].as_str().unwrap().ends_with('Z') && l["expires_at"].is_string(), "{l}");
    let c = row(tokens, &cur);
    assert_eq!((c["managed"].as_bool(), c["in_vault"].as_bool()), (Some(true), Some(true)), "{c}");
    let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["token_id", "comment", "created_at", "expires_at", "managed", "in_vault", "last_used_day"]);
    // The human table names them too.
    let table = w.cli(&["tokens"], &[]);
    assert!(table.stdout.contains(&legacy) && table.stdout.contains("Terraform-generated token"), "{}", table.stdout);

    // The current token is refused, and then nothing at all is revoked.
    let out = w.cli(&["tokens", "--revoke", &legacy, "--revoke", &cur], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&cur) && out.stderr.contains("names"), "{}", out.stderr);
    let ws = w.emu.workspace(0);
    assert!(ws.is_live(&cur) && ws.is_live(&legacy), "nothing revoked when one id is refused");

    // An id nobody holds: exit 1.
    let out = w.cli(&["tokens", "--revoke", "0000feedface"], &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("found in no"), "{}", out.stderr);

    let out = w.cli(&["tokens", "--target", "t", "--revoke", &legacy, "--json"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["revoked"][0]["token_id"], legacy.as_str());
    assert!(!ws.is_live(&legacy) && ws.is_live(&cur));
}

/// `--help` says where configuration comes from and what the exit codes mean, and every flag of
/// every subcommand has a help text.
#[test]
fn help_lists_settings_exit_codes_and_every_flag() {
    let w = World::new();
    let top = w.cli(&["--help"], &[]);
    assert_eq!(top.code, 0);
    for needle in ["PAT_TARGETS", "PAT_FORCE_COOLDOWN_MINUTES", "PAT_LOG_FORMAT", "Exit codes", "tokens", "RUNBOOK"] {
        assert!(top.stdout.contains(needle), "{needle} missing from --help:\n{}", top.stdout);
    }
    for sub in ["serve", "rotate", "status", "check-config", "tokens"] {
        let h = w.cli(&[sub, "--help"], &[]);
        assert_eq!(h.code, 0, "{sub}");
        let options = h.stdout.split("Options:").nth(1).unwrap_or_else(|| panic!("{sub}: no options:\n{}", h.stdout));
        for line in options.lines().filter(|l| l.trim_start().starts_with("--")) {
            let flag = line.split_whitespace().next().unwrap();
            let text = line.trim_start().trim_start_matches(flag).trim_start();
            let text = text.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '<' || c == '>').trim();
            assert!(!text.is_empty(), "{sub} {flag} has no help text:\n{}", h.stdout);
        }
    }
}

/// Each subcommand's `--help` lists the settings it reads and the exit codes it uses
/// (contract §1), each with what it means for that command.
#[test]
fn each_subcommands_help_lists_its_settings_and_exit_codes() {
    let w = World::new();
    let cases: [(&str, &[&str]); 5] = [
        ("serve", &["FUNCTIONS_CUSTOMHANDLER_PORT", "PAT_HTTP_BUDGET_SECONDS", "PAT_SERVICE_OBJECT_ID", "SIGTERM"]),
        ("rotate", &["PAT_TIMER_BUDGET_SECONDS", "rotated_by_another_identity", "--take-ownership"]),
        ("status", &["PAT_SERVICE_OBJECT_ID", "PAT_HTTP_BUDGET_SECONDS", "needs attention", "is healthy"]),
        ("check-config", &["PAT_FORCE_COOLDOWN_MINUTES", "PAT_SERVICE_OBJECT_ID", "the configuration is invalid"]),
        ("tokens", &["PAT_HTTP_BUDGET_SECONDS", "refused"]),
    ];
    for (sub, needles) in cases {
        let h = w.cli(&[sub, "--help"], &[]);
        assert_eq!(h.code, 0, "{sub}");
        let text = h
            .stdout
            .split("Settings (environment variables")
            .nth(1)
            .unwrap_or_else(|| panic!("{sub}: no settings:\n{}", h.stdout));
        let (settings, exits) =
            text.split_once("Exit codes:").unwrap_or_else(|| panic!("{sub}: no exit codes:\n{}", h.stdout));
        for common in ["PAT_TARGETS", "PAT_CREDENTIAL", "RUST_LOG"] {
            assert!(settings.contains(common), "{sub}: {common} missing:\n{}", h.stdout);
        }
        assert!(exits.contains("  0  ") && exits.contains("  2  "), "{sub}:\n{exits}");
        for needle in needles {
            assert!(h.stdout.contains(needle), "{sub}: {needle} missing:\n{}", h.stdout);
        }
    }
}

/// A command line clap rejects is a usage error too: with `--json` one JSON object on stdout
/// (it used to print nothing there), always exit 2, nothing called.
#[test]
fn json_usage_errors_from_the_command_line_parser() {
    let w = World::one_target(&[]);
    for args in [
        vec!["rotate", "--json", "--bogus"],
        vec!["rotate", "--json", "--target"],
        vec!["status", "--json", "--target"],
        vec!["status", "--json", "--force"],
        vec!["tokens", "--json", "--revoke"],
        vec!["check-config", "--json", "extra"],
        vec!["rotate", "--json", "--take-ownership"],
        vec!["rotate", "--json", "--revoke-superseded", "--target", "t"],
    ] {
        let out = w.cli(&args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        let v = out.json();
        assert_eq!(v["error"]["code"], "invalid_request", "{args:?}: {}", out.stdout);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.starts_with("error:"), "{args:?}: {message}");
        assert_eq!(v.as_object().unwrap().len(), 1, "{args:?}: one key: {v}");
        assert!(!out.stderr.is_empty(), "{args:?}: the usage text stays on stderr");
    }
    // Without --json, stdout stays empty; --help is no error.
    let out = w.cli(&["rotate", "--bogus"], &[]);
    assert_eq!((out.code, out.stdout.as_str()), (2, ""));
    assert_eq!(w.cli(&["rotate", "--json", "--help"], &[]).code, 0);
    assert_eq!(w.upstream_calls(), 0, "a usage error calls nobody");
}

/// `check-config` says what a configuration will need or do that it cannot check offline.
#[test]
fn check_config_warns_about_admin_rights_shared_principals_and_events() {
    const SP: &str = "0c0c0c0c-2222-4222-8222-cccccccccccc";
    let w = World::new();
    let sp = |name: &str| {
        let mut t = w.target(name, 0, 0);
        t["kind"] = serde_json::json!("sp_oauth_secret");
        t["service_principal"] = serde_json::json!(SP);
        t
    };
    let mut usage = w.target("usage", 0, 0);
    usage["keep_while_used"] = serde_json::json!(true);
    let mut early = w.target("early", 0, 0);
    early["renew_before_days"] = serde_json::json!(10);
    let targets = serde_json::json!([sp("sp-a"), sp("sp-b"), usage, early]).to_string();
    let o = w.cli(&["check-config"], &[("PAT_TARGETS", &targets)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for needle in [
        "warning: sp-a: an OAuth-secret target needs the service's identity to be a workspace admin",
        "warning: sp-b: an OAuth-secret target needs",
        &format!("warning: sp-a and sp-b share service principal {SP}"),
        "warning: usage: keep_while_used reads each superseded token's last use from the Token Management API, which needs workspace admin",
        "warning: early: renew_before_days is 10, less than 30",
    ] {
        assert!(o.stderr.contains(needle), "{needle}:\n{}", o.stderr);
    }
    assert!(
        !o.stderr.contains("usage: renew_before_days") && !o.stderr.contains("early: keep_while_used"),
        "{}",
        o.stderr
    );
    let o = w.cli(&["check-config", "--json"], &[("PAT_TARGETS", &targets)]);
    assert!(o.json()["warnings"].to_string().contains("share service principal"), "{}", o.stdout);

    // Three targets on one principal are refused.
    let three = serde_json::json!([sp("sp-a"), sp("sp-b"), sp("sp-c")]).to_string();
    let o = w.cli(&["check-config", "--json"], &[("PAT_TARGETS", &three)]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert!(o.stdout.contains("is the principal of 3 targets"), "{}", o.stdout);
}

/// With `--json`, a usage or configuration error is one JSON object on stdout, exit 2, for
/// every subcommand.
#[test]
fn json_usage_errors_for_every_subcommand() {
    let w = World::one_target(&[]);
    for args in [
        vec!["rotate", "--target", "nope", "--json"],
        vec!["status", "--target", "nope", "--json"],
        vec!["tokens", "--target", "nope", "--json"],
    ] {
        let out = w.cli(&args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.json()["error"]["code"], "unknown_target", "{args:?}: {}", out.stdout);
        assert_eq!(w.upstream_calls(), 0, "{args:?}: a usage error calls nobody");
    }
    for args in
        [vec!["rotate", "--json"], vec!["status", "--json"], vec!["tokens", "--json"], vec!["check-config", "--json"]]
    {
        let out = w.cli(&args, &[("PAT_TARGETS", "[{\"name\":\"BAD\"}]")]);
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(out.json()["error"]["code"], "config_invalid", "{args:?}: {}", out.stdout);
    }
}

/// Settings that are ignored or misspelt are warned about on stderr, by every command that reads
/// the configuration, and by `serve` in its log; they never fail the configuration.
#[test]
fn ignored_and_misspelt_settings_are_warned_about() {
    let w = World::one_target(&[]);
    let extra = [("PAT_LIFETIME_DAY", "30"), ("KEY_VAULT_URL", "https://unused.vault.azure.net")];
    // `status` exits 1: the target has no secret yet (attention `no_secret`).
    for (args, code) in
        [(vec!["check-config"], 0), (vec!["status"], 1), (vec!["tokens"], 0), (vec!["rotate", "--dry-run"], 0)]
    {
        let out = w.cli(&args, &extra);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(
                "warning: PAT_LIFETIME_DAY: not a pat-rotator setting, ignored (did you mean PAT_LIFETIME_DAYS?)"
            ),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("KEY_VAULT_URL: ignored, because PAT_TARGETS is set"), "{args:?}: {}", out.stderr);
        assert!(!out.stdout.contains("warning"), "{args:?}: warnings stay off stdout: {}", out.stdout);
    }
    let out = w.cli(&["check-config", "--json"], &extra);
    let warnings = out.json()["warnings"].to_string();
    assert!(warnings.contains("PAT_LIFETIME_DAY"), "{warnings}");
    let h = w.serve(&extra);
    assert!(
        eventually(Duration::from_secs(5), || h.log().contains("PAT_LIFETIME_DAY: not a pat-rotator setting")),
        "{}",
        h.log()
    );
}
