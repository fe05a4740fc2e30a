//! Configuration: contract §2, read from environment variables (= Function App settings).
//!
//! Everything is validated up front and every problem is reported at once, each naming the
//! target and field (`targets[2].secret_name: …`) or the flat setting (`PAT_SECRET_NAME: …`), so
//! an operator fixes a bad deployment in one round. Parsing takes a lookup function rather than
//! reading the process environment directly, which keeps it testable and side-effect free.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use url::{Host, Url};

/// One workspace → vault pairing whose PAT this program keeps fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub name: String,
    /// Normalised `scheme://host[:port]`, no trailing slash.
    pub workspace_url: String,
    pub workspace_resource_id: Option<String>,
    /// Normalised `https://host[:port]`, no trailing slash.
    pub key_vault_url: String,
    pub secret_name: String,
    pub lifetime_days: u32,
    pub renew_before_days: u32,
    pub revoke_grace_hours: u32,
    pub scopes: Option<Vec<String>>,
    /// `autoscope_enabled` on token create; `None` sends nothing.
    pub autoscope: Option<bool>,
    /// The app registration whose service principal owns this target's PATs (contract §8),
    /// lower case; `None`: the service's own identity owns them.
    pub client_id: Option<String>,
    /// What the target holds: a PAT, or a service principal's OAuth secret (contract §9).
    pub kind: TargetKind,
    /// The application id of the service principal whose OAuth secret this target holds.
    pub service_principal: Option<String>,
}

/// `kind` of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Pat,
    SpOauthSecret,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Pat => "pat",
            TargetKind::SpOauthSecret => "sp_oauth_secret",
        }
    }
}

impl Target {
    /// `scheme://host` of the workspace, without port, as written into the `databricks-host` tag.
    pub fn workspace_host(&self) -> String {
        Url::parse(&self.workspace_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
    }

    /// Every token this program creates for the target has a comment starting with this.
    pub fn comment_prefix(&self) -> String {
        format!("pat-rotator/{}/", self.name)
    }

    /// Who owns this target's tokens, for tables and messages.
    pub fn owner(&self) -> String {
        match &self.client_id {
            Some(c) => format!("app {c}"),
            None => "service identity".to_string(),
        }
    }
}

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

/// Client-side pacing, so that a large pass stays under the services' documented limits
/// instead of provoking 429s.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pacing {
    /// Key Vault secret writes per vault per 10 s (Key Vault's limit: 300).
    pub kv_writes_per_10s: u32,
    /// Other Key Vault operations per vault per 10 s (Key Vault's limit: 4,000).
    pub kv_reads_per_10s: u32,
    /// Requests per second per Databricks workspace (0 = unpaced).
    pub workspace_rps: u32,
    /// The window the two Key Vault budgets apply to (Key Vault's: 10 s).
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
    pub call_timeout: Duration,
    /// Time budget of one `RotatePat` invocation or CLI `rotate` pass.
    pub timer_budget: Duration,
    /// Time budget of one `ProvisionPat` request (Azure's load balancer cuts HTTP at 230 s).
    pub http_budget: Duration,
    /// Attempts per idempotent call (1 = no retry).
    pub retry_attempts: u32,
    /// First back-off delay; doubles per attempt unless the service says `Retry-After`.
    pub retry_base_delay: Duration,
    pub pacing: Pacing,
    /// `PAT_FORCE_COOLDOWN_MINUTES`: forced ProvisionPat requests inside it are unforced.
    pub force_cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub targets: Vec<Target>,
    pub settings: Settings,
    /// Problems that do not stop the program (ignored or suspicious settings).
    pub warnings: Vec<String>,
}

