//! Log setup. `RUST_LOG` filters (default `info`, with the SDK and HTTP crates at `warn`).
//!
//! - CLI commands log to stderr only; stdout carries the table or JSON document.
//! - `serve` logs to stdout, except warnings and errors to stderr: the Functions host records
//!   handler stdout as Information and stderr as Error (Warning when the line says "warn").

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

const DEFAULT_FILTER: &str = "info,azure_core=warn,azure_identity=warn,azure_security_keyvault_secrets=warn,typespec_client_core=warn,reqwest=warn,hyper=warn,hyper_util=warn,actix_server=warn,actix_web=warn,rustls=warn";

fn filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        _ => EnvFilter::new(DEFAULT_FILTER),
    }
}

pub fn init_cli() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

pub fn init_serve() {
    let writer = std::io::stderr.with_max_level(tracing::Level::WARN).or_else(std::io::stdout);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
