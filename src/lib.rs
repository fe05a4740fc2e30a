//! pat-rotator keeps Azure Databricks credentials — personal access tokens (PATs) and service
//! principals' OAuth secrets — provisioned and rotated in Azure Key Vault, for tools that need a
//! static credential.
//!
//! How the pieces fit, from the outside in:
//!
//! - [`handler`] — the Azure Functions custom handler (actix-web): `RotatePat` (timer) and
//!   `ProvisionPat` (HTTP). It translates the host's JSON or a forwarded request into a call of
//!   the engine and back.
//! - [`cli`] — `rotate`, `status`, `tokens`, `check-config`: the same engine from a terminal or
//!   a pipeline, with tables or `--json`.
//! - [`engine`] — one pass over the configured targets: bounded concurrency, one lock per
//!   target, the invocation's deadline, long-lived clients.
//! - [`rotation`] — the domain, one core for every credential kind: contract §7's rules
//!   ([`rotation::rules`], pure) and one target's rotation ([`rotation::rotate`]) written
//!   against four small ports (an issuer of credentials, a secret store, a clock, a backoff).
//! - [`databricks`] and [`azure`] — the ports for real: a workspace over reqwest with its two
//!   issuers (PATs, a service principal's OAuth secrets), Key Vault and Entra ID tokens through
//!   the official Azure SDK, sharing one HTTP client.
//! - [`transport`] — that HTTP client, the one retry policy, client-side pacing.
//! - [`config`], [`error`], [`secret`], [`logging`] — settings (contract §2, one table of
//!   fields), the stable error codes (contract §5), the redacting type every credential lives
//!   in, and log lines (text or JSON).
//!
//! See ARCHITECTURE.md for the invariants.

pub mod azure;
pub mod cli;
pub mod config;
pub mod databricks;
pub mod engine;
pub mod error;
pub mod handler;
pub mod logging;
pub mod rotation;
pub mod secret;
pub mod transport;