/// Every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the process environment as the custom handler: host.json (in the working
    /// directory, where the host starts the handler) supplies `functionTimeout` unless the app
    /// setting overrides it.
    pub fn from_env_for_host(host_json: &std::path::Path) -> Result<Config, ConfigError> {
        let from_file = host_json_function_timeout(host_json);
        Config::from_lookup(|k| {
            std::env::var(k).ok().or_else(|| if k == FUNCTION_TIMEOUT_SETTING { from_file.clone() } else { None })
        })
    }

    /// Reads settings through `get`; empty values count as unset (Terraform and
    /// local.settings.json often carry `""` for "not configured").
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut errs = Vec::new();

        let targets = match get("PAT_TARGETS") {
            Some(json) => parse_targets_json(&json, &mut errs),
            None => parse_flat_target(&get, &mut errs).into_iter().collect(),
        };
        check_unique(&targets, &mut errs);
        let settings = parse_settings(&get, &mut errs);
        if let Some(s) = &settings {
            let flat = get("PAT_TARGETS").is_none();
            check_federation(&targets, s, flat, &mut errs);
        }

        if errs.is_empty() {
            Ok(Config { targets, settings: settings.expect("settings parsed without errors"), warnings: Vec::new() })
        } else {
            Err(ConfigError(errs))
        }
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// Azure's load balancer ends any HTTP request after 230 s.
const AZURE_HTTP_LIMIT_SECS: u64 = 230;
/// The app setting that overrides host.json's `functionTimeout` (the host reads
/// `AzureFunctionsJobHost__*` as host.json values); `serve` also fills it from host.json.
pub const FUNCTION_TIMEOUT_SETTING: &str = "AzureFunctionsJobHost__functionTimeout";
/// The longest wait between two attempts (`RetryPolicy::max_delay`).
pub const MAX_RETRY_WAIT_SECS: u64 = 30;
/// `rotation::rules::ORPHAN_WINDOW`, in seconds.
const ORPHAN_WINDOW_SECS: u64 = 3_600;

/// A .NET time span as host.json writes it (`[d.]hh:mm:ss`); `Some(None)` for `-1` (no limit).
fn parse_timespan(s: &str) -> Option<Option<Duration>> {
    let s = s.trim();
    if s == "-1" {
        return Some(None);
    }
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse::<u64>().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = parts[..] else { return None };
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(Some(Duration::from_secs(((days * 24 + h) * 60 + m) * 60 + sec)))
}

/// host.json's `functionTimeout`, if the file is readable and has one.
pub fn host_json_function_timeout(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("functionTimeout")?.as_str().map(str::to_string)
}

const DEFAULT_LIFETIME_DAYS: u32 = 90;
const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;
const DEFAULT_GRACE_HOURS: u32 = 24;
const TARGET_FIELDS: &[&str] = &[
    "name",
    "workspace_url",
    "workspace_resource_id",
    "key_vault_url",
    "secret_name",
    "lifetime_days",
    "renew_before_days",
    "revoke_grace_hours",
    "scopes",
    "autoscope",
    "client_id",
    "kind",
    "service_principal",
];

fn parse_targets_json(json: &str, errs: &mut Vec<String>) -> Vec<Target> {
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            errs.push(format!("PAT_TARGETS: not valid JSON ({e})"));
            return Vec::new();
        }
    };
    let Value::Array(items) = value else {
        errs.push("PAT_TARGETS: must be a JSON array of target objects".into());
        return Vec::new();
    };
    if items.is_empty() {
        errs.push("PAT_TARGETS: the array is empty; configure at least one target".into());
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("targets[{i}]");
        let Value::Object(obj) = item else {
            errs.push(format!("{at}: must be a JSON object"));
            continue;
        };
        for key in obj.keys() {
            if !TARGET_FIELDS.contains(&key.as_str()) {
                errs.push(format!("{at}: unknown field \"{key}\" (known fields: {})", TARGET_FIELDS.join(", ")));
            }
        }
        let before = errs.len();
        let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let name = json_string(field("name"), &format!("{at}.name"), errs);
        let t = build_target(
            RawTarget {
                name,
                workspace_url: json_string(field("workspace_url"), &format!("{at}.workspace_url"), errs),
                workspace_resource_id: json_string(
                    field("workspace_resource_id"),
                    &format!("{at}.workspace_resource_id"),
                    errs,
                ),
                key_vault_url: json_string(field("key_vault_url"), &format!("{at}.key_vault_url"), errs),
                secret_name: json_string(field("secret_name"), &format!("{at}.secret_name"), errs),
                lifetime_days: json_int(field("lifetime_days"), &format!("{at}.lifetime_days"), errs),
                renew_before_days: json_int(field("renew_before_days"), &format!("{at}.renew_before_days"), errs),
                revoke_grace_hours: json_int(field("revoke_grace_hours"), &format!("{at}.revoke_grace_hours"), errs),
                scopes: json_scopes(field("scopes"), &format!("{at}.scopes"), errs),
                autoscope: json_bool(field("autoscope"), &format!("{at}.autoscope"), errs),
                client_id: json_string(field("client_id"), &format!("{at}.client_id"), errs),
                kind: json_string(field("kind"), &format!("{at}.kind"), errs),
                service_principal: json_string(field("service_principal"), &format!("{at}.service_principal"), errs),
            },
            &|f| format!("{at}.{f}"),
            errs,
        );
        if errs.len() == before {
            out.extend(t);
        }
    }
    out
}

