//! Where the targets come from (contract §2): `PAT_TARGETS_FILE`, `PAT_TARGETS_BLOB` (read from
//! Azurite, the real Storage emulator, with the identity's Storage token, at the start of every
//! invocation and revalidated with its ETag), at most one source, and an unreadable blob that
//! rotates nothing.

mod common;

use std::process::Command;
use std::time::Duration;

use common::azurite::{self, Azurite};
use common::{Output, World};
use serde_json::{Value, json};

/// Runs the CLI with the world's environment in `dir`.
fn cli_in(w: &World, dir: &std::path::Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    w.cli_at(Some(dir), args, extra)
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pat-rotator-{tag}-{}-{}", std::process::id(), common::free_port()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Calls to the vaults and workspaces (not the identity endpoint).
fn kv_ws_calls(w: &World) -> usize {
    w.emu.vaults().iter().map(|v| v.faults().calls().len()).sum::<usize>()
        + w.emu.workspaces().iter().map(|x| x.faults().calls().len()).sum::<usize>()
}

#[test]
fn targets_file_relative_to_the_working_directory() {
    let w = World::new();
    let dir = temp_dir("targets-file");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let targets = json!([w.target("f1", 0, 0), w.target("f2", 0, 0)]);
    std::fs::write(dir.join("conf/targets.json"), targets.to_string()).unwrap();
    let env = [("PAT_TARGETS_FILE", "conf/targets.json")];

    let o = cli_in(&w, &dir, &["check-config"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("2 target(s) from PAT_TARGETS_FILE conf/targets.json"), "{}", o.stdout);
    let o = cli_in(&w, &dir, &["rotate", "--json"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let r = o.json();
    assert_eq!((r[0]["target"].as_str(), r[0]["action"].as_str()), (Some("f1"), Some("created")));
    assert_eq!((r[1]["target"].as_str(), r[1]["action"].as_str()), (Some("f2"), Some("created")));
    w.assert_secret_works(0, 0, "f1-pat");

    // Problems inside the file name the setting and the target.
    std::fs::write(dir.join("conf/targets.json"), json!([{"name": "Bad Name"}]).to_string()).unwrap();
    let o = cli_in(&w, &dir, &["check-config"], &env);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("targets[0].name"), "{}", o.stderr);
    std::fs::write(dir.join("conf/targets.json"), "{not json").unwrap();
    let o = cli_in(&w, &dir, &["rotate", "--json"], &env);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("PAT_TARGETS_FILE: not valid JSON"), "{}", o.stderr);
    // A missing file, from another working directory.
    let o = cli_in(&w, &std::env::temp_dir(), &["rotate", "--json"], &env);
    assert_eq!(o.code, 2);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert!(o.stderr.contains("PAT_TARGETS_FILE: cannot read \"conf/targets.json\""), "{}", o.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// At most one of the three sources; an empty one counts as unset.
#[test]
fn two_sources_are_a_configuration_error_and_change_nothing() {
    let w = World::new();
    let dir = temp_dir("two-sources");
    let one = json!([w.target("a", 0, 0)]).to_string();
    std::fs::write(dir.join("t.json"), &one).unwrap();
    let blob = "https://acct1.blob.core.windows.net/targets/fleet.json";
    for (env, both) in [
        (vec![("PAT_TARGETS", one.as_str()), ("PAT_TARGETS_FILE", "t.json")], "PAT_TARGETS and PAT_TARGETS_FILE"),
        (vec![("PAT_TARGETS", one.as_str()), ("PAT_TARGETS_BLOB", blob)], "PAT_TARGETS and PAT_TARGETS_BLOB"),
        (vec![("PAT_TARGETS_FILE", "t.json"), ("PAT_TARGETS_BLOB", blob)], "PAT_TARGETS_FILE and PAT_TARGETS_BLOB"),
    ] {
        for cmd in [&["rotate", "--json"][..], &["check-config", "--offline"][..], &["status", "--json"][..]] {
            let o = cli_in(&w, &dir, cmd, &env);
            assert_eq!(o.code, 2, "{cmd:?} {env:?}: {}", o.stderr);
            assert!(
                o.stderr.contains(&format!(
                    "PAT_TARGETS, PAT_TARGETS_FILE, PAT_TARGETS_BLOB: at most one of them may be set; {both} are set"
                )),
                "{cmd:?}: {}",
                o.stderr
            );
        }
    }
    // Empty counts as unset.
    let o = cli_in(&w, &dir, &["rotate", "--json"], &[("PAT_TARGETS", ""), ("PAT_TARGETS_FILE", "t.json")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()[0]["action"], "created");
    // serve answers config_invalid and calls nothing.
    w.reset_calls();
    let h = w.serve(&[("PAT_TARGETS", one.as_str()), ("PAT_TARGETS_BLOB", blob)]);
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 500);
    assert!(
        common::eventually(Duration::from_secs(3), || h.log().contains("at most one of them may be set")),
        "{}",
        h.log()
    );
    drop(h);
    assert_eq!(w.upstream_calls(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `PAT_TARGETS_BLOB` names a blob of Storage, never with a SAS; refused before any request.
#[test]
fn blob_urls_are_checked_before_anything_is_read() {
    let w = World::new();
    for (url, why) in [
        ("https://acct1.blob.core.windows.net/targets/fleet.json?sv=2024&sig=Zq8vS3cretSig", "no SAS"),
        ("http://acct1.blob.core.windows.net/targets/fleet.json", "https://"),
        ("https://evil.example.com/targets/fleet.json", "not a blob endpoint"),
    ] {
        let o = w.cli(&["check-config", "--json"], &[("PAT_TARGETS_BLOB", url)]);
        assert_eq!(o.code, 2, "{url}");
        assert_eq!(o.json()["error"]["code"], "config_invalid");
        assert!(o.stderr.contains("PAT_TARGETS_BLOB: ") && o.stderr.contains(why), "{url}: {}", o.stderr);
        assert!(!o.stdout.contains("S3cret") && !o.stderr.contains("S3cret"), "the SAS leaked");
    }
    assert_eq!(w.upstream_calls(), 0);
}

fn azurite_world() -> (World, Azurite) {
    let mut w = World::new();
    let az = Azurite::start(w.emu.ca_pem());
    az.create_container("targets");
    let ca = az.ca_bundle.display().to_string();
    w.set("SSL_CERT_FILE", &ca);
    (w, az)
}

fn rotate_pat_logs(reply: &common::Reply) -> Vec<String> {
    reply.json()["Logs"]
        .as_array()
        .map(|a| a.iter().map(|l| l.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    not(has_azurite),
    ignore = "skipped: Azurite is not installed (scripts/test.sh installs it into .venv-azurite)"
)]
fn targets_blob_is_read_every_invocation_and_revalidated_with_its_etag() {
    let (mut w, az) = azurite_world();
    let url = az.url("targets", "fleet.json");
    let vault_host = w.emu.vault(0).url().trim_start_matches("https://").to_string();
    w.set("PAT_TARGETS_BLOB", &url);
    w.set("PAT_ALLOWED_VAULTS", &vault_host);
    az.put("targets", "fleet.json", &json!([w.target("b1", 0, 0)]).to_string());

    // check-config reads the blob (its only network call); --offline does not.
    let o = w.cli(&["check-config"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("1 target(s) from PAT_TARGETS_BLOB"), "{}", o.stdout);
    assert!(o.stdout.contains("b1"), "{}", o.stdout);
    assert!(!o.stderr.contains("without PAT_ALLOWED_VAULTS"), "{}", o.stderr);
    assert_eq!(az.gets_at_least("targets", "fleet.json", 1), [200]);
    let o = w.cli(&["check-config", "--offline"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("(not read: --offline)"), "{}", o.stdout);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(az.gets("targets", "fleet.json"), [200], "--offline reads nothing");
    assert_eq!(kv_ws_calls(&w), 0, "check-config calls no vault or workspace");
    // Without PAT_ALLOWED_VAULTS: a warning.
    let o = w.cli(&["check-config"], &[("PAT_ALLOWED_VAULTS", "")]);
    assert!(o.stderr.contains("warning: PAT_TARGETS_BLOB is set without PAT_ALLOWED_VAULTS"), "{}", o.stderr);

    // serve: every invocation reads the blob; an unchanged one answers 304.
    let h = w.serve(&[]);
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 200, "{}\n{}", r.text, h.log());
    let logs = rotate_pat_logs(&r);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("b1") && logs[0].contains("created"), "{logs:?}");
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 200);
    assert!(rotate_pat_logs(&r)[0].contains("unchanged"), "{}", r.text);
    assert_eq!(az.gets_at_least("targets", "fleet.json", 4), [200, 200, 200, 304], "the second invocation revalidated");

    // A changed blob is picked up by the next invocation, without a restart.
    az.put("targets", "fleet.json", &json!([w.target("b1", 0, 0), w.target("b2", 0, 0)]).to_string());
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = rotate_pat_logs(&r);
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[1].contains("b2") && logs[1].contains("created"), "{logs:?}");
    assert_eq!(az.gets_at_least("targets", "fleet.json", 5).last(), Some(&200));
    // ProvisionPat sees the same copy: b2 is a target now, b3 is not.
    assert_eq!(h.provision(json!({"target": "b2"})).json()["action"], "unchanged");
    assert_eq!(h.provision(json!({"target": "b3"})).json()["error"]["code"], "unknown_target");
    assert_eq!(az.gets_at_least("targets", "fleet.json", 7).iter().filter(|s| **s == 304).count(), 3);

    // A copy that names a vault outside PAT_ALLOWED_VAULTS is refused as a whole.
    let mut stray = w.target("b4", 0, 0);
    stray["key_vault_url"] = json!("https://stray.vault.azure.net");
    az.put("targets", "fleet.json", &json!([w.target("b1", 0, 0), stray]).to_string());
    w.reset_calls();
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], "config_invalid");
    assert!(
        common::eventually(Duration::from_secs(3), || h
            .log()
            .contains("vault host stray.vault.azure.net is not in PAT_ALLOWED_VAULTS")),
        "{}",
        h.log()
    );
    assert_eq!(kv_ws_calls(&w), 0, "nothing was rotated");

    // The CLI reads it too, as its caller.
    az.put("targets", "fleet.json", &json!([w.target("b1", 0, 0), w.target("b2", 0, 0)]).to_string());
    let (code, r) = w.rotate(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(r.iter().map(|o| o["action"].as_str().unwrap()).collect::<Vec<_>>(), ["unchanged", "unchanged"]);
    w.assert_secret_works(0, 0, "b2-pat");
    drop(h);
}

#[test]
#[cfg_attr(
    not(has_azurite),
    ignore = "skipped: Azurite is not installed (scripts/test.sh installs it into .venv-azurite)"
)]
fn an_unreadable_blob_rotates_nothing() {
    let (mut w, az) = azurite_world();
    let url = az.url("targets", "fleet.json");
    w.set("PAT_TARGETS_BLOB", &url);

    // 404: no such blob.
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert!(
        o.stderr.contains("PAT_TARGETS_BLOB: reading") && o.stderr.contains("answered 404 BlobNotFound"),
        "{}",
        o.stderr
    );
    let o = w.cli(&["check-config", "--json"], &[]);
    assert_eq!(o.code, 2);
    assert_eq!(kv_ws_calls(&w), 0);

    // A copy that is not a targets array, and one above the size limit (16 MiB).
    az.put("targets", "fleet.json", "{\"name\": \"not an array\"}");
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("PAT_TARGETS_BLOB: must be a JSON array of target objects"), "{}", o.stderr);
    az.put("targets", "fleet.json", &" ".repeat(16 * 1024 * 1024 + 1));
    let o = w.cli(&["rotate", "--json"], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("the blob is larger than 16 MiB"), "{}", o.stderr);
    assert_eq!(kv_ws_calls(&w), 0);

    // 403: Storage refuses the caller's token (here: an Azure CLI identity whose issuer Azurite
    // does not know).
    az.put("targets", "fleet.json", &json!([w.target("c1", 0, 0)]).to_string());
    let bin_dir = std::env::temp_dir().join(format!("pat-rotator-fake-az-{}", common::free_port()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let jwt = |claims: Value| {
        let enc = |v: &Value| {
            let s = v.to_string();
            let b = s.as_bytes();
            const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for c in b.chunks(3) {
                let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
                for i in 0..=c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                }
            }
            out
        };
        format!("{}.{}.c2ln", enc(&json!({"typ": "JWT", "alg": "RS256"})), enc(&claims))
    };
    let token = jwt(json!({"aud": "https://storage.azure.com", "iss": "https://issuer.example.com/tenant/",
        "iat": now, "nbf": now, "exp": now + 3600}));
    let answer = json!({"accessToken": token, "expires_on": now + 3600, "expiresOn": "2099-01-01 00:00:00.000000",
        "tokenType": "Bearer", "subscription": "s", "tenant": "t"});
    std::fs::write(bin_dir.join("az"), format!("#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n")).unwrap();
    Command::new("chmod").arg("+x").arg(bin_dir.join("az")).status().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let as_cli = [("PAT_CREDENTIAL", "azure_cli"), ("PATH", path.as_str()), ("IDENTITY_ENDPOINT", "")];
    let o = w.cli(&["rotate", "--json"], &as_cli);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.json()["error"]["code"], "config_invalid");
    assert!(o.stderr.contains("answered 403 AuthenticationFailed"), "{}", o.stderr);
    assert!(o.stderr.contains("the account did not accept the identity's token"), "{}", o.stderr);
    assert_eq!(kv_ws_calls(&w), 0, "nothing was read or rotated");

    // serve: a blob that becomes unreadable fails the next invocation: the copy it read
    // before is not used.
    let h = w.serve(&[]);
    assert_eq!(h.invoke_timer(true).status, 200);
    let before = w.emu.vault(0).versions("c1-pat").len();
    az.delete("targets", "fleet.json");
    w.reset_calls();
    let r = h.invoke_timer(true);
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "config_invalid");
    let p = h.provision(json!({"target": "c1", "force": true}));
    assert_eq!((p.status, p.json()["error"]["code"].as_str()), (500, Some("config_invalid")));
    assert!(
        common::eventually(Duration::from_secs(3), || h.log().contains("answered 404 BlobNotFound")),
        "{}",
        h.log()
    );
    assert_eq!(kv_ws_calls(&w), 0, "nothing was rotated");
    assert_eq!(w.emu.vault(0).versions("c1-pat").len(), before);
    drop(h);
    std::fs::remove_dir_all(&bin_dir).unwrap();
}

/// CI installs Azurite (`scripts/test.sh`): there the blob tests must run, not be ignored.
#[test]
fn azurite_is_installed_in_ci() {
    if std::env::var_os("CI").is_some() {
        assert!(
            azurite::main_js().exists() && cfg!(has_azurite),
            "Azurite is required in CI (scripts/test.sh installs it into .venv-azurite); rebuild after installing it"
        );
    }
}
