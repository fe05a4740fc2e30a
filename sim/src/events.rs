//! Key Vault's events as Event Grid hands them to the `SecretEvent` function (contract §10,
//! "Key Vault events"; the host's JSON protocol as `pat_rotator::handler::event` documents it):
//! the Event Grid schema with Key Vault's PascalCase data keys, inside the host's invocation
//! body `{"Data": {"event": …}, "Metadata": {…}}` — `Data.event` as an object, a string holding
//! its JSON, or an array of one.
//!
//! Which targets an event concerns is the checker's own reading of the contract (the vault's
//! host and the secret's name, case-insensitively), never the handler's `matches`.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::scenario::Stray;
use crate::world::{KvEvent, TargetView, World};

/// The targets of `targets` whose secret `ev` is about.
pub fn matching(targets: &[TargetView], ev: &KvEvent) -> Vec<usize> {
    (0..targets.len())
        .filter(|i| {
            targets[*i].vault.eq_ignore_ascii_case(&ev.host) && targets[*i].secret.eq_ignore_ascii_case(&ev.name)
        })
        .collect()
}

fn guid(w: &mut World) -> String {
    let (a, b) = (w.rng.next_u64(), w.rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a as u32,
        (a >> 32) as u16,
        (a >> 48) as u16 & 0xfff,
        b as u16 & 0xfff,
        b >> 16 & 0xffff_ffff_ffff
    )
}

/// One event in the Event Grid schema.
fn event(
    w: &mut World,
    event_type: &str,
    host: &str,
    name: &str,
    id: &str,
    object_type: &str,
    exp: Option<i64>,
) -> Value {
    let vault = host.split('.').next().unwrap_or_default().to_string();
    let version = id.rsplit('/').next().unwrap_or_default().to_string();
    let time = w.vault_now(host).format(&Rfc3339).unwrap_or_default();
    json!({
        "id": guid(w),
        "topic": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-sim/providers/Microsoft.KeyVault/vaults/{vault}"),
        "subject": name,
        "eventType": event_type,
        "eventTime": time,
        "data": {
            "Id": id, "VaultName": vault, "ObjectType": object_type, "ObjectName": name,
            "Version": version, "NBF": null, "EXP": exp,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    })
}

/// The host's invocation body around one event, in one of the shapes it may take.
fn invocation(w: &mut World, ev: Value) -> String {
    let data = ev["data"].clone();
    let shaped = match w.rng.below(5) {
        0 => Value::String(ev.to_string()),
        1 => json!([ev]),
        _ => ev,
    };
    json!({
        "Data": { "event": shaped },
        "Metadata": { "data": data, "sys": { "MethodName": "SecretEvent", "UtcNow": "", "RandGuid": guid(w) } },
    })
    .to_string()
}

/// The body that delivers Key Vault's event `ev`.
pub fn body(w: &mut World, ev: &KvEvent) -> String {
    let e = event(w, ev.kind.event_type(), &ev.host, &ev.name, &ev.id, "Secret", ev.exp);
    invocation(w, e)
}

/// An event pat-rotator does not act on, for deployment `dep`.
pub fn stray(w: &mut World, dep: usize, kind: Stray) -> String {
    let t = w.deployments[dep].targets[0].clone();
    let id = |w: &mut World, host: &str, name: &str| {
        format!("https://{host}/secrets/{name}/{}", crate::world::version_hex(&mut w.rng))
    };
    match kind {
        Stray::Certificate => {
            let i = format!("https://{}/certificates/{}/{}", t.vault, t.secret, crate::world::version_hex(&mut w.rng));
            let e = event(
                w,
                "Microsoft.KeyVault.CertificateNewVersionCreated",
                &t.vault,
                &t.secret,
                &i,
                "Certificate",
                None,
            );
            invocation(w, e)
        }
        Stray::OtherType => {
            let i = id(w, &t.vault, &t.secret);
            let e = event(w, "Microsoft.KeyVault.VaultAccessPolicyChanged", &t.vault, &t.secret, &i, "Vault", None);
            invocation(w, e)
        }
        Stray::Unconfigured => {
            let host = "kv-unrelated.vault.azure.net";
            let i = id(w, host, "someone-elses-secret");
            let e = event(
                w,
                "Microsoft.KeyVault.SecretNewVersionCreated",
                host,
                "someone-elses-secret",
                &i,
                "Secret",
                None,
            );
            invocation(w, e)
        }
        Stray::Malformed => {
            let i = id(w, &t.vault, &t.secret);
            let mut e = event(w, "Microsoft.KeyVault.SecretNearExpiry", &t.vault, &t.secret, &i, "Secret", None);
            e["data"]["ObjectName"] = json!(format!("{}-other", t.secret));
            invocation(w, e)
        }
        Stray::NotJson => {
            json!({ "Data": { "event": "{\"eventType\": \"Microsoft.KeyVault.SecretNearExpiry\", " }, "Metadata": {} })
                .to_string()
        }
    }
}