fn parse_flat_target(get: &impl Fn(&str) -> Option<String>, errs: &mut Vec<String>) -> Option<Target> {
    let key_vault_url = match (get("KEY_VAULT_URL"), get("KEY_VAULT_NAME")) {
        (Some(url), _) => Some(url),
        (None, Some(name)) => {
            if valid_vault_name(&name) {
                Some(format!("https://{name}.vault.azure.net"))
            } else {
                errs.push(format!(
                    "KEY_VAULT_NAME: \"{name}\" is not a valid Key Vault name (3-24 letters, digits and hyphens, starting with a letter)"
                ));
                return None;
            }
        }
        (None, None) => None,
    };
    let int = |k: &str, errs: &mut Vec<String>| {
        get(k).and_then(|v| match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(format!("{k}: \"{v}\" is not an integer"));
                None
            }
        })
    };
    let scopes = get("PAT_SCOPES")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect::<Vec<_>>());
    let autoscope = get("PAT_AUTOSCOPE").and_then(|v| match parse_bool(&v) {
        Some(b) => Some(b),
        None => {
            errs.push(format!("PAT_AUTOSCOPE: \"{v}\" must be true or false"));
            None
        }
    });
    let raw = RawTarget {
        name: Some("default".into()),
        workspace_url: get("DATABRICKS_HOST"),
        workspace_resource_id: get("DATABRICKS_WORKSPACE_RESOURCE_ID"),
        key_vault_url,
        secret_name: Some(get("PAT_SECRET_NAME").unwrap_or_else(|| "databricks-pat".into())),
        lifetime_days: int("PAT_LIFETIME_DAYS", errs),
        renew_before_days: int("PAT_RENEW_BEFORE_DAYS", errs),
        revoke_grace_hours: int("PAT_REVOKE_GRACE_HOURS", errs),
        scopes,
        autoscope,
        client_id: get("PAT_CLIENT_ID"),
        kind: get("PAT_KIND"),
        service_principal: get("PAT_SERVICE_PRINCIPAL"),
    };
    let flat_name = |f: &str| {
        match f {
            "name" => "PAT_TARGETS",
            "workspace_url" => "DATABRICKS_HOST",
            "workspace_resource_id" => "DATABRICKS_WORKSPACE_RESOURCE_ID",
            "key_vault_url" => "KEY_VAULT_URL",
            "secret_name" => "PAT_SECRET_NAME",
            "lifetime_days" => "PAT_LIFETIME_DAYS",
            "renew_before_days" => "PAT_RENEW_BEFORE_DAYS",
            "revoke_grace_hours" => "PAT_REVOKE_GRACE_HOURS",
            "scopes" => "PAT_SCOPES",
            "autoscope" => "PAT_AUTOSCOPE",
            "client_id" => "PAT_CLIENT_ID",
            "kind" => "PAT_KIND",
            "service_principal" => "PAT_SERVICE_PRINCIPAL",
            other => other,
        }
        .to_string()
    };
    let before = errs.len();
    let t = build_target(raw, &flat_name, errs);
    if errs.len() == before {
        t
    } else {
        if get("DATABRICKS_HOST").is_none() && get("KEY_VAULT_URL").is_none() && get("KEY_VAULT_NAME").is_none() {
            errs.push(
                "no targets configured: set PAT_TARGETS (JSON array) or DATABRICKS_HOST and KEY_VAULT_URL".into(),
            );
        }
        None
    }
}

