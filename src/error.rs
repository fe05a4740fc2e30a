//! One error type with the stable codes of contract §5.
//!
//! Clients translate what Azure or Databricks said into an [`Error`] as early as possible, so the
//! rest of the program reasons about codes, not HTTP. Messages are written for an operator and
//! never carry a secret: upstream bodies are truncated and scrubbed before they get here.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The stable error codes of contract §5 (serialised in snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    ConfigInvalid,
    UnknownTarget,
    InvalidRequest,
    IdentityUnavailable,
    DatabricksUnauthorized,
    DatabricksForbidden,
    DatabricksQuotaExceeded,
    DatabricksLifetimeTooLong,
    DatabricksError,
    KeyvaultForbidden,
    KeyvaultSecretDeleted,
    KeyvaultError,
    Throttled,
    UpstreamUnavailable,
    Timeout,
    /// Entra ID refused the federated exchange of a target's `client_id` (contract §8);
    /// ProvisionPat answers 502 like other upstream refusals.
    IdentityFederationRefused,
    /// No service principal with the target's `service_principal` application id in the
    /// workspace (contract §9).
    DatabricksPrincipalNotFound,
    /// The CLI would replace a version another identity wrote (contract §10);
    /// `--take-ownership` overrides, except for `--revoke-superseded`.
    RotatedByAnotherIdentity,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ConfigInvalid => "config_invalid",
            Code::UnknownTarget => "unknown_target",
            Code::InvalidRequest => "invalid_request",
            Code::IdentityUnavailable => "identity_unavailable",
            Code::DatabricksUnauthorized => "databricks_unauthorized",
            Code::DatabricksForbidden => "databricks_forbidden",
            Code::DatabricksQuotaExceeded => "databricks_quota_exceeded",
            Code::DatabricksLifetimeTooLong => "databricks_lifetime_too_long",
            Code::DatabricksError => "databricks_error",
            Code::KeyvaultForbidden => "keyvault_forbidden",
            Code::KeyvaultSecretDeleted => "keyvault_secret_deleted",
            Code::KeyvaultError => "keyvault_error",
            Code::Throttled => "throttled",
            Code::UpstreamUnavailable => "upstream_unavailable",
            Code::Timeout => "timeout",
            Code::IdentityFederationRefused => "identity_federation_refused",
            Code::DatabricksPrincipalNotFound => "databricks_principal_not_found",
            Code::RotatedByAnotherIdentity => "rotated_by_another_identity",
        }
    }
}

impl Code {
    /// Every code, in the order of contract §5.
    pub const ALL: [Code; 18] = [
        Code::ConfigInvalid,
        Code::UnknownTarget,
        Code::InvalidRequest,
        Code::IdentityUnavailable,
        Code::DatabricksUnauthorized,
        Code::DatabricksForbidden,
        Code::DatabricksQuotaExceeded,
        Code::DatabricksLifetimeTooLong,
        Code::DatabricksError,
        Code::KeyvaultForbidden,
        Code::KeyvaultSecretDeleted,
        Code::KeyvaultError,
        Code::Throttled,
        Code::UpstreamUnavailable,
        Code::Timeout,
        Code::IdentityFederationRefused,
        Code::DatabricksPrincipalNotFound,
        Code::RotatedByAnotherIdentity,
    ];
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, with the stable code, an operator-facing message and the facts the retry
/// logic needs.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// The service asked us to wait this long (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Trying the same idempotent call again may succeed (429, 5xx, connection trouble).
    pub transient: bool,
    /// HTTP status of the upstream answer, when there was one.
    pub status: Option<u16>,
    /// The upstream service's own error code (`QUOTA_EXCEEDED`, `ForbiddenByRbac`, …).
    pub upstream_code: Option<String>,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), retry_after: None, transient: false, status: None, upstream_code: None }
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    pub fn with_upstream_code(mut self, c: Option<String>) -> Self {
        self.upstream_code = c;
        self
    }

    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The `{"code": …, "message": …}` object of contract §4/§3.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Code,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody { code: e.code, message: e.message.clone() }
    }
}

/// Shortens text from an upstream body so an error message stays one readable line.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 300 {
        let cut: String = one_line.chars().take(300).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}
