//! Invariant 0's eye: every secret the world ever issued — PATs, OAuth secrets, Entra ID and
//! OAuth access tokens, the identity header — live or dead, in every form a program might print
//! it: as is (which is also its JSON-escaped and percent-encoded form: values are made of
//! letters, digits, `.`, `-` and `_`), in base64, and for OAuth secrets as the base64 of
//! `client_id:secret` (HTTP Basic).
//!
//! Any [`WINDOW`] consecutive characters of one of those forms in an output is a leak: a
//! program that prints part of a value has leaked it (contract §10 scrubs substrings of 8 and
//! more; the window is longer so that two random values never meet by chance). Outputs are
//! scanned only inside runs of characters a value can contain, so ordinary text costs a pass.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Windows are already well mixed bytes of random values: a multiply is hash enough (and the
/// default SipHash was a tenth of a schedule's time).
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = ((v as u64) ^ ((v >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Characters in a row that make a leak.
pub const WINDOW: usize = 12;

/// What a value may be made of, in any of its forms.
fn secret_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.')
}

fn key(w: &[u8]) -> u128 {
    let mut k = 0u128;
    for b in w {
        k = (k << 8) | *b as u128;
    }
    k
}

#[derive(Debug, Default)]
pub struct Leaks {
    /// Window → the secret it belongs to.
    windows: HashMap<u128, u32, BuildHasherDefault<Mix>>,
    names: Vec<String>,
}

impl Leaks {
    /// A secret, in its plain and base64 forms.
    pub fn add(&mut self, secret: &str) {
        let n = self.names.len() as u32;
        self.names.push(secret.chars().take(8).collect::<String>() + "…");
        for form in [secret.to_string(), azure_core::base64::encode(secret)] {
            self.windows_of(&form, n);
        }
    }

    /// A credential's value; `client_id`: an OAuth secret's application id (HTTP Basic).
    pub fn add_credential(&mut self, value: &str, client_id: Option<&str>) {
        self.add(value);
        if let Some(c) = client_id {
            let n = self.names.len() as u32 - 1;
            self.windows_of(&azure_core::base64::encode(format!("{c}:{value}")), n);
        }
    }

    fn windows_of(&mut self, form: &str, n: u32) {
        let b = form.as_bytes();
        if b.len() < WINDOW {
            return;
        }
        for w in b.windows(WINDOW) {
            self.windows.entry(key(w)).or_insert(n);
        }
    }

    /// The secret `text` shows part of, if any (its first characters, for the report).
    pub fn find(&self, text: &str) -> Option<&str> {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !secret_char(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && secret_char(b[i]) {
                i += 1;
            }
            if i - start >= WINDOW {
                for w in b[start..i].windows(WINDOW) {
                    if let Some(n) = self.windows.get(&key(w)) {
                        return Some(&self.names[*n as usize]);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_and_any_part_is_found_and_nothing_else() {
        let mut l = Leaks::default();
        let v = "dapi0123456789abcdef0123456789abcdef";
        l.add_credential(v, None);
        l.add_credential("dose00ff00ff00ff00ff00ff00ff00ff00ff", Some("6f0c3f7e-1b7a-4c7e-9a52-3d1f0c2b9e11"));
        assert!(l.find(&format!("error: {v} refused")).is_some());
        assert!(l.find("quoted ('456789abcdef0123…') in a message").is_some(), "a part of it");
        assert!(l.find(&azure_core::base64::encode(v)).is_some());
        let basic =
            azure_core::base64::encode("6f0c3f7e-1b7a-4c7e-9a52-3d1f0c2b9e11:dose00ff00ff00ff00ff00ff00ff00ff00ff");
        assert!(l.find(&format!("Authorization: Basic {basic}")).is_some());
        assert_eq!(l.find("tok-001 revoked; version 3f2a9c4e1b7d… of kv-a/databricks-pat"), None);
        assert_eq!(l.find("dapi0123456"), None, "shorter than the window");
    }
}
