//! Configuration: contract §2, read from environment variables (= Function App settings).
//!
//! Everything is validated up front, before any I/O, and every problem is reported at once,
//! each naming the target and field (`targets[2].secret_name: …`) or the flat setting
//! (`PAT_SECRET_NAME: …`), so an operator fixes a bad deployment in one round. Parsing reads
//! through a lookup function or a list of variables rather than the process environment
//! directly, which keeps it testable and free of side effects.
//!
//! Where each rule lives:
//!
//! - `fields.rs` — THE table of target fields: one row per field (JSON key, flat setting,
//!   parser, rule, default, kinds, where it goes in [`Target`]), and the builder that reads
//!   `PAT_TARGETS` and the flat form off it. Adding a field is a row there plus its
//!   [`Target`] field.
//! - `checks.rs` — rules that relate fields, targets or settings (renewal before the lifetime
//!   ends, §9's fields per kind, unique names and secrets, §8's needs of `client_id`).
//! - `target.rs` — [`Target`] and [`TargetKind`], what the rest of the program uses.
//! - `settings.rs` — service-wide settings ([`Settings`], [`Pacing`], budgets and their limits).
//! - `host_json.rs` — the Functions host's `functionTimeout`, which bounds the timer budget.
//! - `clouds.rs` — [`Cloud`]: public, US Government or China, chosen by the workspace host; its
//!   DNS suffixes and Entra ID audiences.
//! - `urls.rs` — normalising and validating the two URLs, and showing one in a message without a
//!   credential it may carry.
//! - `names.rs` — the shapes of names and ids (secret, vault, target names; GUIDs; ARM ids).
//! - `warnings.rs` — valid but suspicious settings, reported in [`Config::warnings`].

mod checks;
pub mod clouds;
mod fields;
mod host_json;
mod names;
mod settings;
mod target;
mod urls;
mod warnings;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

pub use checks::{PAT_TARGETS_PER_OWNER_REFUSED, PAT_TARGETS_PER_OWNER_WARNED, pat_targets_per_owner};
pub use clouds::{Cloud, DATABRICKS_HOST_SUFFIXES};
pub use host_json::{FUNCTION_TIMEOUT_SETTING, host_json_function_timeout};
pub use names::{is_guid, valid_secret_name, valid_target_name};
pub use settings::{CredentialKind, LogFormat, MAX_RETRY_WAIT_SECS, Pacing, Settings};
pub use target::{Kind, Target, TargetKind};
pub use urls::shown as shown_url;
pub use urls::{is_loopback_host, normalize_blob_url, normalize_vault_url, normalize_workspace_url, url_is_loopback};

use fields::{Lookup, Source};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub targets: Vec<Target>,
    pub settings: Settings,
    /// Valid but probably unintended settings (ignored flat settings, unknown `PAT_*`
    /// variables, a vault outside the workspace's cloud), one line each, for the CLI and the
    /// log. They never stop the program.
    pub warnings: Vec<String>,
    /// Where `targets` came from.
    pub source: TargetsSource,
    /// The settings as read, so that a copy of `PAT_TARGETS_BLOB` can be read against them.
    env: Snapshot,
}

/// Where the targets come from (contract §2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum TargetsSource {
    /// The flat settings: one target named `default`.
    Flat,
    /// `PAT_TARGETS`.
    Setting,
    /// `PAT_TARGETS_FILE`, read with the rest of the configuration.
    File { path: String },
    /// `PAT_TARGETS_BLOB`, read at the start of every invocation and CLI command; `read` says
    /// whether `targets` holds a copy yet.
    Blob { url: String, read: bool },
}

