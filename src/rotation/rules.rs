//! The rules of contract §7 as pure functions: when to rotate, and which tokens may go.
//!
//! Nothing here performs I/O or reads a clock; `now` is an argument. This is the file to read
//! (and to change) for "when does it rotate" and "what does it revoke".

use time::{Duration, OffsetDateTime};

use super::model::{Reason, SecretView, TokenInfo};

/// A token of this target that is nobody's current or previous one is left alone for this long,
/// so that a rotation in flight elsewhere (created, not yet written) is never broken.
pub const ORPHAN_WINDOW: Duration = Duration::hours(1);

/// Rotate, and why; or keep (`Reason::Fresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Rotate(Reason),
}

/// Rule 2 of contract §7.
///
/// The expiry that counts is the workspace's (`expiry_time` of the listed token): the tag is
/// what we wrote, the workspace is what is true. Facts beat `force` in the reported reason, so a
/// forced run on a revoked token says `revoked_in_workspace`.
pub fn decide(
    secret: Option<&SecretView>,
    tokens: &[TokenInfo],
    renew_before: Duration,
    now: OffsetDateTime,
    force: bool,
) -> Decision {
    let Some(secret) = secret else {
        return Decision::Rotate(Reason::NoSecret);
    };
    if !secret.managed {
        return Decision::Rotate(Reason::ForeignSecret);
    }
    let Some(token_id) = secret.token_id.as_deref() else {
        // Marked as ours but without a token id: not something we wrote; treat it as foreign.
        return Decision::Rotate(Reason::ForeignSecret);
    };
    let Some(token) = tokens.iter().find(|t| t.id == token_id) else {
        return Decision::Rotate(Reason::RevokedInWorkspace);
    };
    if let Some(expires) = token.expires_at
        && expires - now <= renew_before
    {
        return Decision::Rotate(Reason::Expiring);
    }
    if force { Decision::Rotate(Reason::Forced) } else { Decision::Keep }
}

/// Who holds which token, as far as one run knows after it has read (or written) the secret.
#[derive(Debug, Clone, Copy)]
pub struct Holders<'a> {
    /// The token the secret's latest version names.
    pub current: Option<&'a str>,
    /// The token that version superseded, and when it was superseded.
    pub previous: Option<(&'a str, Option<OffsetDateTime>)>,
}

impl<'a> Holders<'a> {
    pub fn from_view(v: Option<&'a SecretView>) -> Holders<'a> {
        match v {
            Some(v) if v.managed => Holders {
                current: v.token_id.as_deref(),
                previous: v.previous_token_id.as_deref().map(|p| (p, v.rotated_at)),
            },
            _ => Holders { current: None, previous: None },
        }
    }
}

/// Rule 4 of contract §7: the ids of this target's tokens that may be revoked now.
///
/// - never the current token;
/// - the previous token once `grace` has passed since `rotated-at` (at once when `grace` is 0);
/// - any other token carrying this target's comment prefix (an orphan) once it is older than
///   [`ORPHAN_WINDOW`];
/// - never a token whose comment does not start with `prefix`.
///
/// A previous token without a known `rotated-at` is treated as an orphan (older than the
/// window), the conservative reading of a tag set we did not write.
pub fn revocable(
    prefix: &str,
    tokens: &[TokenInfo],
    holders: Holders<'_>,
    grace: Duration,
    now: OffsetDateTime,
) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| t.comment.as_deref().is_some_and(|c| c.starts_with(prefix)))
        .filter(|t| Some(t.id.as_str()) != holders.current)
        .filter(|t| match holders.previous {
            Some((prev, Some(rotated_at))) if prev == t.id => rotated_at + grace <= now,
            _ => t.created_at + ORPHAN_WINDOW < now,
        })
        .map(|t| t.id.clone())
        .collect()
}

