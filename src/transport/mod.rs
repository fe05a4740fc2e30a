//! Transport concerns shared by every client: the one HTTP client, the one retry policy (with
//! the invocation's deadline), and client-side pacing.
//!
//! - [`client`]: builds the single `reqwest::Client` (one rustls, one connection pool) that the
//!   Databricks client uses directly and the Azure SDK uses as its transport.
//! - [`retry`]: retries of idempotent calls on 429/5xx/connection trouble, honouring
//!   `Retry-After`, bounded by attempts and by the deadline of the current invocation.
//! - [`pacing`]: sliding-window rate limiters per vault and per workspace.

pub mod client;
pub mod pacing;
pub mod retry;

/// An HTTP `Date` header (RFC 7231), as both services send it: their clocks, by which every
/// age and grace is judged.
pub fn http_date(v: &str) -> Option<time::OffsetDateTime> {
    httpdate::parse_http_date(v).ok().map(time::OffsetDateTime::from)
}