/// The three settings that may give the targets; at most one may be set.
pub const TARGETS_SETTINGS: [&str; 3] = ["PAT_TARGETS", "PAT_TARGETS_FILE", "PAT_TARGETS_BLOB"];
/// The largest targets document read from a file or a blob (contract §2).
pub const MAX_TARGETS_DOCUMENT: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Default)]
struct Snapshot {
    values: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    names: Option<std::sync::Arc<Vec<String>>>,
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
        Config::from_vars(env_vars())
    }

    /// Reads the process environment as the custom handler: host.json (in the working
    /// directory, where the host starts the handler) supplies `functionTimeout` unless the app
    /// setting overrides it.
    pub fn from_env_for_host(host_json: &std::path::Path) -> Result<Config, ConfigError> {
        let mut vars = env_vars();
        if !vars.iter().any(|(k, _)| k == FUNCTION_TIMEOUT_SETTING)
            && let Some(timeout) = host_json_function_timeout(host_json)
        {
            vars.push((FUNCTION_TIMEOUT_SETTING.to_string(), timeout));
        }
        Config::from_vars(vars)
    }

    /// Reads these variables (the later of two with one name wins). Knowing every name set
    /// lets it warn about unknown `PAT_*` variables.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let map: std::collections::BTreeMap<String, String> = vars.into_iter().collect();
        let names: Vec<String> = map.keys().cloned().collect();
        parse(&|k| map.get(k).cloned(), Some(&names), None)
    }

    /// Reads settings through `get`. Without the list of names, unknown `PAT_*` variables
    /// cannot be noticed; everything else is as [`Config::from_vars`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        parse(&get, None, None)
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The blob the targets come from, when they come from one (`PAT_TARGETS_BLOB`).
    pub fn blob(&self) -> Option<&str> {
        match &self.source {
            TargetsSource::Blob { url, .. } => Some(url),
            _ => None,
        }
    }

    /// This configuration with the targets of `document`, a copy of `PAT_TARGETS_BLOB`, checked
    /// as any other targets are (and named `PAT_TARGETS_BLOB` in messages).
    pub fn with_blob(&self, document: &str) -> Result<Config, ConfigError> {
        let values = self.env.values.clone();
        parse(&|k| values.get(k).cloned(), self.env.names.as_deref().map(Vec::as_slice), Some(document))
    }
}

/// The environment, skipping variables that are not Unicode (as `std::env::var` would).
fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// Reads a targets file (`PAT_TARGETS_FILE`): a path relative to the working directory.
fn read_targets_file(path: &str, errs: &mut Vec<String>) -> Option<String> {
    let shown = path.escape_debug();
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > MAX_TARGETS_DOCUMENT {
            return Err(std::io::Error::other(format!("{} bytes, more than the limit of 16 MiB", m.len())));
        }
        std::fs::read_to_string(path)
    });
    match read {
        Ok(text) => Some(text),
        Err(e) => {
            errs.push(format!("PAT_TARGETS_FILE: cannot read \"{shown}\": {e}"));
            None
        }
    }
}

