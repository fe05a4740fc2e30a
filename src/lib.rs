//! pat-rotator keeps Azure Databricks personal access tokens (PATs) provisioned and rotated in
//! Azure Key Vault, for tools that only accept a static token.
//!
//! How the pieces fit, from the outside in:
//!
//! - [`handler`] — the Azure Functions custom handler (actix-web): `RotatePat` (timer) and
//!   `ProvisionPat` (HTTP). It translates the host's JSON or a forwarded request into a call of
//!   the engine and back.
//! - [`cli`] — `rotate`, `status`, `check-config`: the same engine from a terminal or a
//!   pipeline, with tables or `--json`.
//! - [`engine`] — one pass over the configured targets: bounded concurrency, one lock per
//!   target, the invocation's deadline, long-lived clients.
//! - [`rotation`] — the domain: contract §7's rules ([`rotation::rules`], pure) and one
//!   target's rotation ([`rotation::rotate`]) written against three small ports.
//! - [`databricks`] and [`azure`] — the ports for real: the Token API over reqwest, Key Vault
//!   and Entra ID tokens through the official Azure SDK, sharing one HTTP client.
//! - [`transport`] — that HTTP client, the one retry policy, client-side pacing.
//! - [`config`], [`error`], [`secret`] — settings (contract §2), the stable error codes
//!   (contract §5), and the redacting type every credential lives in.
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
