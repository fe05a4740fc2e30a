//! Azure: Entra ID tokens ([`credential`]) and Key Vault ([`keyvault`]), both through the
//! official Azure SDK for Rust, and the targets blob of Storage ([`blob`]), all on the process's
//! one HTTP client.

pub mod blob;
pub mod credential;
pub mod federation;
pub mod keyvault;

/// Every message of an Azure SDK error chain, joined — the SDK wraps its useful text.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ").replace("\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot", "")
}
