//! Service-wide settings (contract §2 "Service-wide settings", and the README's tuning table).
//!
//! Unlike target fields these are read once per process, not per target, and several of them
//! bound each other or the platform: a budget beyond what Azure or the Functions host allows
//! would never run out, and a retry schedule beyond the orphan window would let another run
//! revoke a token this one is still about to record. Those contradictions are configuration
//! errors here, not surprises at run time.
//!
//! Durations serialise as integer seconds in keys ending `_seconds` (contract §1,
//! `check-config --json`); the two settings configured in milliseconds also show their exact
//! value in a key ending `_ms`, since a 500 ms delay is 0 in whole seconds.

use crate::logging::untrusted;
use std::time::Duration;

use serde::{Serialize, Serializer};
use url::Url;

use super::fields::Lookup;
use super::host_json::{FUNCTION_TIMEOUT_SETTING, parse_timespan};
use super::urls::shown;

/// How to obtain Entra ID tokens (`PAT_CREDENTIAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ManagedIdentity,
    AzureCli,
    ClientSecret,
    WorkloadIdentity,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ManagedIdentity => "managed_identity",
            CredentialKind::AzureCli => "azure_cli",
            CredentialKind::ClientSecret => "client_secret",
            CredentialKind::WorkloadIdentity => "workload_identity",
        }
    }

    /// Whether this credential can present a client assertion for a federated exchange
    /// (contract §8): a managed-identity token, or the workload identity's token file.
    pub fn can_federate(self) -> bool {
        matches!(self, CredentialKind::ManagedIdentity | CredentialKind::WorkloadIdentity)
    }
}

/// The shape of log lines (`PAT_LOG_FORMAT`). Parsed and validated here so a typo is a
/// configuration error like any other; the logging module decides what each shape looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    pub fn from_name(s: &str) -> Option<LogFormat> {
        LogFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// Client-side pacing, so that a large pass stays under the services' documented limits
/// instead of provoking 429s.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pacing {
    /// Key Vault secret writes per vault per 10 s (Key Vault's limit: 300).
    pub kv_writes_per_10s: u32,
    /// Other Key Vault operations per vault per 10 s (Key Vault's limit: 4,000).
    pub kv_reads_per_10s: u32,
    /// All vaults together are paced to this many times the per-vault budgets
    /// (`PAT_KEYVAULT_FLEET_FACTOR`; Key Vault's subscription-wide limit is 5×).
    pub kv_fleet_factor: u32,
    /// Requests per second per Databricks workspace (0 = unpaced).
    pub workspace_rps: u32,
    /// The window the two Key Vault budgets apply to (Key Vault's: 10 s).
    #[serde(flatten, serialize_with = "kv_window_keys")]
    pub kv_window: Duration,
}

/// Service-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub credential: CredentialKind,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub max_concurrency: usize,
    /// Timeout of one upstream HTTP call.
    #[serde(rename = "call_timeout_seconds", serialize_with = "seconds")]
    pub call_timeout: Duration,
    /// Time budget of one `RotatePat` invocation or CLI `rotate` pass.
    #[serde(rename = "timer_budget_seconds", serialize_with = "seconds")]
    pub timer_budget: Duration,
    /// Time budget of one `ProvisionPat` request (Azure's load balancer cuts HTTP at 230 s).
    #[serde(rename = "http_budget_seconds", serialize_with = "seconds")]
    pub http_budget: Duration,
    /// Attempts per idempotent call (1 = no retry).
    pub retry_attempts: u32,
    /// First back-off delay; doubles per attempt unless the service says `Retry-After`.
    #[serde(flatten, serialize_with = "retry_base_delay_keys")]
    pub retry_base_delay: Duration,
    /// How long after a version was written a forced ProvisionPat is evaluated as an unforced
    /// one (contract §3); zero turns the cooldown off.
    #[serde(rename = "force_cooldown_seconds", serialize_with = "seconds")]
    pub force_cooldown: Duration,
    pub log_format: LogFormat,
    pub pacing: Pacing,
    /// `PAT_SERVICE_OBJECT_ID`: the deployment identity's object id (lower case), against which
    /// `status` judges `rotated_by_another_identity` when someone else runs it (contract §10).
    pub service_object_id: Option<String>,
    /// `PAT_ALLOWED_VAULTS`: the only Key Vault hosts a target may name (lower case; a host,
    /// or a host and port); `None` when unset.
    pub allowed_vaults: Option<Vec<String>>,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// `{<name>_seconds, <name>_ms}` for a duration configured in milliseconds.
