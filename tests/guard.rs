//! Who wrote a version (contract §10) through the real binary, with two identities of the
//! emulators writing one vault: the service (the managed identity, as `serve` and as a CLI run on
//! its VM) and a person (an app registration signing in with a client secret, as `az login`
//! would give someone). Every version carries `rotated-by` and `rotated-via`; the CLI does not
//! write over a version another identity wrote unless told to take ownership, and
//! `--revoke-superseded` never acts on another identity's version.

mod common;

use common::*;
use serde_json::{Value, json};

/// The person's app registration (client id).
const PERSON: &str = "0e0e0e0e-1111-4111-8111-eeeeeeeeeeee";

/// A target `t` whose superseded tokens go at once (grace 0), and a person who may use the
/// workspace and the vault (the emulators' default role for a known principal: Secrets Officer).
/// Returns the person's object id.
fn world() -> (World, String) {
    let w = World::one_target(&[("revoke_grace_hours", json!(0))]);
    let person = w.emu.aad().add_service_principal(PERSON, CLIENT_SECRET);
    w.emu.workspace(0).add_member(&person);
    (w, person)
}

/// The settings of a CLI run as the person.
const AS_PERSON: [(&str, &str); 5] = [
    ("IDENTITY_ENDPOINT", ""),
    ("IDENTITY_HEADER", ""),
    ("PAT_CREDENTIAL", "client_secret"),
    ("AZURE_CLIENT_ID", PERSON),
    ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
];

fn latest_tags(w: &World) -> std::collections::BTreeMap<String, String> {
    w.emu.vault(0).latest("t-pat").expect("a version").tags
}

fn only(r: &[Value]) -> &Value {
    assert_eq!(r.len(), 1, "{r:?}");
    &r[0]
}

