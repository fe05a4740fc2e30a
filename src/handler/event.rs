//! `SecretEvent`: Key Vault's Event Grid events, in the host's JSON protocol (contract §10,
//! "Key Vault events").
//!
//! # What the host sends
//!
//! `SecretEvent/function.json` binds an `eventGridTrigger` named `event` without
//! `cardinality: many`, so the Event Grid extension dispatches each event singly and the host
//! posts `POST /SecretEvent` with
//!
//! ```json
//! {"Data": {"event": <the event>}, "Metadata": {"data": {…the event's data…}, "sys": {"MethodName": "SecretEvent", …}}}
//! ```
//!
//! and the same headers as for the timer (`X-Azure-Functions-InvocationId`, …). Read in:
//! - Azure/azure-sdk-for-net, `sdk/eventgrid/Microsoft.Azure.WebJobs.Extensions.EventGrid/src/`:
//!   `TriggerBinding/HttpRequestProcessor.cs` (answers the subscription handshake itself — the
//!   handler never sees a validation event — and parses a notification body as an array or a
//!   single object), `Config/EventGridExtensionConfigProvider.cs` (`ProcessEventsAsync`: single
//!   dispatch runs the function once per event, waits for every run, and answers Event Grid
//!   `500` when any failed — Event Grid then redelivers — else `202`),
//!   `TriggerBinding/EventGridTriggerAttributeBindingProvider.cs` (the trigger value is a
//!   `JObject`, or a `string` parsed into one; binding data `{"data": <the event's data>}`);
//! - Azure/azure-functions-host, `src/WebJobs.Script/Workers/MessageExtensions/ScriptInvocationContextExtensions.cs`
//!   (`ToHttpScriptInvocationContext`: `Data[<binding>]` is the value as a JSON object when it
//!   converts to one, otherwise its JSON serialisation — a string; an array value, with
//!   cardinality many, would be serialised as well; `Metadata` holds the binding data and `sys`);
//! - the Key Vault event schema (MS Learn, "Azure Key Vault as Event Grid source"; the SDK's
//!   `KeyVaultSecretNearExpiryEventData` and siblings): `eventType`
//!   `Microsoft.KeyVault.SecretNearExpiry` / `SecretExpired` / `SecretNewVersionCreated`,
//!   `subject` the secret name, `data` `{Id, VaultName, ObjectType, ObjectName, Version, NBF,
//!   EXP}` in PascalCase on the wire.
//!
//! So `Data.event` is an object, a string holding its JSON, or an array (one event per element);
//! all three are read. Event Grid waits 30 s for the answer and redelivers (at most 3 deliveries
//! within an hour, as `infra/` subscribes): a redelivery that arrives while the first run is in
//! flight is coalesced into it ([`Engine::run_event`](crate::engine::Engine::run_event)).
//!
//! # What an event does
//!
//! Nothing in an event decides more than which targets to read. A target matches when the
//! event's `Id` parses as `https://<host>[:<port>]/secrets/<name>/<version>` with the vault's
//! host and port and the target's secret name (case-insensitively); without `Id`, `VaultName` is
//! compared with the first label of the vault's host. Each matching target is evaluated once as
//! an unforced run; a near-expiry or expired event also rotates within 30 days of the latest
//! version's `exp` as Key Vault states it. Answers: `200` for an event that is not acted on
//! (another type — logged at info), one for no configured secret (info), a malformed one
//! (error), or runs that all ended well; `500` when a run failed.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};
use url::Url;

use super::{BodyError, State, public};
use crate::config::Target;
use crate::error::Code;
use crate::logging::untrusted as log_safe;

/// The event types acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NearExpiry,
    Expired,
    NewVersion,
}

impl Kind {
    fn from_event_type(t: &str) -> Option<Kind> {
        const PREFIX: &str = "microsoft.keyvault.";
        let t = t.to_ascii_lowercase();
        match t.strip_prefix(PREFIX)? {
            "secretnearexpiry" => Some(Kind::NearExpiry),
            "secretexpired" => Some(Kind::Expired),
            "secretnewversioncreated" => Some(Kind::NewVersion),
            _ => None,
        }
    }

