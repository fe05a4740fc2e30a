//! A string that never shows itself.
//!
//! Every credential this program touches — a PAT, an Entra ID access token, the managed
//! identity header, a client secret — lives in a [`Redacted`] from the moment it is read to the
//! moment it is sent. `Debug` and `Display` print `[redacted]`, there is no `Serialize`, and the
//! only way to the value is the explicit [`Redacted::expose`], so a secret can reach a log line,
//! an error message or a response body only through a call that is easy to grep for.

use std::fmt;

use zeroize::Zeroize;

/// A secret string. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(value: impl Into<String>) -> Self {
        Redacted(value.into())
    }

    /// The value itself. Call this only where the value leaves for its one legitimate
    /// destination (an `Authorization` header, the Key Vault `value` field).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Zeroes every byte of the buffer (spare capacity too) and leaves the value empty.
    fn wipe(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Drop for Redacted {
    /// Overwrites the whole buffer, spare capacity included, so the value does not linger in
    /// freed memory. `zeroize` writes volatile, so the compiler cannot drop the writes as dead
    /// stores to memory about to be freed (a plain `fill(0)` may be). Best effort: copies made
    /// by HTTP stacks and the SDK are out of our reach.
    fn drop(&mut self) {
        self.wipe();
    }
}

/// Removes every occurrence of each secret from `text`. Used on text that came from outside
/// (an upstream error body) before it is put into an error message.
pub fn scrub(text: &str, secrets: &[&Redacted]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.expose().len() >= 4 {
            out = out.replace(s.expose(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Redacted::new("dapi0123456789abcdef");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "dapi0123456789abcdef");
    }

    #[test]
    fn the_wipe_clears_every_byte_of_the_buffer() {
        // Spare capacity that once held part of the value: a wipe of only `len` bytes misses it.
        let mut value = String::from("dapi-0123456789abcdef");
        value.truncate(4);
        let mut s = Redacted::new(value);
        let (ptr, cap) = (s.0.as_ptr(), s.0.capacity());
        assert!(cap >= 21);
        s.wipe();
        // SAFETY: the allocation is still owned by `s` (zeroize keeps the capacity) and every
        // byte of it was just written.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, cap) };
        assert!(bytes.iter().all(|b| *b == 0), "{bytes:?}");
        assert_eq!(s.0.capacity(), cap);
    }

    #[test]
    fn scrub_removes_values() {
        let s = Redacted::new("dapiSECRET");
        assert_eq!(scrub("bad token dapiSECRET here", &[&s]), "bad token [redacted] here");
    }
}
