//! Rules that span fields, targets or settings, each a named function.
//!
//! A rule about one value lives in its row of [`super::fields::FIELDS`]; these are the ones
//! that need two: which fields a kind of target requires or refuses (contract §9), renewal
//! before the lifetime ends, no two targets sharing a name or a secret, and what a `client_id`
//! needs from the service's credential (contract §8). They read rows through the table, so a
//! message names a field the same way as its row does.

use std::collections::{BTreeMap, HashSet};

use super::fields::{
    CLIENT_ID, KEY_VAULT_URL, KIND, Kinds, LIFETIME_DAYS, NAME, RENEW_BEFORE_DAYS, Read, SECRET_NAME,
    SERVICE_PRINCIPAL, Slot, Source, WORKSPACE_URL,
};
use super::settings::Settings;
use super::target::{Target, TargetKind};

/// Every required field is there: always for a field every kind accepts, and for a field of one
/// kind (`service_principal`) when the target is of that kind.
pub(super) fn required_fields(read: &Read, errs: &mut Vec<String>) {
    let kind = read.kind();
    for (f, slot) in read.rows() {
        if !f.required || *slot != Slot::Absent {
            continue;
        }
        match f.kinds {
            Kinds::All => errs.push(format!("{}: is required", read.source.at(f))),
            Kinds::Only(k) if kind == Some(k) => errs.push(format!(
                "{}: is required when {} is {}",
                read.source.at(f),
                read.source.name(&KIND),
                k.as_str()
            )),
            Kinds::Only(_) => {}
        }
    }
}

/// A field of one kind given for another (contract §9: `scopes`, `autoscope`, `client_id` mean
/// nothing for an OAuth secret; `service_principal` means nothing for a PAT) is refused rather
/// than ignored, since the operator expected it to take effect.
pub(super) fn fields_allowed_for_kind(read: &Read, errs: &mut Vec<String>) {
    let Some(kind) = read.kind() else { return };
    for (f, slot) in read.rows() {
        if let (Kinds::Only(only), Slot::Given(_)) = (f.kinds, slot)
            && only != kind
        {
            errs.push(format!(
                "{}: is not allowed when {kind_field} is {} (only when {kind_field} is {})",
                read.source.at(f),
                kind.as_str(),
                only.as_str(),
                kind_field = read.source.name(&KIND),
            ));
        }
    }
}

/// `0 < renew_before_days < lifetime_days`: otherwise every run rotates (renewal is always
/// due), or none does before expiry. Skipped when `lifetime_days` is itself invalid.
pub(super) fn renew_below_lifetime(read: &Read, errs: &mut Vec<String>) {
    let (Some(renew), Some(lifetime)) = (read.int(&RENEW_BEFORE_DAYS), read.int(&LIFETIME_DAYS)) else { return };
    if renew > 0 && renew < lifetime {
        return;
    }
    // The default fits the default lifetime; say so when only the lifetime was changed.
    let note = if matches!(read.slot(&RENEW_BEFORE_DAYS), Slot::Defaulted(_)) {
        format!(" (the default is {renew}; set it explicitly)")
    } else {
        String::new()
    };
    errs.push(format!(
        "{}: {renew} must be greater than 0 and less than {} ({lifetime}){note}",
        read.source.at(&RENEW_BEFORE_DAYS),
        read.source.name(&LIFETIME_DAYS)
    ));
}

/// Names are how ProvisionPat and `--target` address targets; a secret written by two targets
/// would flip between their tokens (same vault and secret name, as Key Vault compares them:
/// case-insensitively).
pub(super) fn unique_names_and_secrets(targets: &[(Source, Target)], errs: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut secrets: BTreeMap<(String, String), &str> = BTreeMap::new();
    for (source, t) in targets {
        if !names.insert(t.name.as_str()) {
            errs.push(format!("{}: \"{}\" is used by more than one target", source.at(&NAME), t.name));
        }
        let key = (t.key_vault_url.to_ascii_lowercase(), t.secret_name.to_ascii_lowercase());
        if let Some(other) = secrets.insert(key, &t.name) {
            errs.push(format!(
                "{}: \"{}\" in {} is already the secret of target \"{other}\"",
                source.at(&SECRET_NAME),
                t.secret_name,
                t.key_vault_url
            ));
        }
    }
}