    /// Near-expiry and expired events rotate within 30 days of `exp` (contract §10).
    pub fn near_expiry(self) -> bool {
        matches!(self, Kind::NearExpiry | Kind::Expired)
    }
}

/// Which secret an event concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locator {
    /// From `Id`: the vault's host (lower case) and port, and the secret name.
    Id { host: String, port: u16, name: String },
    /// Without `Id`: `VaultName` and `ObjectName`.
    Vault { vault: String, name: String },
}

/// A Key Vault secret event to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEvent {
    pub kind: Kind,
    /// As the event named it, for the log.
    pub event_type: String,
    pub locator: Locator,
    /// `Id` (or `VaultName/ObjectName`), for the log.
    pub shown: String,
}

/// How one event reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Act(SecretEvent),
    /// Another event type, or an object that is not a secret: logged at info.
    Ignored {
        event_type: String,
        object_type: Option<String>,
    },
    Malformed(String),
}

/// The events of an invocation body: `Data.event` as an object, a string holding the JSON of
/// one (or of an array), or an array (each element an object or such a string). `Err` says why
/// the invocation itself is malformed.
pub fn events(body: &[u8]) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the invocation body is not JSON".to_string())?;
    let event = find_ci(&v, "Data").and_then(|d| find_ci(d, "event")).ok_or("the invocation has no Data.event")?;
    let unwrap_string = |e: &Value| match e {
        Value::String(s) => {
            serde_json::from_str::<Value>(s).map_err(|_| "Data.event is a string that does not hold JSON".to_string())
        }
        other => Ok(other.clone()),
    };
    let out = match unwrap_string(event)? {
        Value::Array(items) => items.iter().map(unwrap_string).collect::<Result<Vec<_>, _>>()?,
        Value::Object(o) => vec![Value::Object(o)],
        _ => return Err("Data.event is neither an event object nor an array of events".to_string()),
    };
    if out.is_empty() {
        return Err("Data.event is an empty array".to_string());
    }
    Ok(out)
}

/// Reads one event (keys case-insensitively, contract §10).
pub fn read(ev: &Value) -> Reading {
    if !ev.is_object() {
        return Reading::Malformed("an event is not a JSON object".to_string());
    }
    // Event Grid schema: `eventType`; CloudEvents 1.0 schema: `type`.
    let Some(event_type) = find_ci(ev, "eventType").or_else(|| find_ci(ev, "type")).and_then(Value::as_str) else {
        return Reading::Malformed("the event has no eventType".to_string());
    };
    let Some(kind) = Kind::from_event_type(event_type) else {
        let object_type = find_ci(ev, "data").and_then(|d| find_ci(d, "ObjectType")).and_then(Value::as_str);
        return Reading::Ignored { event_type: event_type.to_string(), object_type: object_type.map(str::to_string) };
    };
    let data = match find_ci(ev, "data") {
        Some(Value::Object(_)) => find_ci(ev, "data").cloned().unwrap_or_default(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Reading::Malformed(format!("{event_type}: data is not a JSON object")),
        },
        _ => return Reading::Malformed(format!("{event_type}: the event has no data object")),
    };
    let text = |k: &str| -> Result<Option<&str>, String> {
        match find_ci(&data, k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{event_type}: data.{k} is not a string")),
        }
    };
    let (object_type, id, vault_name, object_name) =
        match (text("ObjectType"), text("Id"), text("VaultName"), text("ObjectName")) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
            (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return Reading::Malformed(e),
        };
    let Some(object_type) = object_type else {
        return Reading::Malformed(format!("{event_type}: data has no ObjectType"));
    };
    if !object_type.eq_ignore_ascii_case("Secret") {
        return Reading::Ignored { event_type: event_type.to_string(), object_type: Some(object_type.to_string()) };
    }
    let locator = match id {
        Some(id) => {
            let Some((host, port, name)) = parse_secret_id(id) else {
                return Reading::Malformed(format!(
                    "{event_type}: data.Id {} is not https://<vault host>/secrets/<name>/<version>",
                    log_safe(id)
                ));
            };
            if let Some(object_name) = object_name
                && !object_name.eq_ignore_ascii_case(&name)
            {
                return Reading::Malformed(format!(
                    "{event_type}: data.ObjectName {} differs from the name in data.Id {}",
                    log_safe(object_name),
                    log_safe(id)
                ));
            }
            Locator::Id { host, port, name }
        }
        None => match (vault_name, object_name) {
            (Some(v), Some(n)) if !v.is_empty() && !n.is_empty() => {
                Locator::Vault { vault: v.to_string(), name: n.to_string() }
            }
            _ => {
                return Reading::Malformed(format!(
                    "{event_type}: data has neither Id nor both VaultName and ObjectName"
                ));
            }
        },
    };
    let shown = match (id, vault_name, object_name) {
        (Some(id), ..) => id.to_string(),
        (None, Some(v), Some(n)) => format!("{v}/{n}"),
        _ => String::new(),
    };
    Reading::Act(SecretEvent { kind, event_type: event_type.to_string(), locator, shown })
}