fn parse(lookup: &Lookup, names: Option<&[String]>, blob_document: Option<&str>) -> Result<Config, ConfigError> {
    // Every setting a parser asks for is a known one (for the unknown-variable warning).
    let asked = RefCell::new(BTreeSet::new());
    // Empty values count as unset (Terraform and local.settings.json often carry `""` for
    // "not configured").
    let get = |k: &str| {
        asked.borrow_mut().insert(k.to_string());
        lookup(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    };
    let mut errs = Vec::new();

    let given: Vec<(&str, String)> = TARGETS_SETTINGS.iter().filter_map(|k| get(k).map(|v| (*k, v))).collect();
    if given.len() > 1 {
        let set: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
        errs.push(format!(
            "{}: at most one of them may be set; {} are set",
            TARGETS_SETTINGS.join(", "),
            set.join(" and ")
        ));
    }
    let mut source = TargetsSource::Flat;
    let mut from_json = None;
    let targets: Vec<(Source, Target)> = match given.first().filter(|_| given.len() == 1) {
        Some(("PAT_TARGETS", json)) => {
            source = TargetsSource::Setting;
            from_json = Some("PAT_TARGETS");
            fields::read_json_targets(json, &mut errs)
        }
        Some(("PAT_TARGETS_FILE", path)) => {
            source = TargetsSource::File { path: path.clone() };
            from_json = Some("PAT_TARGETS_FILE");
            match read_targets_file(path, &mut errs) {
                Some(json) => fields::read_targets_document("PAT_TARGETS_FILE", &json, &mut errs),
                None => Vec::new(),
            }
        }
        Some((_, url)) => {
            from_json = Some("PAT_TARGETS_BLOB");
            match urls::normalize_blob_url(url) {
                Ok(url) => source = TargetsSource::Blob { url, read: blob_document.is_some() },
                Err(why) => errs.push(format!("PAT_TARGETS_BLOB: \"{}\" {why}", urls::shown(url))),
            }
            match blob_document {
                Some(json) => fields::read_targets_document("PAT_TARGETS_BLOB", json, &mut errs),
                None => Vec::new(),
            }
        }
        None if given.is_empty() => fields::read_flat_target(&get, &mut errs).into_iter().collect(),
        None => Vec::new(),
    };
    checks::unique_names_and_secrets(&targets, &mut errs);
    checks::principal_shared_by_at_most_two(&targets, &mut errs);
    checks::pat_quota(&targets, &mut errs);
    let settings = settings::parse_settings(&get, &mut errs);
    if let Some(s) = &settings {
        checks::client_id_needs_federation(&targets, s, &mut errs);
        checks::vault_allowed(&targets, s, &mut errs);
    }
    let (Some(settings), true) = (settings, errs.is_empty()) else {
        return Err(ConfigError(errs));
    };
    // A copy: the warnings read settings through `get`, which records into `asked`.
    let asked_so_far = asked.borrow().clone();
    let mut warnings = warnings::collect(&get, names, &asked_so_far, &targets, from_json);
    if matches!(source, TargetsSource::Blob { .. }) && settings.allowed_vaults.is_none() {
        warnings.push(
            "PAT_TARGETS_BLOB is set without PAT_ALLOWED_VAULTS: whoever can write that blob decides which vaults receive new credentials; set PAT_ALLOWED_VAULTS to the vault hosts the targets may use".into(),
        );
    }
    let mut keys: BTreeSet<String> = asked.borrow().clone();
    keys.extend(names.unwrap_or_default().iter().cloned());
    let values = keys.into_iter().filter_map(|k| lookup(&k).map(|v| (k, v))).collect();
    let env = Snapshot { values: std::sync::Arc::new(values), names: names.map(|n| std::sync::Arc::new(n.to_vec())) };
    Ok(Config { targets: targets.into_iter().map(|(_, t)| t).collect(), settings, warnings, source, env })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    fn vars(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
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
        assert_eq!(t.kind.name(), TargetKind::Pat);
        assert_eq!(c.settings.credential, CredentialKind::AzureCli);
        assert_eq!(c.settings.max_concurrency, 8);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.target("default"), Some(t));
        assert_eq!(c.target("other"), None);
    }

    #[test]
    fn no_targets_configured() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(
            e.0,
            [
                "DATABRICKS_HOST: is required",
                "KEY_VAULT_URL: is required",
                "no targets configured: set PAT_TARGETS (JSON array) or DATABRICKS_HOST and KEY_VAULT_URL",
            ]
        );
        // Empty values are unset.
        assert_eq!(cfg(&[("DATABRICKS_HOST", " "), ("PAT_TARGETS", "")]).unwrap_err(), e);
    }

    /// Targets and settings problems come together.
    #[test]
    fn every_problem_at_once() {
        let e = cfg(&[
            ("DATABRICKS_HOST", "https://example.com"),
            ("KEY_VAULT_NAME", "1bad"),
            ("PAT_AUTOSCOPE", "maybe"),
            ("PAT_LOG_FORMAT", "xml"),
            ("PAT_FORCE_COOLDOWN_MINUTES", "2000"),
        ])
        .unwrap_err();
        let heads: Vec<&str> = e.0.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(
            heads,
            ["DATABRICKS_HOST", "KEY_VAULT_NAME", "PAT_AUTOSCOPE", "PAT_FORCE_COOLDOWN_MINUTES", "PAT_LOG_FORMAT"],
            "{e}"
        );
    }

    #[test]
    fn autoscope_is_a_boolean() {
        let base = [("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_URL", "https://v")];
        let mut v = base.to_vec();
        v.push(("PAT_AUTOSCOPE", "false"));
        let autoscope = |t: &Target| match &t.kind {
            Kind::Pat { autoscope, .. } => *autoscope,
            Kind::SpOauthSecret { .. } => unreachable!("a pat target"),
        };
        assert_eq!(autoscope(&cfg(&v).unwrap().targets[0]), Some(false));
        assert_eq!(autoscope(&cfg(&base).unwrap().targets[0]), None);
        v.pop();
        v.push(("PAT_AUTOSCOPE", "yes"));
        assert!(cfg(&v).unwrap_err().to_string().contains("PAT_AUTOSCOPE"));
    }

    /// Contract §2: a URL with userinfo, a query or a fragment is refused, and the message
    /// shows only its scheme and host: in both forms, for both URLs, however malformed.
    #[test]
    fn url_credentials_are_refused_and_never_echoed() {
        let secret = "Zq8vS3cret";
        let bad_urls = [
            format!("https://user:{secret}@adb-1.2.azuredatabricks.net"),
            format!("https://{secret}@adb-1.2.azuredatabricks.net"),
            format!("https://adb-1.2.azuredatabricks.net/?token={secret}"),
            format!("https://adb-1.2.azuredatabricks.net?token={secret}"),
            format!("https://adb-1.2.azuredatabricks.net#{secret}"),
            format!("https://user:{secret}/x@adb-1.2.azuredatabricks.net"),
            format!("https://user:{secret}#x@adb-1.2.azuredatabricks.net"),
            format!("http://user:{secret}@adb-1.2.azuredatabricks.net"),
            format!("ftp://user:{secret}@adb-1.2.azuredatabricks.net"),
            format!("user:{secret}@adb-1.2.azuredatabricks.net:99999"),
            format!("https://user:{secret}@adb-1.2.azuredatabricks.net/path"),
            format!("https://user:{secret}@evil.example.com"),
        ];
        let kv = "https://kv.vault.azure.net";
        for url in &bad_urls {
            let vault_url = url.replace("adb-1.2.azuredatabricks.net", "kv.vault.azure.net");
            let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
                (vec![("DATABRICKS_HOST", url.clone()), ("KEY_VAULT_URL", kv.into())], "DATABRICKS_HOST: \""),
                (
                    vec![("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net".into()), ("KEY_VAULT_URL", vault_url.clone())],
                    "KEY_VAULT_URL: \"",
                ),
                (
                    vec![(
                        "PAT_TARGETS",
                        serde_json::json!([{"name": "a", "workspace_url": url, "key_vault_url": vault_url, "secret_name": "s"}])
                            .to_string(),
                    )],
                    "targets[0].workspace_url: \"",
                ),
            ];
            for (vars, head) in cases {
                let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let e = cfg(&refs).unwrap_err();
                let text = e.to_string();
                assert!(text.starts_with(head), "{url}: {text}");
                assert!(!text.contains(secret), "{url} leaked: {text}");
                assert!(!text.contains("user:"), "{url} leaked the user name: {text}");
            }
        }
        // The message names the problem and shows scheme and host.
        let e = cfg(&[
            ("DATABRICKS_HOST", "https://u:p@adb-1.2.azuredatabricks.net"),
            ("KEY_VAULT_URL", "https://kv.vault.azure.net?sig=abc"),
        ])
        .unwrap_err();
        assert_eq!(
            e.0,
            [
                "DATABRICKS_HOST: \"https://adb-1.2.azuredatabricks.net\" must not contain a user name or password (shown here without them)",
                "KEY_VAULT_URL: \"https://kv.vault.azure.net\" must not have a query or fragment (shown here without it)",
            ]
        );
    }

    /// `check-config --json` prints `{"targets": …, "settings": …}` through Serialize
    /// (contract §1: durations as integer seconds in `_seconds` keys).
    #[test]
    fn serialises_for_check_config() {
        let c = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"s"},
                {"name":"b","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"t",
                 "kind":"sp_oauth_secret","service_principal":"11111111-2222-4333-8444-555555555555"}]"#,
        )])
        .unwrap();
        let v = serde_json::json!({ "targets": c.targets, "settings": c.settings });
        assert_eq!(v["targets"][0]["kind"], "pat");
        assert_eq!(v["targets"][0]["service_principal"], serde_json::Value::Null);
        assert_eq!(v["targets"][1]["kind"], "sp_oauth_secret");
        assert_eq!(v["targets"][1]["service_principal"], "11111111-2222-4333-8444-555555555555");
        assert_eq!(v["settings"]["force_cooldown_seconds"], 900);
        assert_eq!(v["settings"]["log_format"], "text");
        assert_eq!(v["settings"]["timer_budget_seconds"], 540);
        assert_eq!(v["settings"]["pacing"]["kv_window_seconds"], 10);
        assert!(!v.to_string().contains("\"secs\""), "{v}");
    }

    /// `from_vars` reads what `from_lookup` reads, and also knows which names are set.
    #[test]
    fn from_vars_matches_from_lookup() {
        let set = [
            ("DATABRICKS_HOST", "adb-1.2.databricks.azure.us"),
            ("KEY_VAULT_NAME", "kv1"),
            ("PAT_LIFETIME_DAYS", "60"),
            ("PAT_FORCE_COOLDOWN_MINUTES", "0"),
            ("PAT_LOG_FORMAT", "json"),
            ("PAT_LIFETIME_DAY", "61"),
        ];
        let a = vars(&set).unwrap();
        let b = cfg(&set).unwrap();
        assert_eq!((&a.targets, &a.settings), (&b.targets, &b.settings));
        assert_eq!(a.targets[0].key_vault_url, "https://kv1.vault.usgovcloudapi.net");
        assert_eq!(a.settings.force_cooldown, std::time::Duration::ZERO);
        assert_eq!(a.settings.log_format, LogFormat::Json);
        assert_eq!(
            a.warnings,
            ["PAT_LIFETIME_DAY: not a pat-rotator setting, ignored (did you mean PAT_LIFETIME_DAYS?)"]
        );
        assert!(b.warnings.is_empty());
        // A repeated name: the later one wins, as in an environment built by appending.
        let c = Config::from_vars([
            ("DATABRICKS_HOST".to_string(), "adb-1.2.azuredatabricks.net".to_string()),
            ("KEY_VAULT_URL".to_string(), "https://a.vault.azure.net".to_string()),
            ("KEY_VAULT_URL".to_string(), "https://b.vault.azure.net".to_string()),
        ])
        .unwrap();
        assert_eq!(c.targets[0].key_vault_url, "https://b.vault.azure.net");
    }
}