/// Contract §9: a principal's OAuth secrets and its limit of five are account-wide, and each
/// target keeps up to two of them (the current one and, within its grace, the previous one): two
/// targets may share a principal (`check-config` warns), three or more would starve each other.
pub(super) fn principal_shared_by_at_most_two(targets: &[(Source, Target)], errs: &mut Vec<String>) {
    let mut by_principal: BTreeMap<&str, Vec<(&Source, &str)>> = BTreeMap::new();
    for (source, t) in targets {
        if let Some(sp) = t.service_principal() {
            by_principal.entry(sp).or_default().push((source, t.name.as_str()));
        }
    }
    for (sp, users) in by_principal.into_iter().filter(|(_, u)| u.len() > 2) {
        let names: Vec<String> = users.iter().map(|(_, n)| format!("\"{n}\"")).collect();
        errs.push(format!(
            "{}: \"{sp}\" is the principal of {} targets ({}); at most two targets may share a service principal, whose limit of five OAuth secrets is account-wide",
            users[2].0.at(&SERVICE_PRINCIPAL),
            users.len(),
            names.join(", ")
        ));
    }
}

/// Contract §8: a target with `client_id` needs a tenant and a credential that can present a
/// federated assertion (a managed-identity token, or the workload identity's token file).
pub(super) fn client_id_needs_federation(targets: &[(Source, Target)], s: &Settings, errs: &mut Vec<String>) {
    for (source, t) in targets {
        let Some(c) = t.client_id() else { continue };
        let at = source.at(&CLIENT_ID);
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

/// `PAT_ALLOWED_VAULTS` (contract §2): a target may name only a listed vault host (the host, or
/// the host and its port). Whoever can change the targets — the writers of `PAT_TARGETS_BLOB`
/// above all — can then send new credentials only where the Function App's settings allow.
pub(super) fn vault_allowed(targets: &[(Source, Target)], s: &Settings, errs: &mut Vec<String>) {
    let Some(allowed) = &s.allowed_vaults else { return };
    for (source, t) in targets {
        let Ok(u) = url::Url::parse(&t.key_vault_url) else { continue };
        let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
        let with_port = u.port().map(|p| format!("{host}:{p}"));
        if !allowed.iter().any(|a| *a == host || Some(a) == with_port.as_ref()) {
            errs.push(format!(
                "{}: vault host {} is not in PAT_ALLOWED_VAULTS ({})",
                source.at(&KEY_VAULT_URL),
                with_port.as_deref().unwrap_or(&host),
                allowed.join(", ")
            ));
        }
    }
}

/// Databricks allows 600 tokens per identity and workspace (contract §11): each `pat` target
/// keeps its current token and, within its grace, the one before (up to the cap of 6 when
/// rotations are forced), so more than this many targets of one owner in one workspace are refused.
pub const PAT_TARGETS_PER_OWNER_REFUSED: usize = 300;
/// ... and beyond this many `check-config` (and every command's log) warns.
pub const PAT_TARGETS_PER_OWNER_WARNED: usize = 100;

/// `pat` targets per (workspace, owner): the owner is the service identity or the target's
/// `client_id` (contract §8); OAuth-secret targets hold no PAT. With the first target of each
/// group, for messages.
pub fn pat_targets_per_owner(targets: &[&Target]) -> BTreeMap<(String, String), usize> {
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for t in targets.iter().filter(|t| t.kind.name() == TargetKind::Pat) {
        *per.entry((t.workspace_url.to_ascii_lowercase(), t.owner())).or_default() += 1;
    }
    per
}

/// More than [`PAT_TARGETS_PER_OWNER_REFUSED`] `pat` targets of one owner in one workspace.
pub(super) fn pat_quota(targets: &[(Source, Target)], errs: &mut Vec<String>) {
    let all: Vec<&Target> = targets.iter().map(|(_, t)| t).collect();
    for ((ws, owner), n) in pat_targets_per_owner(&all) {
        if n > PAT_TARGETS_PER_OWNER_REFUSED {
            let first = targets
                .iter()
                .find(|(_, t)| t.workspace_url.eq_ignore_ascii_case(&ws) && t.owner() == owner)
                .map(|(s, _)| s.at(&WORKSPACE_URL))
                .unwrap_or_else(|| WORKSPACE_URL.key.to_string());
            errs.push(format!(
                "{first}: {n} pat targets share workspace {ws} as {owner}; at most {PAT_TARGETS_PER_OWNER_REFUSED} may (Databricks allows 600 tokens per identity and workspace, and each target keeps a current and a previous token): give some of them their own client_id (contract §8)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, Kind, TargetKind};
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const SP: &str = "11111111-2222-4333-8444-555555555555";
    const APP: &str = "0a1b2c3d-0000-4000-8000-00000000abcd";

    /// One `PAT_TARGETS` entry: a valid PAT target plus `extra` fields (JSON, without braces).
    fn one(extra: &str) -> String {
        let sep = if extra.is_empty() { "" } else { "," };
        format!(
            r#"[{{"name":"a","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"s"{sep}{extra}}}]"#
        )
    }

    /// (JSON fields, flat settings, expected error in JSON and flat spelling).
    type Case = (String, Vec<(&'static str, &'static str)>, Option<(&'static str, &'static str)>);

    /// Contract §9, in both forms: (JSON fields, flat settings, the one expected error as
    /// (JSON message after `targets[0].`, flat message), or None when valid). An empty flat
    /// list means the case has no flat form.
    #[test]
    fn kind_rules_table() {
        let sp = format!(r#""kind":"sp_oauth_secret","service_principal":"{SP}""#);
        let sp_flat = [("PAT_KIND", "sp_oauth_secret"), ("PAT_SERVICE_PRINCIPAL", SP)];
        let with_sp = |extra: &[(&'static str, &'static str)]| [&sp_flat[..], extra].concat();
        let cases: Vec<Case> = vec![
            (r#""revoke_grace_hours":1"#.into(), vec![("PAT_REVOKE_GRACE_HOURS", "1")], None),
            (r#""kind":"pat""#.into(), vec![("PAT_KIND", "pat")], None),
            (sp.clone(), with_sp(&[]), None),
            (
                format!(r#"{sp},"lifetime_days":730,"revoke_grace_hours":0"#),
                with_sp(&[("PAT_LIFETIME_DAYS", "730")]),
                None,
            ),
            (
                format!(r#"{sp},"lifetime_days":731"#),
                with_sp(&[("PAT_LIFETIME_DAYS", "731")]),
                Some((
                    "lifetime_days: 731 is out of range (1..=730)",
                    "PAT_LIFETIME_DAYS: 731 is out of range (1..=730)",
                )),
            ),
            (
                r#""kind":"oauth""#.into(),
                vec![("PAT_KIND", "oauth")],
                Some((
                    "kind: \"oauth\" is not one of pat, sp_oauth_secret",
                    "PAT_KIND: \"oauth\" is not one of pat, sp_oauth_secret",
                )),
            ),
            (
                r#""kind":"SP_OAUTH_SECRET""#.into(),
                vec![("PAT_KIND", "SP_OAUTH_SECRET")],
                Some(("kind: \"SP_OAUTH_SECRET\" is not one of", "PAT_KIND: \"SP_OAUTH_SECRET\" is not one of")),
            ),
            (r#""kind":7"#.into(), vec![], Some(("kind: must be a string, got a number", ""))),
            (
                r#""kind":"sp_oauth_secret""#.into(),
                vec![("PAT_KIND", "sp_oauth_secret")],
                Some((
                    "service_principal: is required when kind is sp_oauth_secret",
                    "PAT_SERVICE_PRINCIPAL: is required when PAT_KIND is sp_oauth_secret",
                )),
            ),
            (
                format!(r#""service_principal":"{SP}""#),
                vec![("PAT_SERVICE_PRINCIPAL", SP)],
                Some((
                    "service_principal: is not allowed when kind is pat (only when kind is sp_oauth_secret)",
                    "PAT_SERVICE_PRINCIPAL: is not allowed when PAT_KIND is pat (only when PAT_KIND is sp_oauth_secret)",
                )),
            ),
            (
                format!(r#""kind":"pat","service_principal":"{SP}""#),
                vec![("PAT_KIND", "pat"), ("PAT_SERVICE_PRINCIPAL", SP)],
                Some((
                    "service_principal: is not allowed when kind is pat",
                    "PAT_SERVICE_PRINCIPAL: is not allowed when PAT_KIND is pat",
                )),
            ),
            (
                format!(r#"{sp},"scopes":["sql"]"#),
                with_sp(&[("PAT_SCOPES", "sql")]),
                Some((
                    "scopes: is not allowed when kind is sp_oauth_secret (only when kind is pat)",
                    "PAT_SCOPES: is not allowed when PAT_KIND is sp_oauth_secret (only when PAT_KIND is pat)",
                )),
            ),
            (
                format!(r#"{sp},"autoscope":false"#),
                with_sp(&[("PAT_AUTOSCOPE", "false")]),
                Some((
                    "autoscope: is not allowed when kind is sp_oauth_secret",
                    "PAT_AUTOSCOPE: is not allowed when PAT_KIND is sp_oauth_secret",
                )),
            ),
            (
                format!(r#"{sp},"client_id":"{APP}""#),
                with_sp(&[("PAT_CLIENT_ID", APP)]),
                Some((
                    "client_id: is not allowed when kind is sp_oauth_secret",
                    "PAT_CLIENT_ID: is not allowed when PAT_KIND is sp_oauth_secret",
                )),
            ),
            (
                r#""kind":"sp_oauth_secret","service_principal":"my-sp""#.into(),
                vec![("PAT_KIND", "sp_oauth_secret"), ("PAT_SERVICE_PRINCIPAL", "my-sp")],
                Some((
                    "service_principal: \"my-sp\" is not a GUID (the application id of a Databricks service principal)",
                    "PAT_SERVICE_PRINCIPAL: \"my-sp\" is not a GUID (the application id of a Databricks service principal)",
                )),
            ),
            // Empty counts as unset: an empty service principal is a missing one.
            (
                r#""kind":"sp_oauth_secret","service_principal":"  ""#.into(),
                vec![("PAT_KIND", "sp_oauth_secret"), ("PAT_SERVICE_PRINCIPAL", "  ")],
                Some(("service_principal: is required when", "PAT_SERVICE_PRINCIPAL: is required when")),
            ),
            // An empty scope list is no scopes, so nothing to refuse.
            (format!(r#"{sp},"scopes":[]"#), with_sp(&[("PAT_SCOPES", " , ")]), None),
        ];
        let flat_base =
            [("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net"), ("KEY_VAULT_URL", "https://kv.vault.azure.net")];
        for (json_fields, flat, want) in &cases {
            let mut runs = vec![(
                format!("PAT_TARGETS {json_fields}"),
                cfg(&[("PAT_TARGETS", &one(json_fields))]),
                want.map(|w| format!("targets[0].{}", w.0)),
            )];
            if !flat.is_empty() {
                let vars = [&flat_base[..], flat].concat();
                runs.push((format!("{flat:?}"), cfg(&vars), want.map(|w| w.1.to_string())));
            }
            for (case, got, want) in runs {
                match (got, want) {
                    (Ok(_), None) => {}
                    (Err(e), Some(w)) => {
                        assert_eq!(e.0.len(), 1, "{case}: {e}");
                        assert!(e.0[0].starts_with(&w), "{case}:\n got {}\nwant {w}", e.0[0]);
                    }
                    (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn sp_target_fields() {
        let c = cfg(&[(
            "PAT_TARGETS",
            &one(r#""kind":"sp_oauth_secret","service_principal":"11111111-2222-4333-8444-55555555AAAA""#),
        )])
        .unwrap();
        let t = &c.targets[0];
        assert_eq!(t.kind, Kind::SpOauthSecret { service_principal: "11111111-2222-4333-8444-55555555aaaa".into() });
        let c = cfg(&[("PAT_TARGETS", &one(""))]).unwrap();
        assert_eq!(c.targets[0].kind, Kind::blank(TargetKind::Pat));
    }

    #[test]
    fn renew_must_be_below_lifetime() {
        let base = [("DATABRICKS_HOST", "adb-1.1.azuredatabricks.net"), ("KEY_VAULT_URL", "https://v.vault.azure.net")];
        let err = |extra: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            cfg(&v).err().map(|e| e.0)
        };
        assert_eq!(
            err(&[("PAT_LIFETIME_DAYS", "14")]).unwrap(),
            [
                "PAT_RENEW_BEFORE_DAYS: 30 must be greater than 0 and less than PAT_LIFETIME_DAYS (14) (the default is 30; set it explicitly)"
            ]
        );
        assert_eq!(
            err(&[("PAT_RENEW_BEFORE_DAYS", "0")]).unwrap(),
            ["PAT_RENEW_BEFORE_DAYS: 0 must be greater than 0 and less than PAT_LIFETIME_DAYS (90)"]
        );
        assert_eq!(
            err(&[("PAT_RENEW_BEFORE_DAYS", "-5")]).unwrap(),
            ["PAT_RENEW_BEFORE_DAYS: -5 must be greater than 0 and less than PAT_LIFETIME_DAYS (90)"]
        );
        assert_eq!(err(&[("PAT_RENEW_BEFORE_DAYS", "89")]), None);
        assert_eq!(err(&[("PAT_LIFETIME_DAYS", "2"), ("PAT_RENEW_BEFORE_DAYS", "1")]), None);
        // An invalid lifetime is one problem, not two.
        assert_eq!(err(&[("PAT_LIFETIME_DAYS", "0")]).unwrap(), ["PAT_LIFETIME_DAYS: 0 is out of range (1..=730)"]);
        let e = cfg(&[("PAT_TARGETS", &one(r#""lifetime_days":30,"renew_before_days":30"#))]).unwrap_err();
        assert_eq!(e.0, ["targets[0].renew_before_days: 30 must be greater than 0 and less than lifetime_days (30)"]);
    }

    #[test]
    fn duplicate_names_and_secrets() {
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"a","workspace_url":"https://adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"s"},
                {"name":"a","workspace_url":"https://adb-2.2.azuredatabricks.net","key_vault_url":"https://V/","secret_name":"S"}]"#,
        )])
        .unwrap_err();
        assert_eq!(
            e.0,
            [
                "targets[1].name: \"a\" is used by more than one target",
                "targets[1].secret_name: \"S\" in https://v is already the secret of target \"a\"",
            ]
        );
    }

    /// Messages about a target name its index in `PAT_TARGETS`, also when an earlier target
    /// was left out for its own problems.
    #[test]
    fn duplicates_keep_their_index() {
        let e = cfg(&[(
            "PAT_TARGETS",
            r#"[{"name":"Bad"},
                {"name":"a","workspace_url":"adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"s"},
                {"name":"a","workspace_url":"adb-1.1.azuredatabricks.net","key_vault_url":"https://v","secret_name":"t"}]"#,
        )])
        .unwrap_err();
        assert!(e.0.contains(&"targets[2].name: \"a\" is used by more than one target".to_string()), "{e}");
    }

    #[test]
    fn client_id_is_a_lowercased_guid_that_needs_federation() {
        let mi = [
            ("IDENTITY_ENDPOINT", "http://127.0.0.1/x"),
            ("IDENTITY_HEADER", "h"),
            ("AZURE_TENANT_ID", "7d5c2a9e-4b1f-4c3a-9e8d-6f0a1b2c3d4e"),
            ("DATABRICKS_HOST", "adb-1.2.azuredatabricks.net"),
            ("KEY_VAULT_URL", "https://v.vault.azure.net"),
        ];
        let mut v = mi.to_vec();
        v.push(("PAT_CLIENT_ID", "0A1B2C3D-0000-4000-8000-00000000ABCD"));
        assert_eq!(cfg(&v).unwrap().targets[0].client_id(), Some(APP));
        let mut v = mi.to_vec();
        v.push(("PAT_CLIENT_ID", "my-app"));
        let e = cfg(&v).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with("PAT_CLIENT_ID: \"my-app\" is not a GUID"), "{e}");
        let e = cfg(&[("PAT_TARGETS", &one(&format!(r#""client_id":"{APP}""#)))]).unwrap_err();
        assert!(e.0.iter().any(|m| m.starts_with("targets[0].client_id:") && m.contains("AZURE_TENANT_ID")), "{e}");
        assert!(
            e.0.iter().any(|m| m.starts_with("targets[0].client_id:") && m.contains("the credential is azure_cli")),
            "{e}"
        );
        let targets = one(&format!(r#""client_id":"{APP}""#));
        let mut v = mi[..3].to_vec();
        v.push(("PAT_TARGETS", &targets));
        assert!(cfg(&v).is_ok());
    }
    #[test]
    fn two_targets_may_share_a_principal_three_may_not() {
        let t = |name: &str, sp: &str| {
            format!(
                r#"{{"name":"{name}","workspace_url":"adb-1.2.azuredatabricks.net","key_vault_url":"https://kv.vault.azure.net","secret_name":"{name}","kind":"sp_oauth_secret","service_principal":"{sp}"}}"#
            )
        };
        let two = format!("[{},{},{}]", t("a", SP), t("b", &SP.to_uppercase()), t("c", APP));
        assert!(cfg(&[("PAT_TARGETS", &two)]).is_ok());
        let three = format!("[{},{},{}]", t("a", SP), t("b", SP), t("c", &SP.to_uppercase()));
        let e = cfg(&[("PAT_TARGETS", &three)]).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].starts_with(&format!(
                r#"targets[2].service_principal: "{SP}" is the principal of 3 targets ("a", "b", "c")"#
            )),
            "{e}"
        );
    }
}