/// `https://<host>[:<port>]/secrets/<name>/<version>` → (host in lower case, port, name). No
/// userinfo, query or fragment; name and version not empty.
pub fn parse_secret_id(id: &str) -> Option<(String, u16, String)> {
    let u = Url::parse(id).ok()?;
    if u.scheme() != "https" || !u.username().is_empty() || u.password().is_some() {
        return None;
    }
    if u.query().is_some() || u.fragment().is_some() {
        return None;
    }
    let host = u.host_str()?.to_ascii_lowercase();
    let port = u.port_or_known_default()?;
    let mut segs: Vec<&str> = u.path_segments()?.collect();
    if segs.last() == Some(&"") {
        segs.pop();
    }
    match segs.as_slice() {
        ["secrets", name, version] if !name.is_empty() && !version.is_empty() => Some((host, port, name.to_string())),
        _ => None,
    }
}

/// Whether `t` holds the secret the event names (contract §10).
pub fn matches(t: &Target, locator: &Locator) -> bool {
    let Ok(vault) = Url::parse(&t.key_vault_url) else { return false };
    let Some(vault_host) = vault.host_str().map(str::to_ascii_lowercase) else { return false };
    match locator {
        Locator::Id { host, port, name } => {
            *host == vault_host
                && Some(*port) == vault.port_or_known_default()
                && name.eq_ignore_ascii_case(&t.secret_name)
        }
        Locator::Vault { vault: v, name } => {
            let first_label = vault_host.split('.').next().unwrap_or_default();
            v.eq_ignore_ascii_case(first_label) && name.eq_ignore_ascii_case(&t.secret_name)
        }
    }
}

/// Property lookup ignoring case (Newtonsoft matches that way; Key Vault's data keys are
/// PascalCase on the wire, the SDK's models camelCase).
fn find_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let o = v.as_object()?;
    o.get(key).or_else(|| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)).filter(|v| !v.is_null())
}

