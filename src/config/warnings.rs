//! Warnings: settings that are valid but probably not what the operator meant.
//!
//! None of these stops the program (an extra setting must not take a working deployment down),
//! but each is a likely mistake that would otherwise go unnoticed: a flat setting that
//! `PAT_TARGETS` overrides, a misspelt `PAT_*` variable whose default silently applies, a vault
//! URL from another cloud than the workspace's.

use std::collections::BTreeSet;

use url::Url;

use super::clouds::Cloud;
use super::fields::Lookup;
use super::fields::{FIELDS, KEY_VAULT_URL, Source, flat_settings};
use super::target::Target;
use super::urls::url_is_loopback;

/// Variables of the project's own tooling (test harness, scripts), not settings.
const TOOLING_PREFIX: &str = "PAT_ROTATOR_";

/// Every warning, in a stable order. `get` reads a setting (empty = unset); `names` are the
/// variables that are set, when known; `asked` the settings the parsers read.
pub(super) fn collect(
    get: &Lookup,
    names: Option<&[String]>,
    asked: &BTreeSet<String>,
    targets: &[(Source, Target)],
    from_json: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    flat_settings_ignored(get, from_json, &mut out);
    if let Some(names) = names {
        unknown_pat_settings(get, names, asked, &mut out);
    }
    vault_outside_workspace_cloud(targets, &mut out);
    out
}

/// With a JSON array of targets (`from_json` names the setting that gives it), the flat target
/// settings are not read at all; and without it, a vault URL makes the vault name unused.
fn flat_settings_ignored(get: &Lookup, from_json: Option<&str>, out: &mut Vec<String>) {
    if let Some(setting) = from_json {
        let ignored: Vec<&str> = flat_settings().filter(|k| get(k).is_some()).collect();
        if !ignored.is_empty() {
            out.push(format!(
                "{}: ignored, because {setting} is set (give these fields in each target of {setting} instead)",
                ignored.join(", ")
            ));
        }
        return;
    }
    for f in FIELDS {
        if let (Some(flat), Some(alias)) = (f.flat, &f.alias)
            && get(flat).is_some()
            && get(alias.flat).is_some()
        {
            out.push(format!("{}: ignored, because {flat} is set", alias.flat));
        }
    }
}

