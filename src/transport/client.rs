//! The one HTTP client.

use std::time::Duration;

/// Builds the process's HTTP client. TLS is rustls with the platform verifier, which trusts the
/// system roots and a CA named by `SSL_CERT_FILE` (how the local emulators are trusted).
///
/// No overall request timeout is set here: [`super::retry`] bounds every attempt by the call
/// timeout and the invocation deadline, for the SDK's requests as well as ours.
pub fn build(call_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(call_timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("pat-rotator/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client configuration is static and valid")
}