/// `SecretEvent`. The caller runs it inside a span carrying the invocation id.
pub async fn secret_event(body: Result<Vec<u8>, BodyError>, state: &State, invocation_id: &str) -> HttpResponse {
    let engine = match state.engine().await {
        Ok(e) => e,
        Err(ce) => {
            tracing::error!(code = %Code::ConfigInvalid, "SecretEvent answered 500 config_invalid: {}", ce.message);
            let error = public::error_body(Code::ConfigInvalid, invocation_id)["error"].take();
            let logs = [format!("SecretEvent: {}", public::sentence(Code::ConfigInvalid))];
            return host_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null, "error": error }),
            );
        }
    };
    let mut logs: Vec<String> = Vec::new();
    let malformed = |why: &str, logs: &mut Vec<String>| {
        tracing::error!(code = %Code::InvalidRequest, "SecretEvent: malformed event, ignored: {why}");
        logs.push(format!("SecretEvent: malformed event, ignored: {why}"));
    };
    let raw = match body.map_err(|e| match e {
        BodyError::TooLarge => "the invocation body is too large".to_string(),
        BodyError::Read(_) => "the invocation body could not be read".to_string(),
    }) {
        Ok(b) => events(&b),
        Err(e) => Err(e),
    };
    let raw = match raw {
        Ok(r) => r,
        Err(why) => {
            malformed(&why, &mut logs);
            return host_json(StatusCode::OK, json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null }));
        }
    };

    // Each matching target once per invocation; a near-expiry event wins over a new version.
    let mut wanted: Vec<(&Target, bool)> = Vec::new();
    for ev in &raw {
        match read(ev) {
            Reading::Malformed(why) => malformed(&why, &mut logs),
            Reading::Ignored { event_type, object_type } => {
                let line = format!(
                    "SecretEvent: event {} (ObjectType {}) is not acted on: only SecretNearExpiry, SecretExpired and SecretNewVersionCreated of a Secret are",
                    log_safe(&event_type),
                    object_type.as_deref().map(log_safe).unwrap_or_else(|| "none".into())
                );
                tracing::info!("{line}");
                logs.push(line);
            }
            Reading::Act(e) => {
                let targets: Vec<&Target> = engine.config().targets.iter().filter(|t| matches(t, &e.locator)).collect();
                if targets.is_empty() {
                    let line = format!(
                        "SecretEvent: {} for {}: no configured target holds this secret; nothing read",
                        log_safe(&e.event_type),
                        log_safe(&e.shown)
                    );
                    tracing::info!("{line}");
                    logs.push(line);
                    continue;
                }
                for t in targets {
                    tracing::info!(target_name = %t.name, "SecretEvent: {} for {}: evaluating the target", log_safe(&e.event_type), log_safe(&e.shown));
                    match wanted.iter_mut().find(|(w, _)| w.name == t.name) {
                        Some((_, near)) => *near |= e.kind.near_expiry(),
                        None => wanted.push((t, e.kind.near_expiry())),
                    }
                }
            }
        }
    }
    if wanted.is_empty() {
        return host_json(StatusCode::OK, json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null }));
    }

    let budget = engine.config().settings.http_budget;
    let runs = futures::future::join_all(wanted.iter().map(|(t, near)| engine.run_event(t, *near, budget))).await;
    let mut failed: Vec<String> = Vec::new();
    let mut first_code = None;
    for ((t, _), run) in wanted.iter().zip(runs) {
        match run {
            None => {
                let line = format!("{}: coalesced into the event-started run of this target already in flight", t.name);
                tracing::info!(target_name = %t.name, "{line}");
                logs.push(line);
            }
            Some(o) => {
                logs.push(o.log_line());
                if let Some(e) = &o.error {
                    first_code.get_or_insert(e.code);
                    failed.push(format!("{} ({})", o.target, e.code));
                }
            }
        }
    }
    if failed.is_empty() {
        return host_json(StatusCode::OK, json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null }));
    }
    // The host discards the body of a non-2xx answer: this line is what reaches the logs.
    let summary = format!("{} event-started run(s) failed: {}", failed.len(), failed.join(", "));
    tracing::error!("SecretEvent failed: {summary}");
    host_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({ "Outputs": {}, "Logs": logs, "ReturnValue": null,
                "error": { "code": first_code, "message": summary, "invocation_id": invocation_id } }),
    )
}