/// A `PAT_*` variable no parser reads is most likely a typo (`PAT_LIFETIME_DAY`), and the
/// setting it was meant to be has its default. Names are compared case-sensitively, as Linux
/// and the Functions host do; the prefix is not, so `pat_targets` is caught too.
fn unknown_pat_settings(get: &Lookup, names: &[String], asked: &BTreeSet<String>, out: &mut Vec<String>) {
    let mut known: BTreeSet<&str> = asked.iter().map(String::as_str).collect();
    for flat in flat_settings() {
        known.insert(flat);
    }
    let mut names: Vec<&String> = names.iter().collect();
    names.sort();
    names.dedup();
    for name in names {
        let upper = name.to_ascii_uppercase();
        if !upper.starts_with("PAT_") || upper.starts_with(TOOLING_PREFIX) || known.contains(name.as_str()) {
            continue;
        }
        if get(name).is_none() {
            continue;
        }
        let hint = known
            .iter()
            .filter(|k| k.starts_with("PAT_") || flat_settings().any(|f| f == **k))
            .map(|k| (edit_distance(&upper, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min()
            .map(|(_, k)| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        out.push(format!("{name}: not a pat-rotator setting, ignored{hint}"));
    }
}

/// Key Vault lives in the same cloud as the workspace; a vault host of another cloud (or no
/// vault host at all) is most likely a copy-paste slip. Loopback emulators are exempt, and a
/// loopback workspace tells no cloud, so then any cloud's vault host will do.
fn vault_outside_workspace_cloud(targets: &[(Source, Target)], out: &mut Vec<String>) {
    for (source, t) in targets {
        if url_is_loopback(&t.key_vault_url) {
            continue;
        }
        let host = Url::parse(&t.key_vault_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        let vault_cloud = Cloud::of_vault_host(&host);
        let expected: Vec<Cloud> = if url_is_loopback(&t.workspace_url) {
            Cloud::ALL.to_vec()
        } else {
            vec![Cloud::of_workspace(&t.workspace_url)]
        };
        if vault_cloud.is_some_and(|c| expected.contains(&c)) {
            continue;
        }
        let hosts: Vec<String> = expected.iter().map(|c| format!("{}: *.{}", c.name(), c.vault_suffix())).collect();
        out.push(format!(
            "{}: {} is not a Key Vault host of the workspace's cloud ({}); check the URL",
            source.at(&KEY_VAULT_URL),
            t.key_vault_url,
            hosts.join(", ")
        ));
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn warnings(vars: &[(&str, &str)]) -> Vec<String> {
        let c = Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        c.unwrap_or_else(|e| panic!("{vars:?}: {e}")).warnings
    }

    const WS: (&str, &str) = ("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net");
    const KV: (&str, &str) = ("KEY_VAULT_URL", "https://kv.vault.azure.net");
    const TARGETS: &str = r#"[{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"s"}]"#;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("PAT_LIFETIME_DAY", "PAT_LIFETIME_DAYS"), 1);
        assert_eq!(edit_distance("PAT_SCOPE", "PAT_SCOPES"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    type Case = (Vec<(&'static str, &'static str)>, Vec<&'static str>);

    /// (settings, expected warnings). A clean configuration has none.
    #[test]
    fn warnings_table() {
        let cases: Vec<Case> = vec![
            (vec![WS, KV], vec![]),
            (
                vec![WS, KV, ("PAT_LIFETIME_DAYS", "60"), ("PAT_KV_WINDOW_MS", "5000"), ("PAT_LOG_FORMAT", "json")],
                vec![],
            ),
            (vec![("PAT_TARGETS", TARGETS)], vec![]),
            // (a) flat target settings beside PAT_TARGETS, every one named, empty ones not.
            (
                vec![
                    ("PAT_TARGETS", TARGETS),
                    WS,
                    ("KEY_VAULT_NAME", "kv1"),
                    ("PAT_SECRET_NAME", "x"),
                    ("PAT_SCOPES", ""),
                ],
                vec![
                    "DATABRICKS_HOST, KEY_VAULT_NAME, PAT_SECRET_NAME: ignored, because PAT_TARGETS is set (give these fields in each target of PAT_TARGETS instead)",
                ],
            ),
            (
                vec![("PAT_TARGETS", TARGETS), ("PAT_KIND", "pat"), ("PAT_SERVICE_PRINCIPAL", "x")],
                vec![
                    "PAT_KIND, PAT_SERVICE_PRINCIPAL: ignored, because PAT_TARGETS is set (give these fields in each target of PAT_TARGETS instead)",
                ],
            ),
            (vec![WS, KV, ("KEY_VAULT_NAME", "kv1")], vec!["KEY_VAULT_NAME: ignored, because KEY_VAULT_URL is set"]),
            // (b) unknown PAT_ variables, with a suggestion when one is close.
            (
                vec![WS, KV, ("PAT_LIFETIME_DAY", "60")],
                vec!["PAT_LIFETIME_DAY: not a pat-rotator setting, ignored (did you mean PAT_LIFETIME_DAYS?)"],
            ),
            (
                vec![WS, KV, ("PAT_FORCE_COOLDOWN_MINUTE", "5")],
                vec![
                    "PAT_FORCE_COOLDOWN_MINUTE: not a pat-rotator setting, ignored (did you mean PAT_FORCE_COOLDOWN_MINUTES?)",
                ],
            ),
            (
                vec![WS, KV, ("pat_scopes", "sql")],
                vec!["pat_scopes: not a pat-rotator setting, ignored (did you mean PAT_SCOPES?)"],
            ),
            (vec![WS, KV, ("PAT_COLOUR", "blue")], vec!["PAT_COLOUR: not a pat-rotator setting, ignored"]),
            (
                vec![("PAT_TARGETS", TARGETS), ("PAT_SECRETNAME", "x")],
                vec!["PAT_SECRETNAME: not a pat-rotator setting, ignored (did you mean PAT_SECRET_NAME?)"],
            ),
            (vec![WS, KV, ("PAT_COLOUR", "")], vec![]),
            (vec![WS, KV, ("PAT_ROTATOR_BIN", "/x"), ("PATH", "/bin"), ("RUST_LOG", "debug")], vec![]),
            // (c) a vault of another cloud than the workspace's.
            (
                vec![WS, ("KEY_VAULT_URL", "https://kv.vault.usgovcloudapi.net")],
                vec![
                    "KEY_VAULT_URL: https://kv.vault.usgovcloudapi.net is not a Key Vault host of the workspace's cloud (Azure public cloud: *.vault.azure.net); check the URL",
                ],
            ),
            (
                vec![("DATABRICKS_HOST", "adb-1.2.databricks.azure.us"), KV],
                vec![
                    "KEY_VAULT_URL: https://kv.vault.azure.net is not a Key Vault host of the workspace's cloud (Azure Government: *.vault.usgovcloudapi.net); check the URL",
                ],
            ),
            (
                vec![
                    ("DATABRICKS_HOST", "adb-1.2.databricks.azure.us"),
                    ("KEY_VAULT_URL", "kv.vault.usgovcloudapi.net"),
                ],
                vec![],
            ),
            (vec![("DATABRICKS_HOST", "adb-1.2.databricks.azure.cn"), ("KEY_VAULT_NAME", "kv1")], vec![]),
            (
                vec![WS, ("KEY_VAULT_URL", "https://vault.example.com")],
                vec![
                    "KEY_VAULT_URL: https://vault.example.com is not a Key Vault host of the workspace's cloud (Azure public cloud: *.vault.azure.net); check the URL",
                ],
            ),
            (vec![WS, ("KEY_VAULT_URL", "https://127.0.0.1:8443")], vec![]),
            (vec![("DATABRICKS_HOST", "http://127.0.0.1:9"), ("KEY_VAULT_URL", "https://kv.vault.azure.cn")], vec![]),
            (
                vec![("DATABRICKS_HOST", "http://127.0.0.1:9"), ("KEY_VAULT_URL", "https://kv.example.com")],
                vec![
                    "KEY_VAULT_URL: https://kv.example.com is not a Key Vault host of the workspace's cloud (Azure public cloud: *.vault.azure.net, Azure Government: *.vault.usgovcloudapi.net, Azure China: *.vault.azure.cn); check the URL",
                ],
            ),
        ];
        for (vars, want) in cases {
            assert_eq!(warnings(&vars), want, "{vars:?}");
        }
    }

    #[test]
    fn json_targets_are_named_by_index() {
        let targets = r#"[{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"s"},
                          {"name":"b","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.cn","secret_name":"s"}]"#;
        let w = warnings(&[("PAT_TARGETS", targets)]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("targets[1].key_vault_url: https://kv.vault.azure.cn is not a Key Vault host"),
            "{w:?}"
        );
    }

    /// `from_lookup` cannot list variables, so it cannot warn about unknown ones; the rest holds.
    #[test]
    fn lookup_warns_without_names() {
        let c = Config::from_lookup(|k| match k {
            "PAT_TARGETS" => Some(TARGETS.to_string()),
            "DATABRICKS_HOST" => Some("adb-1.2.azuredatabricks.net".to_string()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("DATABRICKS_HOST: ignored"), "{:?}", c.warnings);
    }
}
