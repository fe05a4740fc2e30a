//! What a caller of the Functions is told when something went wrong (contract §3).
//!
//! Anyone holding the function key can call ProvisionPat, so its error bodies say only what
//! class of thing failed: the stable code, the fixed sentence below and the invocation id. The
//! detail an operator needs (the AADSTS text, the issuer, the identity's object id, the RBAC
//! role, the vault URL, the configuration problem) goes to the log, one line carrying the same
//! invocation id, where the runbook's query finds it. The sentences are the second column of
//! the table in `docs/RUNBOOK.md`; a unit test keeps the two equal.

use serde_json::{Value, json};

use crate::error::Code;
use crate::rotation::model::WarningKind;

/// The fixed, non-sensitive sentence for `code`.
pub fn sentence(code: Code) -> &'static str {
    match code {
        Code::ConfigInvalid => {
            "The service's configuration is invalid; an operator must correct the Function App settings."
        }
        Code::UnknownTarget => "The request names a target that is not configured.",
        Code::InvalidRequest => {
            "The request is not valid: send Content-Type application/json and a JSON object of at most 64 KiB with a string target and optional booleans force and dry_run, no other fields."
        }
        Code::IdentityUnavailable => "The service could not obtain an Entra ID token for its identity.",
        Code::DatabricksUnauthorized => {
            "The Databricks workspace did not accept the service's credentials, or a new token failed verification."
        }
        Code::DatabricksForbidden => {
            "The Databricks workspace denied the service's identity the right to manage tokens."
        }
        Code::DatabricksQuotaExceeded => {
            "The Databricks workspace refused a new token or secret because a quota is full."
        }
        Code::DatabricksLifetimeTooLong => {
            "The Databricks workspace refused the configured token lifetime as longer than its maximum."
        }
        Code::DatabricksError => "The Databricks workspace answered with an unexpected error.",
        Code::KeyvaultForbidden => "Key Vault denied the service's identity access to the secret.",
        Code::KeyvaultSecretDeleted => {
            "The Key Vault secret is deleted but recoverable; an operator must recover or purge it."
        }
        Code::KeyvaultError => "Key Vault answered with an unexpected error.",
        Code::Throttled => "Azure or Databricks is throttling requests; retry after the Retry-After interval.",
        Code::UpstreamUnavailable => "Azure or Databricks could not be reached or was unavailable; retry later.",
        Code::Timeout => "The work did not finish within its time budget; retry later.",
        Code::IdentityFederationRefused => {
            "Entra ID refused the federated credential exchange for the target's app registration."
        }
        Code::DatabricksPrincipalNotFound => {
            "The target's service principal does not exist in the Databricks workspace."
        }
        Code::RotatedByAnotherIdentity => {
            "The latest version of the secret was written by another identity; run as that identity or take ownership explicitly."
        }
    }
}

/// The fixed sentence a ProvisionPat `200` body carries for a warning of `kind` (contract §3):
/// the warning's own text, which may quote upstream detail, goes only to the log.
pub fn warning_sentence(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::VersionsUnreadable => {
            "The secret's versions could not be read; credentials only a version could attribute were left alone."
        }
        WarningKind::Unrecorded => {
            "Credentials that no version of a configured secret records exist; an operator should review them."
        }
        WarningKind::OwnerChanged => {
            "The credential the secret names belongs to another owner; a new one was provisioned."
        }
        WarningKind::LifetimeShortened => "The new credential was granted a shorter lifetime than configured.",
        WarningKind::LeftBehind => {
            "A credential this run created could not be recorded or deleted yet; a later run or an operator settles it."
        }
        WarningKind::Stale => "A new credential grew too old to be written and was replaced.",
        WarningKind::CreateOutcomeUnknown => {
            "The outcome of creating a credential is unknown; an operator should review the target's credentials."
        }
        WarningKind::OverCap => "The target held more credentials than its cap; the oldest were revoked.",
        WarningKind::OverCapProtected => {
            "The target holds more credentials than its cap, but configured secrets name them; they were kept."
        }
        WarningKind::ProtectionUnreadable => {
            "Another configured secret could not be read, so nothing was revoked this run."
        }
        WarningKind::CapUncounted => {
            "The target's credentials could not be counted again against its cap; none was revoked for it this run."
        }
        WarningKind::Protected => "A credential named by a configured secret's latest version was kept.",
        WarningKind::RevokeSuperseded => "Superseded credentials were revoked at once.",
        WarningKind::KeptInUse => "A superseded credential still in use was kept past its grace.",
        WarningKind::UsageUnknown => {
            "A superseded credential was kept this run because its last use could not be read."
        }
        WarningKind::UsageUnreadable => {
            "The identity cannot read when credentials were last used; superseded ones got the plain grace."
        }
        WarningKind::TakeOwnership => "A version another identity wrote was replaced on request.",
        WarningKind::RotatedByAnotherIdentity => {
            "Another identity wrote the latest version; this run left the target to that identity."
        }
    }
}

/// `{"error": {"code", "message", "invocation_id"}}`: all a caller learns of a failure.
pub fn error_body(code: Code, invocation_id: &str) -> Value {
    json!({ "error": { "code": code, "message": sentence(code), "invocation_id": invocation_id } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = include_str!("../../docs/RUNBOOK.md");

    /// The rows of the runbook's code table: (code, sentence).
    fn runbook_rows() -> Vec<(String, String)> {
        RUNBOOK
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim().strip_prefix('|')?.split('|').map(str::trim).collect();
                let code = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code.to_string(), cells.get(1)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_code_has_the_runbooks_sentence() {
        let rows = runbook_rows();
        for code in Code::ALL {
            let found: Vec<&String> = rows.iter().filter(|(c, _)| c == code.as_str()).map(|(_, s)| s).collect();
            assert_eq!(found.len(), 1, "docs/RUNBOOK.md has {} rows for `{code}`", found.len());
            assert_eq!(found[0], sentence(code), "`{code}`: the runbook and the handler disagree");
        }
        let known: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        for (c, _) in &rows {
            assert!(known.contains(&c.as_str()), "the runbook lists `{c}`, which is no error code");
        }
        assert_eq!(rows.len(), Code::ALL.len());
    }

    #[test]
    fn sentences_are_short_distinct_and_name_nothing() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = sentence(code);
            assert!(seen.insert(s), "`{code}` shares its sentence");
            assert!(s.len() <= 200 && s.ends_with('.'), "`{code}`: {s}");
            for bad in ["http", "vault.azure", "AADSTS", "|", "<", "`"] {
                assert!(!s.contains(bad), "`{code}` sentence contains {bad:?}");
            }
        }
    }

    #[test]
    fn warning_sentences_are_short_distinct_and_name_nothing() {
        let all = WarningKind::ALL;
        let mut seen = std::collections::HashSet::new();
        for k in all {
            let s = warning_sentence(k);
            assert!(seen.insert(s), "{k:?} shares its sentence");
            assert!(s.len() <= 200 && s.ends_with('.'), "{k:?}: {s}");
            for bad in ["http", "vault.azure", "AADSTS", "oid", "appid", "`", "{"] {
                assert!(!s.contains(bad), "{k:?} sentence contains {bad:?}");
            }
        }
    }

    #[test]
    fn the_body_has_exactly_code_message_and_invocation_id() {
        let b = error_body(Code::KeyvaultForbidden, "inv");
        assert_eq!(
            b,
            json!({"error": {"code": "keyvault_forbidden", "message": sentence(Code::KeyvaultForbidden), "invocation_id": "inv"}})
        );
    }
}
