//! The one HTTP client, and the seam every request crosses.
//!
//! [`Http`] is the Azure SDK's `HttpClient` trait object: the Key Vault client and the Entra ID
//! credentials use it as their transport, and the Databricks client sends its own requests
//! through it. Production plugs in one `reqwest::Client` (one rustls, one connection pool);
//! the simulator (`sim/`) plugs in a world that answers each request in process. Everything
//! above this seam — retries, pacing, the SDK's challenge handling, error mapping — is the same
//! code in both.

use std::sync::Arc;
use std::time::Duration;

/// The transport of every request.
pub type Http = Arc<dyn azure_core::http::HttpClient>;

/// Builds the process's HTTP client. TLS is rustls with the platform verifier, which trusts the
/// system roots and a CA named by `SSL_CERT_FILE` (how the local emulators are trusted).
///
/// No overall request timeout is set here: [`super::retry`] bounds every attempt by the call
/// timeout and the invocation deadline, for the SDK's requests as well as ours.
pub fn build(call_timeout: Duration) -> Http {
    let client = reqwest::Client::builder()
        .connect_timeout(call_timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("pat-rotator/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client configuration is static and valid");
    Arc::new(client)
}

/// Whether an error of the transport means the request never left this process (a refused
/// connection): then even a call that is not idempotent may be tried again.
pub fn never_sent(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(a) = x.downcast_ref::<azure_core::Error>()
            && matches!(a.kind(), azure_core::error::ErrorKind::Connection)
        {
            return true;
        }
        if let Some(r) = x.downcast_ref::<reqwest::Error>()
            && r.is_connect()
        {
            return true;
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = x.source();
    }
    false
}
