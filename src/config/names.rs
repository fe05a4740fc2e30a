//! The shapes of names and ids in the configuration, as pure predicates.
//!
//! Each mirrors the service that owns the name (Key Vault's secret and vault names, ARM ids,
//! Entra GUIDs), so a name that passes here is one the service accepts, and a typo is caught
//! before any request.

/// `^[a-z0-9][a-z0-9-]{0,62}$`: safe in a token comment, a URL and a log line.
pub fn valid_target_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Key Vault's rule for secret names: `^[0-9a-zA-Z-]{1,127}$`.
pub fn valid_secret_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 127 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// Key Vault's rule for vault names: 3-24 letters, digits and hyphens, starting with a letter
/// and not ending with a hyphen.
pub fn valid_vault_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=24).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Databricks/workspaces/<name>`
/// (ARM compares these case-insensitively).
pub fn valid_workspace_resource_id(s: &str) -> bool {
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

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in either case.
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A Databricks token scope as sent on token create: a non-empty word without whitespace.
pub fn valid_scope(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        assert!(is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"));
        assert!(is_guid("2FF814A6-3304-4AB8-85CB-CD0E6F879C1D"));
        assert!(!is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1"));
        assert!(!is_guid("2ff814a633044ab885cbcd0e6f879c1d0000"));
        assert!(!is_guid("2ff814a6-3304-4ab8-85cb-cd0e6f879c1g"));
        assert!(!is_guid("{2ff814a6-3304-4ab8-85cb-cd0e6f879c1}"));
    }

    #[test]
    fn resource_id_shape() {
        assert!(valid_workspace_resource_id(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws"
        ));
        assert!(valid_workspace_resource_id(
            "/SUBSCRIPTIONS/0000/resourcegroups/rg/providers/microsoft.databricks/Workspaces/ws"
        ));
        assert!(!valid_workspace_resource_id(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x"
        ));
        assert!(!valid_workspace_resource_id(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws?x"
        ));
        assert!(!valid_workspace_resource_id(
            "/subscriptions//resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws"
        ));
    }

    #[test]
    fn names() {
        let cases: &[(&str, bool, bool, bool)] = &[
            // (input, target name, secret name, vault name)
            ("a", true, true, false),
            ("abc", true, true, true),
            ("my-vault", true, true, true),
            ("My-Vault", false, true, true),
            ("1abc", true, true, false),
            ("-abc", false, true, false),
            ("abc-", true, true, false),
            ("my_secret", false, false, false),
            ("", false, false, false),
        ];
        for (s, target, secret, vault) in cases {
            assert_eq!(
                (valid_target_name(s), valid_secret_name(s), valid_vault_name(s)),
                (*target, *secret, *vault),
                "{s:?}"
            );
        }
        assert!(valid_target_name(&"a".repeat(63)) && !valid_target_name(&"a".repeat(64)));
        assert!(valid_secret_name(&"a".repeat(127)) && !valid_secret_name(&"a".repeat(128)));
        assert!(valid_vault_name(&"a".repeat(24)) && !valid_vault_name(&"a".repeat(25)));
    }

    #[test]
    fn scopes() {
        assert!(valid_scope("sql") && valid_scope("unity-catalog"));
        assert!(!valid_scope("") && !valid_scope("bad scope") && !valid_scope("bad\u{7}scope"));
        assert!(!valid_scope(&"a".repeat(201)));
    }
}
