//! Tiny encoders the fakes need for wire-realistic identifiers.
//!
//! Base64url gives the AAD tokens a JWT shape and Key Vault's `$skiptoken` an opaque look;
//! random hex gives Key Vault versions and Databricks token ids their real lengths. They are
//! a few lines each, so the crate does not take a dependency for them.

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5), as used in JWTs.
pub(crate) fn b64url_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Inverse of [`b64url_encode`]; `None` on any character outside the alphabet.
pub(crate) fn b64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in input.bytes() {
        let v = B64URL.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Standard base64 (RFC 4648 §4, `+` `/`, padding optional), as in HTTP Basic credentials.
/// `None` on any other character.
pub(crate) fn b64_std_decode(input: &str) -> Option<Vec<u8>> {
    let url_safe: String = input
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => Some('-'),
            '/' => Some('_'),
            '-' | '_' => None,
            c => Some(c),
        })
        .collect::<Option<String>>()?;
    b64url_decode(&url_safe)
}

/// `n` random lowercase hex characters (n ≤ 64), from UUID v4 randomness.
pub(crate) fn random_hex(n: usize) -> String {
    let mut s = String::with_capacity(64);
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// `n` random bytes.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        v.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    v.truncate(n);
    v
}

/// SplitMix64: the next value of a small deterministic generator (Steele, Lea, Flood 2014).
/// Enough for shuffling listings reproducibly from a seed; not for anything secret.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// SplitMix64's finaliser: a bijective scramble of 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random 64-bit seed.
pub(crate) fn random_u64() -> u64 {
    let b = random_bytes(8);
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_per_seed() {
        let (mut a, mut b, mut c) = (7u64, 7u64, 8u64);
        let xs: Vec<u64> = (0..4).map(|_| splitmix64(&mut a)).collect();
        let ys: Vec<u64> = (0..4).map(|_| splitmix64(&mut b)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], splitmix64(&mut c));
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            let enc = b64url_encode(&data);
            assert!(!enc.contains('='));
            assert_eq!(b64url_decode(&enc).unwrap(), data);
        }
        assert_eq!(b64url_encode(b"{\"a\":1}"), "eyJhIjoxfQ");
        assert!(b64url_decode("a+b").is_none());
        // "client:se+cr/et?" in standard base64, with and without padding.
        assert_eq!(b64_std_decode("Y2xpZW50OnNlK2NyL2V0Pw==").unwrap(), b"client:se+cr/et?");
        assert_eq!(b64_std_decode("Y2xpZW50OnNlK2NyL2V0Pw").unwrap(), b"client:se+cr/et?");
        assert!(b64_std_decode("a-b").is_none());
    }

    #[test]
    fn random_hex_has_requested_length() {
        let h = random_hex(64);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(random_hex(32), random_hex(32));
    }
}

/// `YYYY-MM-DD HH:MM:SSZ` for Unix seconds, the timestamp style of AAD error bodies.
pub(crate) fn utc_timestamp(secs: i64) -> String {
    let (y, m, d, rem) = civil(secs);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// RFC 3339 in UTC with milliseconds (`2023-01-01T19:30:41.000Z`), the time format of
/// Databricks' protobuf-based APIs (service principal secrets).
pub(crate) fn rfc3339_millis(millis: i64) -> String {
    let (y, m, d, rem) = civil(millis.div_euclid(1000));
    let ms = millis.rem_euclid(1000);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day, seconds into the day) of Unix seconds, proleptic Gregorian, UTC.
fn civil(secs: i64) -> (i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn utc_timestamp_formats_known_instants() {
        assert_eq!(super::utc_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc_timestamp(1_700_000_000), "2023-11-14 22:13:20Z");
        assert_eq!(super::utc_timestamp(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn rfc3339_millis_formats_known_instants() {
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339_millis(1_672_601_441_007), "2023-01-01T19:30:41.007Z");
        assert_eq!(super::rfc3339_millis(951_782_400_999), "2000-02-29T00:00:00.999Z");
    }
}