fn host_json(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `SecretNearExpiry` event as Event Grid delivers it (Event Grid schema; the data keys
    /// PascalCase as Key Vault sends them).
    fn near_expiry() -> Value {
        json!({
            "id": "2f3c1e2a-0d3b-4c1f-9a55-8e2b5d1c7f10",
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-prod",
            "subject": "analytics-pat",
            "eventType": "Microsoft.KeyVault.SecretNearExpiry",
            "eventTime": "2026-11-26T03:00:00.0000000Z",
            "data": {
                "Id": "https://kv-prod.vault.azure.net/secrets/analytics-pat/6a1f0e4b2c3d4e5f8a9b0c1d2e3f4a5b",
                "VaultName": "kv-prod", "ObjectType": "Secret", "ObjectName": "analytics-pat",
                "Version": "6a1f0e4b2c3d4e5f8a9b0c1d2e3f4a5b", "NBF": null, "EXP": 1798700000
            },
            "dataVersion": "1", "metadataVersion": "1"
        })
    }

    fn target(vault: &str, secret: &str) -> Target {
        Target { name: "t".into(), key_vault_url: vault.into(), secret_name: secret.into(), ..Target::default() }
    }

    #[test]
    fn data_event_in_its_three_shapes() {
        let ev = near_expiry();
        let object = json!({ "Data": { "event": ev }, "Metadata": { "data": ev["data"] } });
        let string = json!({ "Data": { "event": ev.to_string() }, "Metadata": {} });
        let array = json!({ "data": { "Event": [ev, ev.to_string()] } });
        assert_eq!(events(object.to_string().as_bytes()).unwrap(), vec![ev.clone()]);
        assert_eq!(events(string.to_string().as_bytes()).unwrap(), vec![ev.clone()]);
        assert_eq!(events(array.to_string().as_bytes()).unwrap(), vec![ev.clone(), ev.clone()]);
        let string_of_array = json!({ "Data": { "event": json!([ev]).to_string() } });
        assert_eq!(events(string_of_array.to_string().as_bytes()).unwrap(), vec![ev.clone()]);
        for bad in [
            "not json".to_string(),
            json!({ "Data": {} }).to_string(),
            json!({ "Data": { "event": "not json" } }).to_string(),
            json!({ "Data": { "event": 5 } }).to_string(),
            json!({ "Data": { "event": [] } }).to_string(),
            json!({ "Data": { "event": ["{"] } }).to_string(),
        ] {
            assert!(events(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn reading_an_event() {
        let ev = near_expiry();
        let Reading::Act(e) = read(&ev) else { panic!("{:?}", read(&ev)) };
        assert_eq!(e.kind, Kind::NearExpiry);
        assert_eq!(
            e.locator,
            Locator::Id { host: "kv-prod.vault.azure.net".into(), port: 443, name: "analytics-pat".into() }
        );
        // Keys and values read case-insensitively; the CloudEvents `type` too.
        let mut lower = json!({ "eventtype": "microsoft.keyvault.secretexpired", "DATA": {
            "id": "https://KV-PROD.vault.azure.net:443/secrets/Analytics-PAT/v1", "objecttype": "secret", "objectname": "ANALYTICS-pat" } });
        assert!(matches!(read(&lower), Reading::Act(SecretEvent { kind: Kind::Expired, .. })), "{:?}", read(&lower));
        lower["type"] = lower["eventtype"].take();
        lower.as_object_mut().unwrap().remove("eventtype");
        assert!(matches!(read(&lower), Reading::Act(SecretEvent { kind: Kind::Expired, .. })));
        // Without Id: VaultName and ObjectName.
        let mut no_id = near_expiry();
        no_id["data"].as_object_mut().unwrap().remove("Id");
        let Reading::Act(e) = read(&no_id) else { panic!() };
        assert_eq!(e.locator, Locator::Vault { vault: "kv-prod".into(), name: "analytics-pat".into() });
        let mut new_version = near_expiry();
        new_version["eventType"] = json!("Microsoft.KeyVault.SecretNewVersionCreated");
        assert!(matches!(read(&new_version), Reading::Act(SecretEvent { kind: Kind::NewVersion, .. })));
        assert!(!Kind::NewVersion.near_expiry() && Kind::Expired.near_expiry() && Kind::NearExpiry.near_expiry());

        // Not acted on: other types, other objects.
        let mut other = near_expiry();
        other["eventType"] = json!("Microsoft.KeyVault.KeyNearExpiry");
        assert!(matches!(read(&other), Reading::Ignored { .. }));
        other["eventType"] = json!("Microsoft.KeyVault.VaultAccessPolicyChanged");
        assert!(matches!(read(&other), Reading::Ignored { .. }));
        let mut certificate = near_expiry();
        certificate["data"]["ObjectType"] = json!("Certificate");
        assert_eq!(
            read(&certificate),
            Reading::Ignored {
                event_type: "Microsoft.KeyVault.SecretNearExpiry".into(),
                object_type: Some("Certificate".into())
            }
        );

        // Malformed.
        let cases: Vec<(Value, &str)> = vec![
            (json!("x"), "not a JSON object"),
            (json!({ "data": {} }), "no eventType"),
            (json!({ "eventType": "Microsoft.KeyVault.SecretExpired" }), "no data"),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "Id": "https://kv.vault.azure.net/secrets/a/1" } }),
                "no ObjectType",
            ),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "ObjectType": "Secret" } }),
                "neither Id",
            ),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "ObjectType": "Secret", "VaultName": "kv" } }),
                "neither Id",
            ),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "ObjectType": "Secret", "Id": 5 } }),
                "not a string",
            ),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "ObjectType": "Secret", "Id": "https://kv.vault.azure.net/keys/a/1" } }),
                "is not https://",
            ),
            (
                json!({ "eventType": "Microsoft.KeyVault.SecretExpired", "data": { "ObjectType": "Secret", "Id": "https://kv.vault.azure.net/secrets/a/1", "ObjectName": "b" } }),
                "differs",
            ),
        ];
        for (ev, why) in cases {
            match read(&ev) {
                Reading::Malformed(m) => assert!(m.contains(why), "{ev}: {m}"),
                other => panic!("{ev}: {other:?}"),
            }
        }
    }

    #[test]
    fn secret_ids() {
        let ok = |s: &str| parse_secret_id(s);
        assert_eq!(ok("https://kv.vault.azure.net/secrets/a/1"), Some(("kv.vault.azure.net".into(), 443, "a".into())));
        assert_eq!(ok("https://127.0.0.1:8443/secrets/a-b/v/"), Some(("127.0.0.1".into(), 8443, "a-b".into())));
        for bad in [
            "http://kv.vault.azure.net/secrets/a/1",
            "https://kv.vault.azure.net/secrets/a",
            "https://kv.vault.azure.net/secrets//1",
            "https://kv.vault.azure.net/secrets/a/1/2",
            "https://kv.vault.azure.net/keys/a/1",
            "https://u:p@kv.vault.azure.net/secrets/a/1",
            "https://kv.vault.azure.net/secrets/a/1?x=1",
            "https://kv.vault.azure.net/secrets/a/1#f",
            "kv.vault.azure.net/secrets/a/1",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
    }

    #[test]
    fn matching_targets() {
        let t = target("https://kv-prod.vault.azure.net", "analytics-pat");
        let id = |h: &str, p: u16, n: &str| Locator::Id { host: h.into(), port: p, name: n.into() };
        assert!(matches(&t, &id("kv-prod.vault.azure.net", 443, "analytics-pat")));
        assert!(matches(&t, &id("kv-prod.vault.azure.net", 443, "ANALYTICS-PAT")));
        assert!(!matches(&t, &id("kv-prod.vault.azure.net", 8443, "analytics-pat")), "another port");
        assert!(!matches(&t, &id("kv-test.vault.azure.net", 443, "analytics-pat")), "another vault");
        assert!(!matches(&t, &id("kv-prod.vault.azure.net", 443, "analytics-pat-2")), "another secret");
        let vault = |v: &str, n: &str| Locator::Vault { vault: v.into(), name: n.into() };
        assert!(matches(&t, &vault("KV-PROD", "analytics-pat")));
        assert!(!matches(&t, &vault("kv-prod.vault.azure.net", "analytics-pat")));
        assert!(!matches(&t, &vault("kv-pro", "analytics-pat")));
        let local = target("https://127.0.0.1:8443", "s");
        assert!(matches(&local, &id("127.0.0.1", 8443, "s")));
        assert!(!matches(&local, &id("127.0.0.1", 443, "s")));
    }

    #[test]
    fn event_strings_reach_logs_escaped_and_cut() {
        // `logging::untrusted`, as every string from outside (contract §10).
        assert_eq!(log_safe("a\nb\u{1b}[31m\tc"), "a\\nb\\u{1b}[31m\\tc");
        let cut = log_safe(&"x".repeat(1000));
        assert_eq!(cut, format!("{}…", "x".repeat(256)));
        assert!(!log_safe(&"\n".repeat(300)).contains('\n'));
    }
}