/// The comment of a token created by rotation attempt `rotation_id` of a target.
pub fn comment(prefix: &str, rotation_id: &str) -> String {
    format!("{prefix}{rotation_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);
    const P: &str = "pat-rotator/t/";

    fn tok(id: &str, comment: &str, age: Duration, expires_in: Option<Duration>) -> TokenInfo {
        TokenInfo {
            id: id.into(),
            comment: Some(comment.into()),
            created_at: NOW - age,
            expires_at: expires_in.map(|d| NOW + d),
        }
    }

    fn view(token: &str, prev: Option<&str>, rotated_ago: Duration) -> SecretView {
        SecretView {
            id: "https://v/secrets/s/1".into(),
            managed: true,
            token_id: Some(token.into()),
            token_expires_at: None,
            rotated_at: Some(NOW - rotated_ago),
            previous_token_id: prev.map(str::to_string),
        }
    }

    #[test]
    fn decide_table() {
        let renew = Duration::days(30);
        let fresh = [tok("a", "pat-rotator/t/1", Duration::days(1), Some(Duration::days(89)))];
        let expiring = [tok("a", "pat-rotator/t/1", Duration::days(70), Some(Duration::days(20)))];
        let never = [tok("a", "pat-rotator/t/1", Duration::days(70), None)];
        let v = view("a", None, Duration::days(1));
        let foreign = SecretView { managed: false, ..v.clone() };
        let untagged = SecretView { token_id: None, ..v.clone() };
        let cases: &[(Option<&SecretView>, &[TokenInfo], bool, Decision)] = &[
            (None, &fresh, false, Decision::Rotate(Reason::NoSecret)),
            (None, &fresh, true, Decision::Rotate(Reason::NoSecret)),
            (Some(&foreign), &fresh, false, Decision::Rotate(Reason::ForeignSecret)),
            (Some(&untagged), &fresh, false, Decision::Rotate(Reason::ForeignSecret)),
            (Some(&v), &[], false, Decision::Rotate(Reason::RevokedInWorkspace)),
            (Some(&v), &[], true, Decision::Rotate(Reason::RevokedInWorkspace)),
            (Some(&v), &expiring, false, Decision::Rotate(Reason::Expiring)),
            (Some(&v), &expiring, true, Decision::Rotate(Reason::Expiring)),
            (Some(&v), &fresh, true, Decision::Rotate(Reason::Forced)),
            (Some(&v), &fresh, false, Decision::Keep),
            (Some(&v), &never, false, Decision::Keep),
        ];
        for (i, (s, t, force, want)) in cases.iter().enumerate() {
            assert_eq!(decide(*s, t, renew, NOW, *force), *want, "case {i}");
        }
    }

    #[test]
    fn expiring_boundary_is_inclusive() {
        let t = [tok("a", "pat-rotator/t/1", Duration::days(60), Some(Duration::days(30)))];
        let v = view("a", None, Duration::days(60));
        assert_eq!(decide(Some(&v), &t, Duration::days(30), NOW, false), Decision::Rotate(Reason::Expiring));
        let t = [tok("a", "pat-rotator/t/1", Duration::days(60), Some(Duration::days(30) + Duration::seconds(1)))];
        assert_eq!(decide(Some(&v), &t, Duration::days(30), NOW, false), Decision::Keep);
    }

    #[test]
    fn revocation_rules() {
        let tokens = [
            tok("cur", "pat-rotator/t/3", Duration::minutes(1), None),
            tok("prev", "pat-rotator/t/2", Duration::days(60), None),
            tok("old-orphan", "pat-rotator/t/1", Duration::hours(2), None),
            tok("young-orphan", "pat-rotator/t/4", Duration::minutes(10), None),
            tok("foreign", "made by hand", Duration::days(400), None),
            tok("other-target", "pat-rotator/t2/1", Duration::days(400), None),
        ];
        let v = view("cur", Some("prev"), Duration::hours(2));
        let h = Holders::from_view(Some(&v));
        // Grace 24 h, rotated 2 h ago: previous kept.
        assert_eq!(revocable(P, &tokens, h, Duration::hours(24), NOW), vec!["old-orphan"]);
        // Grace 0: previous goes too.
        assert_eq!(revocable(P, &tokens, h, Duration::ZERO, NOW), vec!["prev", "old-orphan"]);
        // Grace just elapsed.
        assert_eq!(revocable(P, &tokens, h, Duration::hours(2), NOW), vec!["prev", "old-orphan"]);
    }

    #[test]
    fn no_secret_means_everything_old_of_ours_is_an_orphan() {
        let tokens = [
            tok("a", "pat-rotator/t/1", Duration::hours(3), None),
            tok("b", "pat-rotator/t/2", Duration::minutes(59), None),
            tok("c", "pat-rotator/tt/2", Duration::hours(3), None),
        ];
        let h = Holders::from_view(None);
        assert_eq!(revocable(P, &tokens, h, Duration::hours(24), NOW), vec!["a"]);
    }

    #[test]
    fn foreign_secret_protects_nothing_but_young_tokens() {
        let v = SecretView { managed: false, ..view("a", Some("b"), Duration::days(9)) };
        let tokens = [tok("a", "pat-rotator/t/1", Duration::hours(3), None)];
        assert_eq!(revocable(P, &tokens, Holders::from_view(Some(&v)), Duration::hours(24), NOW), vec!["a"]);
    }

    #[test]
    fn previous_without_rotated_at_uses_orphan_window() {
        let mut v = view("cur", Some("prev"), Duration::ZERO);
        v.rotated_at = None;
        let young = [tok("prev", "pat-rotator/t/2", Duration::minutes(5), None)];
        let old = [tok("prev", "pat-rotator/t/2", Duration::hours(5), None)];
        let h = Holders::from_view(Some(&v));
        assert!(revocable(P, &young, h, Duration::ZERO, NOW).is_empty());
        assert_eq!(revocable(P, &old, h, Duration::ZERO, NOW), vec!["prev"]);
    }
}