fn seconds_and_ms<S: Serializer>(name: &str, d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry(&format!("{name}_seconds"), &d.as_secs())?;
    m.serialize_entry(&format!("{name}_ms"), &(d.as_millis() as u64))?;
    m.end()
}

fn retry_base_delay_keys<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    seconds_and_ms("retry_base_delay", d, s)
}

fn kv_window_keys<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    seconds_and_ms("kv_window", d, s)
}

/// Azure's load balancer ends any HTTP request after 230 s.
const AZURE_HTTP_LIMIT_SECS: u64 = 230;
/// The longest wait between two attempts (`RetryPolicy::max_delay`).
pub const MAX_RETRY_WAIT_SECS: u64 = 30;
/// `rotation::rules::ORPHAN_WINDOW`, in seconds.
const ORPHAN_WINDOW_SECS: u64 = 3_600;

/// Reads every service-wide setting through `get` (empty values already count as unset),
/// pushing each problem onto `errs`; `None` when there was one.
pub(super) fn parse_settings(get: &Lookup, errs: &mut Vec<String>) -> Option<Settings> {
    let before = errs.len();
    let credential = match get("PAT_CREDENTIAL").as_deref().unwrap_or("auto") {
        "auto" => {
            if get("IDENTITY_ENDPOINT").is_some() {
                CredentialKind::ManagedIdentity
            } else if get("AZURE_CLIENT_SECRET").is_some() {
                CredentialKind::ClientSecret
            } else if get("AZURE_FEDERATED_TOKEN_FILE").is_some() {
                CredentialKind::WorkloadIdentity
            } else {
                CredentialKind::AzureCli
            }
        }
        "managed_identity" => CredentialKind::ManagedIdentity,
        "azure_cli" => CredentialKind::AzureCli,
        "client_secret" => CredentialKind::ClientSecret,
        "workload_identity" => CredentialKind::WorkloadIdentity,
        other => {
            errs.push(format!(
                "PAT_CREDENTIAL: \"{}\" is not one of auto, managed_identity, azure_cli, client_secret, workload_identity",
                untrusted(other)
            ));
            CredentialKind::AzureCli
        }
    };
    if credential == CredentialKind::ManagedIdentity
        && get("IDENTITY_ENDPOINT").is_some()
        && get("IDENTITY_HEADER").is_none()
    {
        // The SDK would otherwise fall back to the VM metadata endpoint (169.254.169.254).
        errs.push("IDENTITY_HEADER: is required when IDENTITY_ENDPOINT is set".into());
    }
    let client_id = get("AZURE_CLIENT_ID");
    let tenant_id = get("AZURE_TENANT_ID");
    match credential {
        CredentialKind::ClientSecret => {
            for k in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] {
                if get(k).is_none() {
                    errs.push(format!("{k}: is required when PAT_CREDENTIAL is client_secret"));
                }
            }
        }
        CredentialKind::WorkloadIdentity => {
            for k in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"] {
                if get(k).is_none() {
                    errs.push(format!("{k}: is required when PAT_CREDENTIAL is workload_identity"));
                }
            }
        }
        _ => {}
    }
    if let Some(h) = get("AZURE_AUTHORITY_HOST") {
        // Client secrets and assertions are posted there: https only, and no userinfo, query
        // or fragment, which could only be a credential in the wrong place.
        let ok = Url::parse(&h).is_ok_and(|u| {
            u.scheme() == "https"
                && u.host().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none()
        });
        if !ok {
            errs.push(format!(
                "AZURE_AUTHORITY_HOST: \"{}\" must be an https:// URL without user name, password, query or fragment",
                shown(&h)
            ));
        }
    }
    let mut num = |k: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> u64 {
        match get(k) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    errs.push(format!("{k}: \"{v}\" must be an integer in {}..={}", range.start(), range.end()));
                    default
                }
            },
        }
    };
    let max_concurrency = num("PAT_MAX_CONCURRENCY", 8, 1..=256) as usize;
    let call_timeout = Duration::from_secs(num("PAT_CALL_TIMEOUT_SECONDS", 30, 1..=600));
    let timer_budget = Duration::from_secs(num("PAT_TIMER_BUDGET_SECONDS", 540, 5..=86_400));
    // Azure's front end ends an HTTP request at 230 s whatever the function does.
    let http_budget = Duration::from_secs(num("PAT_HTTP_BUDGET_SECONDS", 200, 5..=AZURE_HTTP_LIMIT_SECS));
    let retry_attempts = num("PAT_RETRY_ATTEMPTS", 5, 1..=20) as u32;
    let pacing = Pacing {
        kv_writes_per_10s: num("PAT_KV_WRITES_PER_10S", 300, 1..=100_000) as u32,
        kv_reads_per_10s: num("PAT_KV_READS_PER_10S", 4_000, 1..=1_000_000) as u32,
        kv_fleet_factor: num("PAT_KEYVAULT_FLEET_FACTOR", 3, 1..=1_000) as u32,
        workspace_rps: num("PAT_WORKSPACE_RPS", 30, 0..=100_000) as u32,
        kv_window: Duration::from_millis(num("PAT_KV_WINDOW_MS", 10_000, 100..=600_000)),
    };
    let retry_base_delay = Duration::from_millis(num("PAT_RETRY_BASE_DELAY_MS", 500, 1..=60_000));
    // A day at most: a longer cooldown would turn ProvisionPat's `force` off in practice.
    let force_cooldown = Duration::from_secs(60 * num("PAT_FORCE_COOLDOWN_MINUTES", 15, 0..=1_440));
    let log_format = match get("PAT_LOG_FORMAT") {
        None => LogFormat::default(),
        Some(v) => LogFormat::from_name(&v).unwrap_or_else(|| {
            let names: Vec<_> = LogFormat::ALL.iter().map(|f| f.as_str()).collect();
            errs.push(format!("PAT_LOG_FORMAT: \"{}\" is not one of {}", untrusted(&v), names.join(", ")));
            LogFormat::default()
        }),
    };
    let service_object_id = get("PAT_SERVICE_OBJECT_ID").map(|v| v.to_ascii_lowercase());
    if let Some(v) = service_object_id.as_deref().filter(|v| !super::names::is_guid(v)) {
        errs.push(format!(
            "PAT_SERVICE_OBJECT_ID: \"{}\" is not a GUID (the object id of the deployment's identity: az identity show --query principalId)",
            v.chars().take(64).collect::<String>().escape_debug()
        ));
    }
    if let Some(v) = get(FUNCTION_TIMEOUT_SETTING) {
        match parse_timespan(&v) {
            Some(None) => {}
            Some(Some(limit)) if timer_budget > limit => errs.push(format!(
                "PAT_TIMER_BUDGET_SECONDS: {} s is beyond the Functions host's functionTimeout ({v} = {} s); the host would kill the invocation first",
                timer_budget.as_secs(),
                limit.as_secs()
            )),
            Some(Some(_)) => {}
            None => errs.push(format!("{FUNCTION_TIMEOUT_SETTING}: \"{}\" is not a time span like 00:10:00", untrusted(&v))),
        }
    }
    // One call, retried to the end, must finish inside the orphan window: a token created before
    // it must be recorded (or deleted) before another run may treat it as an orphan.
    let worst =
        call_timeout.as_secs() * u64::from(retry_attempts) + MAX_RETRY_WAIT_SECS * u64::from(retry_attempts - 1);
    if worst > ORPHAN_WINDOW_SECS {
        errs.push(format!(
            "PAT_CALL_TIMEOUT_SECONDS × PAT_RETRY_ATTEMPTS: {} s × {retry_attempts} attempts (plus up to {MAX_RETRY_WAIT_SECS} s between attempts) can take {worst} s, beyond the one-hour orphan window; lower one of them",
            call_timeout.as_secs()
        ));
    }
    let allowed_vaults = get("PAT_ALLOWED_VAULTS").map(|v| {
        let hosts: Vec<String> =
            v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        for h in &hosts {
            let ok = !h.contains(['/', '@', '?', '#', ' ']) && url::Url::parse(&format!("https://{h}")).is_ok();
            if !ok {
                errs.push(format!(
                    "PAT_ALLOWED_VAULTS: \"{}\" is not a Key Vault host (give host names such as kv.vault.azure.net, comma-separated)",
                    shown(h)
                ));
            }
        }
        if hosts.is_empty() {
            errs.push("PAT_ALLOWED_VAULTS: lists no host; unset it, or name the vault hosts targets may use".into());
        }
        hosts
    });
    if errs.len() != before {
        return None;
    }
    Some(Settings {
        credential,
        client_id,
        tenant_id,
        max_concurrency,
        call_timeout,
        timer_budget,
        http_budget,
        retry_attempts,
        retry_base_delay,
        force_cooldown,
        log_format,
        pacing,
        service_object_id,
        allowed_vaults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let mut errs = Vec::new();
        let s = parse_settings(&|k| map.get(k).map(|v| v.to_string()), &mut errs);
        s.ok_or(errs)
    }

    #[test]
    fn the_service_object_id_is_a_guid_kept_in_lower_case() {
        assert_eq!(parse(&[]).unwrap().service_object_id, None);
        let s = parse(&[("PAT_SERVICE_OBJECT_ID", "3F6C1A52-8E4B-4D7A-9C21-5B0E7F9A1D44")]).unwrap();
        assert_eq!(s.service_object_id.as_deref(), Some("3f6c1a52-8e4b-4d7a-9c21-5b0e7f9a1d44"));
        let e = parse(&[("PAT_SERVICE_OBJECT_ID", "me@example.com")]).unwrap_err();
        assert!(e[0].starts_with("PAT_SERVICE_OBJECT_ID: \"me@example.com\" is not a GUID"), "{e:?}");
    }

    #[test]
    fn auto_credential_selection() {
        let pick = |vars: &[(&str, &str)]| parse(vars).unwrap().credential;
        assert_eq!(
            pick(&[("IDENTITY_ENDPOINT", "http://127.0.0.1/x"), ("IDENTITY_HEADER", "h")]),
            CredentialKind::ManagedIdentity
        );
        assert_eq!(
            pick(&[("AZURE_CLIENT_SECRET", "s"), ("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")]),
            CredentialKind::ClientSecret
        );
        assert_eq!(
            pick(&[("AZURE_FEDERATED_TOKEN_FILE", "/f"), ("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")]),
            CredentialKind::WorkloadIdentity
        );
        assert_eq!(pick(&[]), CredentialKind::AzureCli);
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.max_concurrency, 8);
        assert_eq!(s.force_cooldown, Duration::from_secs(15 * 60));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!((s.call_timeout.as_secs(), s.timer_budget.as_secs(), s.http_budget.as_secs()), (30, 540, 200));
        assert_eq!(s.retry_base_delay, Duration::from_millis(500));
        assert_eq!(s.pacing.kv_window, Duration::from_secs(10));
        assert_eq!(s.pacing.kv_fleet_factor, 3);
        assert_eq!(s.allowed_vaults, None);
    }

    /// Contract §2: the fleet factor is 1..=1000; the allowed vaults are hosts.
    #[test]
    fn fleet_factor_and_allowed_vaults() {
        assert_eq!(parse(&[("PAT_KEYVAULT_FLEET_FACTOR", "1")]).unwrap().pacing.kv_fleet_factor, 1);
        assert_eq!(parse(&[("PAT_KEYVAULT_FLEET_FACTOR", "1000")]).unwrap().pacing.kv_fleet_factor, 1000);
        for bad in ["0", "1001", "2.5", "x"] {
            let e = parse(&[("PAT_KEYVAULT_FLEET_FACTOR", bad)]).unwrap_err();
            assert_eq!(e, [format!("PAT_KEYVAULT_FLEET_FACTOR: \"{bad}\" must be an integer in 1..=1000")]);
        }
        let s = parse(&[("PAT_ALLOWED_VAULTS", " KV1.vault.azure.net, 127.0.0.1:8443 ,")]).unwrap();
        assert_eq!(s.allowed_vaults.unwrap(), ["kv1.vault.azure.net", "127.0.0.1:8443"]);
        for bad in ["https://kv.vault.azure.net", "kv.vault.azure.net/x", "u:p@kv", ",,"] {
            let e = parse(&[("PAT_ALLOWED_VAULTS", bad)]).unwrap_err();
            assert!(e[0].starts_with("PAT_ALLOWED_VAULTS: "), "{bad}: {e:?}");
            assert!(!e[0].contains("u:p"), "{e:?}");
        }
    }

    /// Each setting: (variable, value, accepted?, message fragment when refused).
    #[test]
    fn new_settings_table() {
        let cases: &[(&str, &str, Result<(), &str>)] = &[
            ("PAT_FORCE_COOLDOWN_MINUTES", "0", Ok(())),
            ("PAT_FORCE_COOLDOWN_MINUTES", "1440", Ok(())),
            (
                "PAT_FORCE_COOLDOWN_MINUTES",
                "1441",
                Err("PAT_FORCE_COOLDOWN_MINUTES: \"1441\" must be an integer in 0..=1440"),
            ),
            ("PAT_FORCE_COOLDOWN_MINUTES", "-1", Err("PAT_FORCE_COOLDOWN_MINUTES: \"-1\"")),
            ("PAT_FORCE_COOLDOWN_MINUTES", "15m", Err("PAT_FORCE_COOLDOWN_MINUTES: \"15m\"")),
            ("PAT_LOG_FORMAT", "text", Ok(())),
            ("PAT_LOG_FORMAT", "json", Ok(())),
            ("PAT_LOG_FORMAT", "xml", Err("PAT_LOG_FORMAT: \"xml\" is not one of text, json")),
            ("PAT_LOG_FORMAT", "JSON", Err("PAT_LOG_FORMAT: \"JSON\"")),
        ];
        for (k, v, want) in cases {
            match (parse(&[(k, v)]), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(frag)) => {
                    assert_eq!(e.len(), 1, "{k}={v}: {e:?}");
                    assert!(e[0].starts_with(frag), "{k}={v}: {e:?}");
                }
                (got, want) => panic!("{k}={v}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(parse(&[("PAT_FORCE_COOLDOWN_MINUTES", "0")]).unwrap().force_cooldown, Duration::ZERO);
        assert_eq!(
            parse(&[("PAT_FORCE_COOLDOWN_MINUTES", "1440")]).unwrap().force_cooldown,
            Duration::from_secs(86_400)
        );
        assert_eq!(parse(&[("PAT_LOG_FORMAT", "json")]).unwrap().log_format, LogFormat::Json);
    }

    #[test]
    fn budgets_that_contradict_the_platform() {
        let with = |vars: &[(&str, &str)]| parse(vars).err().map(|e| e.join("; ")).unwrap_or_default();
        assert!(with(&[("PAT_HTTP_BUDGET_SECONDS", "231")]).contains("PAT_HTTP_BUDGET_SECONDS"));
        assert!(with(&[("PAT_HTTP_BUDGET_SECONDS", "230")]).is_empty());
        let e = with(&[(FUNCTION_TIMEOUT_SETTING, "00:05:00")]);
        assert!(e.contains("PAT_TIMER_BUDGET_SECONDS: 540 s is beyond") && e.contains("300 s"), "{e}");
        assert!(with(&[(FUNCTION_TIMEOUT_SETTING, "00:10:00")]).is_empty());
        assert!(with(&[(FUNCTION_TIMEOUT_SETTING, "-1")]).is_empty());
        assert!(with(&[(FUNCTION_TIMEOUT_SETTING, "1.00:00:00"), ("PAT_TIMER_BUDGET_SECONDS", "86400")]).is_empty());
        assert!(with(&[(FUNCTION_TIMEOUT_SETTING, "ten minutes")]).contains("not a time span"));
        let e = with(&[("PAT_CALL_TIMEOUT_SECONDS", "600"), ("PAT_RETRY_ATTEMPTS", "6")]);
        assert!(e.contains("beyond the one-hour orphan window"), "{e}");
        assert!(with(&[("PAT_CALL_TIMEOUT_SECONDS", "600"), ("PAT_RETRY_ATTEMPTS", "5")]).is_empty());
    }

    #[test]
    fn authority_host_is_a_plain_https_url_and_never_echoed_with_credentials() {
        assert!(parse(&[("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]).is_ok());
        assert!(parse(&[("AZURE_AUTHORITY_HOST", "https://127.0.0.1:8443/")]).is_ok());
        for bad in [
            "http://login.example",
            "login.microsoftonline.com",
            "https://u:Zq8vS3cret@login.example",
            "https://login.example/?k=Zq8vS3cret",
        ] {
            let e = parse(&[("AZURE_AUTHORITY_HOST", bad)]).unwrap_err();
            assert!(e[0].starts_with("AZURE_AUTHORITY_HOST: "), "{bad}: {e:?}");
            assert!(!e[0].contains("Zq8vS3cret"), "{bad}: {e:?}");
        }
    }

    /// Contract §1: durations are integer seconds in keys ending `_seconds`; nothing serialises
    /// as serde's `{secs, nanos}`.
    #[test]
    fn serialises_durations_as_integer_seconds() {
        let s = parse(&[("PAT_FORCE_COOLDOWN_MINUTES", "20"), ("PAT_LOG_FORMAT", "json")]).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["call_timeout_seconds"], 30);
        assert_eq!(v["timer_budget_seconds"], 540);
        assert_eq!(v["http_budget_seconds"], 200);
        assert_eq!(v["force_cooldown_seconds"], 1200);
        assert_eq!(v["retry_base_delay_seconds"], 0);
        assert_eq!(v["retry_base_delay_ms"], 500);
        assert_eq!(v["pacing"]["kv_window_seconds"], 10);
        assert_eq!(v["pacing"]["kv_window_ms"], 10_000);
        assert_eq!(v["log_format"], "json");
        assert_eq!(v["credential"], "azure_cli");
        fn walk(v: &serde_json::Value, path: &str) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        assert!(!["secs", "nanos"].contains(&k.as_str()), "{path}.{k}");
                        if k.ends_with("_seconds") || k.ends_with("_ms") {
                            assert!(x.is_u64(), "{path}.{k} = {x}");
                        }
                        walk(x, &format!("{path}.{k}"));
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, path)),
                _ => {}
            }
        }
        walk(&v, "settings");
        for k in ["call_timeout", "timer_budget", "http_budget", "retry_base_delay", "force_cooldown"] {
            assert!(v.get(k).is_none(), "{k} serialised without its unit");
        }
    }
}