struct RawTarget {
    name: Option<String>,
    workspace_url: Option<String>,
    workspace_resource_id: Option<String>,
    key_vault_url: Option<String>,
    secret_name: Option<String>,
    lifetime_days: Option<i64>,
    renew_before_days: Option<i64>,
    revoke_grace_hours: Option<i64>,
    scopes: Option<Vec<String>>,
    autoscope: Option<bool>,
    client_id: Option<String>,
    kind: Option<String>,
    service_principal: Option<String>,
}

fn build_target(raw: RawTarget, at: &dyn Fn(&str) -> String, errs: &mut Vec<String>) -> Option<Target> {
    let before = errs.len();
    let name = match raw.name {
        None => {
            errs.push(format!("{}: is required", at("name")));
            String::new()
        }
        Some(n) if !valid_target_name(&n) => {
            errs.push(format!(
                "{}: \"{n}\" is not a valid target name (lowercase letters, digits and hyphens, 1-63 characters, not starting with a hyphen)",
                at("name")
            ));
            String::new()
        }
        Some(n) => n,
    };
    let workspace_url = match raw.workspace_url {
        None => {
            errs.push(format!("{}: is required", at("workspace_url")));
            String::new()
        }
        Some(u) => match normalize_workspace_url(&u) {
            Ok(u) => u,
            Err(why) => {
                errs.push(format!("{}: \"{u}\" {why}", at("workspace_url")));
                String::new()
            }
        },
    };
    let workspace_resource_id = raw.workspace_resource_id.and_then(|id| {
        if valid_workspace_resource_id(&id) {
            Some(id)
        } else {
            errs.push(format!(
                "{}: \"{id}\" is not the ARM id of a Microsoft.Databricks/workspaces resource (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Databricks/workspaces/<name>)",
                at("workspace_resource_id")
            ));
            None
        }
    });
    let key_vault_url = match raw.key_vault_url {
        None => {
            errs.push(format!("{}: is required", at("key_vault_url")));
            String::new()
        }
        Some(u) => match normalize_vault_url(&u) {
            Ok(u) => u,
            Err(why) => {
                errs.push(format!("{}: \"{u}\" {why}", at("key_vault_url")));
                String::new()
            }
        },
    };
    let secret_name = match raw.secret_name {
        None => {
            errs.push(format!("{}: is required", at("secret_name")));
            String::new()
        }
        Some(s) if !valid_secret_name(&s) => {
            errs.push(format!(
                "{}: \"{s}\" is not a valid Key Vault secret name (1-127 letters, digits and hyphens)",
                at("secret_name")
            ));
            String::new()
        }
        Some(s) => s,
    };
    let lifetime_days = raw.lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS as i64);
    if !(1..=730).contains(&lifetime_days) {
        errs.push(format!("{}: {lifetime_days} is out of range (1..=730)", at("lifetime_days")));
    }
    let renew_set = raw.renew_before_days.is_some();
    let renew_before_days = raw.renew_before_days.unwrap_or(DEFAULT_RENEW_BEFORE_DAYS as i64);
    if renew_before_days <= 0 || renew_before_days >= lifetime_days {
        let default_note = if renew_set { "" } else { " (the default is 30; set it explicitly)" };
        errs.push(format!(
            "{}: {renew_before_days} must be greater than 0 and less than lifetime_days ({lifetime_days}){default_note}",
            at("renew_before_days")
        ));
    }
    let revoke_grace_hours = raw.revoke_grace_hours.unwrap_or(DEFAULT_GRACE_HOURS as i64);
    if !(0..=720).contains(&revoke_grace_hours) {
        errs.push(format!("{}: {revoke_grace_hours} is out of range (0..=720)", at("revoke_grace_hours")));
    }
    let scopes = raw.scopes.and_then(|scopes| {
        for s in &scopes {
            if s.is_empty() || s.len() > 200 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errs.push(format!("{}: \"{s}\" is not a valid token scope", at("scopes")));
            }
        }
        if scopes.is_empty() { None } else { Some(scopes) }
    });
    let client_id = raw.client_id.and_then(|c| {
        if is_guid(&c) {
            Some(c.to_ascii_lowercase())
        } else {
            errs.push(format!(
                "{}: \"{c}\" is not a GUID (the application (client) id of an Entra app registration)",
                at("client_id")
            ));
            None
        }
    });
    let kind = match raw.kind.as_deref() {
        None | Some("pat") => TargetKind::Pat,
        Some("sp_oauth_secret") => TargetKind::SpOauthSecret,
        Some(other) => {
            errs.push(format!("{}: \"{other}\" must be pat or sp_oauth_secret", at("kind")));
            TargetKind::Pat
        }
    };
    let service_principal = match (kind, raw.service_principal) {
        (TargetKind::SpOauthSecret, None) => {
            errs.push(format!("{}: is required with kind sp_oauth_secret", at("service_principal")));
            None
        }
        (TargetKind::Pat, Some(_)) => {
            errs.push(format!("{}: is only for kind sp_oauth_secret", at("service_principal")));
            None
        }
        (_, Some(sp)) if !is_guid(&sp) => {
            errs.push(format!(
                "{}: \"{sp}\" is not a GUID (the service principal's application id)",
                at("service_principal")
            ));
            None
        }
        (_, sp) => sp.map(|s| s.to_ascii_lowercase()),
    };
    if kind == TargetKind::SpOauthSecret {
        for (f, set) in
            [("scopes", scopes.is_some()), ("autoscope", raw.autoscope.is_some()), ("client_id", client_id.is_some())]
        {
            if set {
                errs.push(format!("{}: is not allowed with kind sp_oauth_secret", at(f)));
            }
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(Target {
        name,
        workspace_url,
        workspace_resource_id,
        key_vault_url,
        secret_name,
        lifetime_days: lifetime_days as u32,
        renew_before_days: renew_before_days as u32,
        revoke_grace_hours: revoke_grace_hours as u32,
        scopes,
        autoscope: raw.autoscope,
        client_id,
        kind,
        service_principal,
    })
}

fn check_unique(targets: &[Target], errs: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut secrets: BTreeMap<(String, String), &str> = BTreeMap::new();
    for (i, t) in targets.iter().enumerate() {
        if !names.insert(t.name.as_str()) {
            errs.push(format!("targets[{i}].name: \"{}\" is used by more than one target", t.name));
        }
        let key = (t.key_vault_url.to_ascii_lowercase(), t.secret_name.to_ascii_lowercase());
        if let Some(other) = secrets.insert(key, &t.name) {
            errs.push(format!(
                "targets[{i}].secret_name: \"{}\" in {} is already the secret of target \"{other}\"",
                t.secret_name, t.key_vault_url
            ));
        }
    }
}

/// Contract §8: a target with `client_id` needs a tenant and a credential that can present a
/// federated assertion (a managed-identity token, or the workload identity's token file).
fn check_federation(targets: &[Target], s: &Settings, flat: bool, errs: &mut Vec<String>) {
    for (i, t) in targets.iter().enumerate() {
        let Some(c) = &t.client_id else { continue };
        let at = if flat { "PAT_CLIENT_ID".to_string() } else { format!("targets[{i}].client_id") };
        if s.tenant_id.is_none() {
            errs.push(format!(
                "{at}: \"{c}\" requires AZURE_TENANT_ID (the tenant of the app registration, where the federated exchange happens)"
            ));
        }
        if !s.credential.can_federate() {
            errs.push(format!(
                "{at}: \"{c}\" requires PAT_CREDENTIAL managed_identity or workload_identity (a credential that can present a federated assertion); the credential is {}",
                s.credential.as_str()
            ));
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in either case.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn parse_settings(get: &impl Fn(&str) -> Option<String>, errs: &mut Vec<String>) -> Option<Settings> {
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
                "PAT_CREDENTIAL: \"{other}\" is not one of auto, managed_identity, azure_cli, client_secret, workload_identity"
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
    if let Some(h) = get("AZURE_AUTHORITY_HOST")
        && (!h.starts_with("https://") || Url::parse(&h).is_err())
    {
        errs.push(format!("AZURE_AUTHORITY_HOST: \"{h}\" must be an https:// URL"));
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
        workspace_rps: num("PAT_WORKSPACE_RPS", 30, 0..=100_000) as u32,
        kv_window: Duration::from_millis(num("PAT_KV_WINDOW_MS", 10_000, 100..=600_000)),
    };
    let retry_base_delay = Duration::from_millis(num("PAT_RETRY_BASE_DELAY_MS", 500, 1..=60_000));
    let force_cooldown = Duration::from_secs(num("PAT_FORCE_COOLDOWN_MINUTES", 15, 0..=1440) * 60);
    if let Some(v) = get(FUNCTION_TIMEOUT_SETTING) {
        match parse_timespan(&v) {
            Some(None) => {}
            Some(Some(limit)) if timer_budget > limit => errs.push(format!(
                "PAT_TIMER_BUDGET_SECONDS: {} s is beyond the Functions host's functionTimeout ({v} = {} s); the host would kill the invocation first",
                timer_budget.as_secs(),
                limit.as_secs()
            )),
            Some(Some(_)) => {}
            None => errs.push(format!("{FUNCTION_TIMEOUT_SETTING}: \"{v}\" is not a time span like 00:10:00")),
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
        pacing,
        force_cooldown,
    })
}

fn json_string(v: Option<&Value>, at: &str, errs: &mut Vec<String>) -> Option<String> {
    match v {
        None => None,
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() { None } else { Some(s.to_string()) }
        }
        Some(other) => {
            errs.push(format!("{at}: must be a string, got {}", kind(other)));
            None
        }
    }
}

fn json_int(v: Option<&Value>, at: &str, errs: &mut Vec<String>) -> Option<i64> {
    match v {
        None => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Some(i),
            None => {
                errs.push(format!("{at}: {n} is not an integer"));
                None
            }
        },
        // Terraform and hand-written settings sometimes quote numbers.
        Some(Value::String(s)) => match s.trim().parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                errs.push(format!("{at}: \"{s}\" is not an integer"));
                None
            }
        },
        Some(other) => {
            errs.push(format!("{at}: must be an integer, got {}", kind(other)));
            None
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn json_bool(v: Option<&Value>, at: &str, errs: &mut Vec<String>) -> Option<bool> {
    match v {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        // Terraform's jsonencode of a string variable, or a hand-written setting.
        Some(Value::String(s)) => match parse_bool(s) {
            Some(b) => Some(b),
            None => {
                errs.push(format!("{at}: \"{s}\" must be true or false"));
                None
            }
        },
        Some(other) => {
            errs.push(format!("{at}: must be a boolean, got {}", kind(other)));
            None
        }
    }
}

fn json_scopes(v: Option<&Value>, at: &str, errs: &mut Vec<String>) -> Option<Vec<String>> {
    match v {
        None => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.push(s.trim().to_string()),
                    other => errs.push(format!("{at}: every scope must be a string, got {}", kind(other))),
                }
            }
            Some(out)
        }
        Some(Value::String(s)) => Some(s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()),
        Some(other) => {
            errs.push(format!("{at}: must be an array of strings, got {}", kind(other)));
            None
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn valid_target_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub fn valid_secret_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

fn valid_vault_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=24).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

fn valid_workspace_resource_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 9
        && parts[0].is_empty()
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && !parts[2].is_empty()
        && parts[3].eq_ignore_ascii_case("resourceGroups")
        && !parts[4].is_empty()
        && parts[5].eq_ignore_ascii_case("providers")
        && parts[6].eq_ignore_ascii_case("Microsoft.Databricks")
        && parts[7].eq_ignore_ascii_case("workspaces")
        && !parts[8].is_empty()
        && s.chars().all(|c| !c.is_whitespace() && c != '?' && c != '#')
}

/// True for the hosts that only local emulators use: 127.0.0.0/8, ::1, localhost.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

pub fn url_is_loopback(url: &str) -> bool {
    Url::parse(url).ok().and_then(|u| u.host().map(|h| is_loopback_host(&h))).unwrap_or(false)
}

fn base_url(input: &str, allow_http_loopback: bool) -> Result<String, String> {
    let with_scheme = if input.contains("://") { input.to_string() } else { format!("https://{input}") };
    let url = Url::parse(&with_scheme).map_err(|e| format!("is not a valid URL ({e})"))?;
    let host = url.host().ok_or_else(|| "has no host".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http_loopback && is_loopback_host(&host) => {}
        "http" if allow_http_loopback => {
            return Err("must use https:// (http:// is only allowed for loopback emulators)".into());
        }
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err("must not have a path".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    Ok(s)
}

/// The DNS suffixes of Azure Databricks workspace hosts (public, US Government, China clouds).
/// Entra ID tokens for Azure Databricks are sent to the workspace, so nothing else may be one.
pub const DATABRICKS_HOST_SUFFIXES: &[&str] = &[".azuredatabricks.net", ".databricks.azure.us", ".databricks.azure.cn"];

pub fn normalize_workspace_url(input: &str) -> Result<String, String> {
    let url = base_url(input, true)?;
    let parsed = Url::parse(&url).map_err(|e| format!("is not a valid URL ({e})"))?;
    let loopback = parsed.host().is_some_and(|h| is_loopback_host(&h));
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let databricks = DATABRICKS_HOST_SUFFIXES.iter().any(|s| host.ends_with(s) && host.len() > s.len());
    if !loopback && !databricks {
        return Err(format!(
            "is not an Azure Databricks workspace host (one ending in {}, or loopback for emulators); Entra ID tokens are sent to it",
            DATABRICKS_HOST_SUFFIXES.join(", ")
        ));
    }
    Ok(url)
}

pub fn normalize_vault_url(input: &str) -> Result<String, String> {
    if input.starts_with("http://") {
        return Err("must be an https:// URL (Key Vault requires TLS, also for emulators)".into());
    }
    base_url(input, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn flat_form_builds_default_target() {
        let c = cfg(&[("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net"), ("KEY_VAULT_NAME", "my-vault")]).unwrap();
        let t = &c.targets[0];
        assert_eq!(t.name, "default");
        assert_eq!(t.workspace_url, "https://adb-1.2.azuredatabricks.net");
        assert_eq!(t.key_vault_url, "https://my-vault.vault.azure.net");
        assert_eq!(t.secret_name, "databricks-pat");
        assert_eq!((t.lifetime_days, t.renew_before_days, t.revoke_grace_hours), (90, 30, 24));
        assert_eq!(c.settings.credential, CredentialKind::AzureCli);
        assert_eq!(c.settings.max_concurrency, 8);
    }

    #[test]
    fn json_errors_name_target_and_field() {
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"ok"},
                {"name":"b","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"s2"},
                {"name":"c","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"my_secret"}]"#,
        )])
        .unwrap_err();
        assert_eq!(
            e.0,
            vec![
                "targets[2].secret_name: \"my_secret\" is not a valid Key Vault secret name (1-127 letters, digits and hyphens)"
            ]
        );
    }

    #[test]
    fn rejects_http_workspace_except_loopback() {
        assert!(normalize_workspace_url("http://adb.example.net").is_err());
        assert_eq!(normalize_workspace_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert!(normalize_vault_url("http://127.0.0.1:8443").is_err());
        assert_eq!(normalize_vault_url("https://127.0.0.1:8443").unwrap(), "https://127.0.0.1:8443");
        assert!(normalize_workspace_url("https://host/path").is_err());
        assert!(normalize_workspace_url("https://user:pw@host").is_err());
    }

    #[test]
    fn renew_must_be_below_lifetime() {
        let e = cfg(&[
            ("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"),
            ("KEY_VAULT_URL", "https://v.vault.azure.net"),
            ("PAT_LIFETIME_DAYS", "14"),
        ])
        .unwrap_err();
        assert!(
            e.0[0].starts_with("PAT_RENEW_BEFORE_DAYS: 30 must be greater than 0 and less than lifetime_days (14)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types() {
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":1,"key_vault_url":"https://v","secret_name":"s","lifetime":3}]"#,
        )])
        .unwrap_err();
        assert!(e.0.iter().any(|m| m.contains("unknown field \"lifetime\"")), "{e}");
        assert!(e.0.iter().any(|m| m.contains("targets[0].workspace_url: must be a string, got a number")), "{e}");
    }

    #[test]
    fn duplicate_names_and_secrets() {
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"s"},
                {"name":"a","workspace_url":"https://adb-2.2.azuredatabricks.net","key_vault_url":"https://V/","secret_name":"S"}]"#,
        )])
        .unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
    }

    #[test]
    fn auto_credential_selection() {
        let base = [("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_URL", "https://v")];
        let pick = |extra: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            cfg(&v).unwrap().settings.credential
        };
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
    fn client_id_is_a_lowercased_guid() {
        let mi = [
            ("IDENTITY_ENDPOINT", "http://127.0.0.1/x"),
            ("IDENTITY_HEADER", "h"),
            ("AZURE_TENANT_ID", "7d5c2a9e-4b1f-4c3a-9e8d-6f0a1b2c3d4e"),
            ("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net"),
            ("KEY_VAULT_URL", "https://v.vault.azure.net"),
        ];
        let mut v = mi.to_vec();
        v.push(("PAT_CLIENT_ID", "0A1B2C3D-0000-4000-8000-00000000ABCD"));
        assert_eq!(cfg(&v).unwrap().targets[0].client_id.as_deref(), Some("0a1b2c3d-0000-4000-8000-00000000abcd"));
        let mut v = mi.to_vec();
        v.push(("PAT_CLIENT_ID", "my-app"));
        let e = cfg(&v).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with("PAT_CLIENT_ID: \"my-app\" is not a GUID"), "{e}");
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":"https://adb-1.2.azuredatabricks.net","key_vault_url":"https://v.vault.azure.net","secret_name":"s","client_id":"0a1b2c3d-0000-4000-8000-00000000abcd"}]"#,
        )])
        .unwrap_err();
        assert!(e.0.iter().any(|m| m.starts_with("targets[0].client_id:") && m.contains("AZURE_TENANT_ID")), "{e}");
        assert!(
            e.0.iter().any(|m| m.starts_with("targets[0].client_id:") && m.contains("the credential is azure_cli")),
            "{e}"
        );
    }

    #[test]
    fn guid_shape() {
        assert!(is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"));
        assert!(!is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1"));
        assert!(!is_guid("2ff814a633044ab885cbcd0e6f879c1d0000"));
        assert!(!is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1g"));
    }

    #[test]
    fn resource_id_shape() {
        assert!(valid_workspace_resource_id(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws"
        ));
        assert!(!valid_workspace_resource_id(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x"
        ));
    }

    #[test]
    fn workspace_hosts_are_azure_databricks_or_loopback() {
        for ok in [
            "adb-1.2.azuredatabricks.net",
            "https://x.databricks.azure.us",
            "x.databricks.azure.cn",
            "http://127.0.0.1:8080",
            "http://localhost:1",
        ] {
            assert!(normalize_workspace_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example.com",
            "https://azuredatabricks.net",
            "https://adb.azuredatabricks.net.evil.com",
            "https://10.0.0.1",
        ] {
            let e = normalize_workspace_url(bad).unwrap_err();
            assert!(e.contains("not an Azure Databricks workspace host"), "{bad}: {e}");
        }
    }

    #[test]
    fn budgets_that_contradict_the_platform() {
        let base = [("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_URL", "https://v")];
        let with = |extra: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            cfg(&v).err().map(|e| e.to_string()).unwrap_or_default()
        };
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
    fn autoscope_is_a_boolean() {
        let base = [("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_URL", "https://v")];
        let mut v = base.to_vec();
        v.push(("PAT_AUTOSCOPE", "false"));
        assert_eq!(cfg(&v).unwrap().targets[0].autoscope, Some(false));
        assert_eq!(cfg(&base).unwrap().targets[0].autoscope, None);
        v.pop();
        v.push(("PAT_AUTOSCOPE", "yes"));
        assert!(cfg(&v).unwrap_err().to_string().contains("PAT_AUTOSCOPE"));
    }
}