/// The timer writes as the service; a person's run is refused before anything is created, in a
/// dry run too, with a message naming both identities and what the person's token would do;
/// `--take-ownership` writes anyway (and says so); the service's next run writes as itself over
/// the person's version; and a CLI run as the service itself is never refused.
#[test]
fn a_person_cannot_replace_the_services_version_without_taking_ownership() {
    let (w, person) = world();
    let service = w.emu.identity().principal().to_string();
    let h = w.serve(&[]);
    assert_eq!(h.invoke_timer(true).status, 200);
    let tags = latest_tags(&w);
    assert_eq!((tags["rotated-by"].as_str(), tags["rotated-via"].as_str()), (service.as_str(), "RotatePat"));
    let service_token = tags["databricks-token-id"].clone();

    // As the person: the service's token is not in the person's list, so the run would
    // "reprovision" with a token of the person. Refused, before any create.
    let writes = kv_writes(&w, 0);
    let creates = ws_count(&w, 0, "create");
    for args in [
        &["--target", "t"][..],
        &["--target", "t", "--force"],
        &["--target", "t", "--dry-run"],
        &["--target", "t", "--force", "--dry-run"],
    ] {
        let (code, r) = w.rotate(args, &AS_PERSON);
        let o = only(&r);
        assert_eq!((code, o["action"].as_str()), (1, Some("failed")), "{args:?}: {o}");
        assert_eq!(o["error"]["code"], "rotated_by_another_identity", "{args:?}: {o}");
        let m = o["error"]["message"].as_str().unwrap();
        assert!(m.contains(&service) && m.contains(&person), "both object ids: {m}");
        assert!(m.contains("would belong to the caller") && m.contains("could not revoke"), "{m}");
        assert!(m.contains("--take-ownership"), "{m}");
    }
    assert_eq!(kv_writes(&w, 0), writes, "nothing written");
    assert_eq!(ws_count(&w, 0, "create"), creates, "nothing created");
    assert!(w.emu.workspace(0).tokens(&person).is_empty());
    assert!(w.emu.workspace(0).is_live(&service_token));

    // --take-ownership needs --target: a usage error, also under --json.
    let o = w.cli(&["rotate", "--take-ownership", "--json"], &AS_PERSON);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert_eq!(o.json()["error"]["code"], "invalid_request", "{}", o.stdout);

    // --take-ownership writes anyway, as the person, and warns.
    let (code, r) = w.rotate(&["--target", "t", "--take-ownership"], &AS_PERSON);
    let o = only(&r);
    assert_eq!(
        (code, o["action"].as_str(), o["reason"].as_str()),
        (0, Some("reprovisioned"), Some("revoked_in_workspace"))
    );
    let warnings = o["warnings"].to_string();
    assert!(warnings.contains("--take-ownership") && warnings.contains(&service), "{warnings}");
    let tags = latest_tags(&w);
    assert_eq!((tags["rotated-by"].as_str(), tags["rotated-via"].as_str()), (person.as_str(), "cli"));
    let persons_token = w.assert_secret_works(0, 0, "t-pat");
    assert_eq!(w.emu.workspace(0).token(&persons_token).unwrap().principal, person);
    assert!(w.emu.workspace(0).is_live(&service_token), "the person could not revoke the service's token");

    // The deployment always writes as itself: the next timer run replaces the person's token.
    assert_eq!(h.invoke_timer(true).status, 200);
    let tags = latest_tags(&w);
    assert_eq!((tags["rotated-by"].as_str(), tags["rotated-via"].as_str()), (service.as_str(), "RotatePat"));
    // ProvisionPat too, over the person's version.
    assert_eq!(w.rotate(&["--target", "t", "--force", "--take-ownership"], &AS_PERSON).0, 0);
    let r = h.provision(json!({"target": "t", "force": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    let tags = latest_tags(&w);
    assert_eq!((tags["rotated-by"].as_str(), tags["rotated-via"].as_str()), (service.as_str(), "ProvisionPat"));
    drop(h);

    // The service's own CLI (its managed identity on a VM) is not refused.
    let (code, r) = w.rotate(&["--target", "t", "--force"], &[]);
    assert_eq!((code, only(&r)["action"].as_str()), (0, Some("rotated")), "{r:?}");
    let tags = latest_tags(&w);
    assert_eq!((tags["rotated-by"].as_str(), tags["rotated-via"].as_str()), (service.as_str(), "cli"));
    w.assert_secret_works(0, 0, "t-pat");
}

/// `--revoke-superseded` acts on the caller's tokens: over another identity's version it is
/// refused even with `--take-ownership`, and nothing is created or revoked.
#[test]
fn revoke_superseded_as_another_identity_is_refused_even_taking_ownership() {
    let (w, person) = world();
    let service = w.emu.identity().principal().to_string();
    assert_eq!(w.rotate(&[], &[]).0, 0);
    let before = w.live_tokens(0);
    let (writes, creates, deletes) = (kv_writes(&w, 0), ws_count(&w, 0, "create"), ws_count(&w, 0, "delete"));
    for extra in [&[][..], &["--take-ownership"], &["--dry-run"], &["--take-ownership", "--dry-run"]] {
        let mut args = vec!["--target", "t", "--force", "--revoke-superseded"];
        args.extend_from_slice(extra);
        let (code, r) = w.rotate(&args, &AS_PERSON);
        let o = only(&r);
        assert_eq!((code, o["error"]["code"].as_str()), (1, Some("rotated_by_another_identity")), "{args:?}: {o}");
        let m = o["error"]["message"].as_str().unwrap();
        assert!(m.contains("--revoke-superseded") && m.contains(&service) && m.contains(&person), "{m}");
    }
    assert_eq!(
        (kv_writes(&w, 0), ws_count(&w, 0, "create"), ws_count(&w, 0, "delete")),
        (writes, creates, deletes),
        "nothing written, created or revoked"
    );
    assert_eq!(w.live_tokens(0), before);
    // As the service it works.
    let (code, r) = w.rotate(&["--target", "t", "--force", "--revoke-superseded"], &[]);
    assert_eq!(code, 0, "{r:?}");
    assert_eq!(only(&r)["revoked_token_ids"], json!(before));
}

/// A version written before the tag existed is accepted; one whose writer could not be
/// identified (`unknown`) is another identity's.
#[test]
fn an_untagged_version_is_accepted_an_unknown_writer_is_not() {
    let (w, person) = world();
    w.seed_managed(0, 0, "t", 2 * DAY, 90 * DAY, None);
    let (code, r) = w.rotate(&["--target", "t"], &AS_PERSON);
    assert_eq!((code, only(&r)["action"].as_str()), (0, Some("reprovisioned")), "{r:?}");
    assert_eq!(latest_tags(&w)["rotated-by"], person);

    let (id, value) = w.seed_token(0, &w.comment("t", 0, "x"), HOUR, 90 * DAY);
    w.emu.vault(0).seed_secret(
        "t-pat",
        &value,
        Some("databricks-pat"),
        &[("managed-by", "pat-rotator"), ("databricks-token-id", &id), ("rotated-by", "unknown")],
        None,
    );
    let (code, r) = w.rotate(&["--target", "t", "--force"], &[]);
    assert_eq!((code, only(&r)["error"]["code"].as_str()), (1, Some("rotated_by_another_identity")), "{r:?}");
    assert!(only(&r)["error"]["message"].as_str().unwrap().contains("identity unknown"), "{r:?}");
}
