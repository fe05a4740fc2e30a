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

/// Substrings of a secret at least this long are scrubbed (contract §10).
pub const SCRUB_MIN: usize = 8;

/// Removes from `text` every substring of at least [`SCRUB_MIN`] characters of each secret, in
/// every form an upstream answer may quote it in: plain, JSON-escaped, percent-encoded (and
/// form-encoded) and base64 (standard and URL-safe, at every alignment, so the secret is found
/// inside the base64 of `client_id:secret` too). A secret shorter than that is removed where it
/// occurs whole (from four characters). Used on every upstream text that may quote what it was
/// sent, **before** it is shortened: a cut could otherwise leave a piece that no longer matches
/// the whole value.
pub fn scrub(text: &str, secrets: &[&Redacted]) -> String {
    let forms: Vec<Vec<u8>> = secrets.iter().flat_map(|s| encoded_forms(s.expose())).collect();
    let bytes = text.as_bytes();
    let mut marked = vec![false; bytes.len()];
    let mut grams: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for f in &forms {
        if f.len() >= SCRUB_MIN {
            grams.extend(f.windows(SCRUB_MIN));
        } else if f.len() >= 4 {
            for (i, _) in text.match_indices(std::str::from_utf8(f).unwrap_or("\0")) {
                marked[i..i + f.len()].iter_mut().for_each(|m| *m = true);
            }
        }
    }
    if !grams.is_empty() && bytes.len() >= SCRUB_MIN {
        for i in 0..=bytes.len() - SCRUB_MIN {
            if grams.contains(&bytes[i..i + SCRUB_MIN]) {
                marked[i..i + SCRUB_MIN].iter_mut().for_each(|m| *m = true);
            }
        }
    }
    // Maximal marked runs, widened to whole characters (the forms are ASCII; a secret need not
    // be), then merged.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !marked[i] {
            i += 1;
            continue;
        }
        let (mut a, mut b) = (i, i);
        while b < bytes.len() && marked[b] {
            b += 1;
        }
        i = b;
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        while !text.is_char_boundary(b) {
            b += 1;
        }
        match runs.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => runs.push((a, b)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (a, b) in runs {
        out.push_str(&text[at..a]);
        out.push_str("[redacted]");
        at = b;
    }
    out.push_str(&text[at..]);
    out
}

/// The forms in which `value` may appear in an upstream text.
fn encoded_forms(value: &str) -> Vec<Vec<u8>> {
    let v = value.as_bytes();
    let mut forms = vec![v.to_vec()];
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"');
    forms.push(json.as_bytes().to_vec());
    forms.push(json.replace('/', "\\/").into_bytes());
    let mut upper = String::new();
    let mut lower = String::new();
    for b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
            upper.push(*b as char);
            lower.push(*b as char);
        } else {
            upper.push_str(&format!("%{b:02X}"));
            lower.push_str(&format!("%{b:02x}"));
        }
    }
    forms.push(upper.into_bytes());
    forms.push(lower.into_bytes());
    forms.push(url::form_urlencoded::byte_serialize(v).collect::<String>().into_bytes());
    for alphabet in [BASE64, BASE64_URL] {
        for shift in 0..3 {
            let mut input = vec![0u8; shift];
            input.extend_from_slice(v);
            let enc = base64(&input, alphabet);
            // With bytes before the value, the first group of four mixes them in.
            let skip = if shift == 0 { 0 } else { 4 };
            if enc.len() > skip {
                forms.push(enc.as_bytes()[skip..].to_vec());
                forms.push(enc.trim_end_matches('=').as_bytes()[skip.min(enc.trim_end_matches('=').len())..].to_vec());
            }
        }
    }
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(input: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
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
        let short = Redacted::new("abcd");
        assert_eq!(scrub("x abcd y", &[&short]), "x [redacted] y");
        assert_eq!(scrub("nothing here", &[&s]), "nothing here");
    }

    const VALUE: &str = "dose4f1c9a7e\"b/2+Q 0d8e6a5b4c3d2e1f";

    fn leaks(text: &str) -> Option<String> {
        // Every 8-character piece of the value, in plain form.
        let chars: Vec<char> = VALUE.chars().collect();
        chars.windows(SCRUB_MIN).map(|w| w.iter().collect::<String>()).find(|w| text.contains(w.as_str()))
    }

    #[test]
    fn every_piece_of_eight_characters_goes_in_every_form() {
        let s = Redacted::new(VALUE);
        let json = serde_json::to_string(VALUE).unwrap();
        let percent: String = url::form_urlencoded::byte_serialize(VALUE.as_bytes()).collect();
        let cases = [
            format!("Property 'value' ('{VALUE}') does not match"),
            format!("{{\"error\":{{\"message\":{json}}}}}"),
            format!("GET /x?secret={percent}&y=1"),
            format!("Basic {}", base64(VALUE.as_bytes(), BASE64)),
            format!("Basic {}", base64(format!("0c0c0c0c-2222-4222-8222-cccccccccccc:{VALUE}").as_bytes(), BASE64)),
            format!("Basic {}", base64(format!("ab:{VALUE}").as_bytes(), BASE64_URL)),
            // A piece of it, as a cut might have left it.
            format!("…('{}", &VALUE[..12]),
            format!("{}') does not", &VALUE[VALUE.len() - 9..]),
        ];
        for text in cases {
            let out = scrub(&text, &[&s]);
            assert!(leaks(&out).is_none(), "{text:?} → {out:?}");
            assert!(out.contains("[redacted]"), "{text:?} → {out:?}");
            for form in encoded_forms(VALUE) {
                let f = String::from_utf8(form).unwrap();
                if f.len() >= SCRUB_MIN {
                    assert!(!out.contains(&f), "{f:?} in {out:?}");
                }
            }
        }
    }

    #[test]
    fn scrubbing_keeps_everything_else_and_whole_characters() {
        let s = Redacted::new("ééééééééé-secret");
        let out = scrub("before ééééééééé-secret after ✓", &[&s]);
        assert_eq!(out, "before [redacted] after ✓");
        // Seven characters in common are not a secret's piece.
        let s = Redacted::new("0123456789abcdef");
        assert_eq!(scrub("id 0123456 and 9abcdeX", &[&s]), "id 0123456 and 9abcdeX");
        assert_eq!(scrub("id 01234567", &[&s]), "id [redacted]");
    }

    #[test]
    fn base64_is_the_standard_encoding() {
        assert_eq!(base64(b"", BASE64), "");
        assert_eq!(base64(b"f", BASE64), "Zg==");
        assert_eq!(base64(b"fo", BASE64), "Zm8=");
        assert_eq!(base64(b"foo", BASE64), "Zm9v");
        assert_eq!(base64(b"foobar", BASE64), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff], BASE64), "+/8=");
        assert_eq!(base64(&[0xfb, 0xff], BASE64_URL), "-_8=");
    }
}
