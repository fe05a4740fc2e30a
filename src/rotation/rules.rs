//! The rules of contract §7 as pure functions: when to rotate, and which tokens may go.
//!
//! Nothing here performs I/O or reads a clock; `now` is an argument. This is the file to read
//! (and to change) for "when does it rotate" and "what does it revoke".

use time::{Duration, OffsetDateTime};

use super::model::{Reason, SecretView, TokenInfo};

/// A token of this target that no version is known to name is left alone for this long, so that
/// a rotation in flight elsewhere (created, not yet written) is never broken.
pub const ORPHAN_WINDOW: Duration = Duration::hours(1);

/// A new token older than this (by the workspace's clock) when its write is due is not written:
/// a concurrent run may soon treat it as an orphan. Half the orphan window, so that the write
/// itself (bounded by configuration) still ends inside the window.
pub const MAX_UNWRITTEN_AGE: Duration = Duration::minutes(30);

/// A target never keeps more live tokens than this (contract §7 step 4).
pub const MAX_LIVE_TOKENS: usize = 6;

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

/// What one run read, as the evidence for what it may revoke (contract §7 step 4).
///
/// A token of the target may go only when the evidence proves that no consumer can still rely on
/// it: it is not the token the latest version names; every version that named it was superseded
/// at least the grace ago; and if it may be named by no version at all (a rotation in flight
/// elsewhere), it is at least [`ORPHAN_WINDOW`] old.
///
/// No version history is read. While the latest version is younger than the grace, a version
/// superseded inside the grace may name any of the listed tokens, so nothing is provable and
/// revocation waits for a later run. Once the latest version is older than the grace, every
/// other version was superseded longer ago than that (each one's successor is no newer than
/// the latest), so only the latest version's token — and tokens young enough to belong to a
/// rotation in flight — are protected.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The identity's tokens as listed.
    pub tokens: &'a [TokenInfo],
    /// The workspace's clock at the moment the latest version was read, at the earliest (the
    /// listing's `Date`, moved back by how long the listing may have been answered after the
    /// read). Token ages are measured against it.
    pub tokens_at: OffsetDateTime,
    /// The latest version as read; `None` when the read proved there is no secret.
    pub latest: Option<Latest<'a>>,
    /// Key Vault's clock when it answered the read.
    pub vault_at: OffsetDateTime,
    /// Tokens this run knows some version names (the one the version it superseded named): for
    /// them the grace decides, not the orphan window.
    pub recorded: &'a [&'a str],
}

/// The latest version, as far as revocation cares.
#[derive(Debug, Clone, Copy)]
pub struct Latest<'a> {
    /// The token it names, if it is ours (`managed-by` and a token id).
    pub token_id: Option<&'a str>,
    /// Its `attributes.created` (Key Vault's clock); `None` proves nothing.
    pub created: Option<OffsetDateTime>,
}

impl<'a> Latest<'a> {
    pub fn of(v: &'a SecretView, created: Option<OffsetDateTime>) -> Latest<'a> {
        Latest { token_id: v.managed.then_some(v.token_id.as_deref()).flatten(), created }
    }
}

/// This target's tokens: those whose comment starts with `prefix`.
pub fn ours<'t>(prefix: &'t str, tokens: &'t [TokenInfo]) -> impl Iterator<Item = &'t TokenInfo> + 't {
    tokens.iter().filter(move |t| t.comment.as_deref().is_some_and(|c| c.starts_with(prefix)))
}

/// Rule 4 of contract §7: the ids of this target's tokens that the evidence proves revocable.
///
/// - never a token whose comment does not start with `prefix`;
/// - never the latest version's token;
/// - nothing while the latest version is younger than `grace` (or its age is unknown);
/// - otherwise every other token of ours, except one that is younger than [`ORPHAN_WINDOW`] and
///   not known to be recorded.
pub fn revocable(prefix: &str, ev: &Evidence<'_>, grace: Duration) -> Vec<String> {
    let protected = ev.latest.and_then(|l| l.token_id);
    let superseded_long_enough = match ev.latest {
        // No secret: no version names anything.
        None => true,
        Some(l) => l.created.is_some_and(|c| ev.vault_at - c >= grace),
    };
    if !superseded_long_enough {
        return Vec::new();
    }
    ours(prefix, ev.tokens)
        .filter(|t| Some(t.id.as_str()) != protected)
        .filter(|t| ev.recorded.contains(&t.id.as_str()) || ev.tokens_at - t.created_at >= ORPHAN_WINDOW)
        .map(|t| t.id.clone())
        .collect()
}

/// The quota bound of contract §7 step 4: which of this target's tokens to revoke so that at most
/// `limit` stay live, oldest by creation first, never `keep` (the latest version's token) and not
/// counting those in `going` (already being revoked). `extra` live tokens not in the list (a new
/// token this run created) count towards the limit.
pub fn over_cap(
    prefix: &str,
    tokens: &[TokenInfo],
    keep: Option<&str>,
    going: &[String],
    extra: usize,
    limit: usize,
) -> Vec<String> {
    let mut live: Vec<&TokenInfo> = ours(prefix, tokens).filter(|t| !going.contains(&t.id)).collect();
    let count = live.len() + extra;
    if count <= limit {
        return Vec::new();
    }
    live.retain(|t| Some(t.id.as_str()) != keep);
    live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    live.into_iter().take(count - limit).map(|t| t.id.clone()).collect()
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

    fn ev<'a>(tokens: &'a [TokenInfo], latest: Option<Latest<'a>>, recorded: &'a [&'a str]) -> Evidence<'a> {
        Evidence { tokens, tokens_at: NOW, latest, vault_at: NOW, recorded }
    }

    fn latest(token: Option<&str>, age: Duration) -> Option<Latest<'_>> {
        Some(Latest { token_id: token, created: Some(NOW - age) })
    }

    fn tokens() -> Vec<TokenInfo> {
        vec![
            tok("cur", "pat-rotator/t/3", Duration::days(3), None),
            tok("prev", "pat-rotator/t/2", Duration::days(60), None),
            tok("old-orphan", "pat-rotator/t/1", Duration::hours(2), None),
            tok("young-orphan", "pat-rotator/t/4", Duration::minutes(10), None),
            tok("foreign", "made by hand", Duration::days(400), None),
            tok("other-target", "pat-rotator/t2/1", Duration::days(400), None),
        ]
    }

    #[test]
    fn nothing_is_provable_while_the_latest_version_is_inside_the_grace() {
        let t = tokens();
        // Latest version written 2 h ago, grace 24 h: any older version may have been superseded
        // a minute before it, however many rotations there were.
        assert!(revocable(P, &ev(&t, latest(Some("cur"), Duration::hours(2)), &[]), Duration::hours(24)).is_empty());
        // Its age unknown: nothing either.
        let unknown = Some(Latest { token_id: Some("cur"), created: None });
        assert!(revocable(P, &ev(&t, unknown, &[]), Duration::ZERO).is_empty());
    }

    #[test]
    fn past_the_grace_only_the_latest_token_and_young_unrecorded_ones_stay() {
        let t = tokens();
        let grace = Duration::hours(24);
        assert_eq!(
            revocable(P, &ev(&t, latest(Some("cur"), Duration::hours(24)), &[]), grace),
            vec!["prev", "old-orphan"]
        );
        // Grace 0: the same right after a write, and a token known to be recorded (the one the
        // run superseded) goes however young it is.
        let young_prev = [
            tok("new", "pat-rotator/t/9", Duration::ZERO, None),
            tok("p", "pat-rotator/t/8", Duration::minutes(5), None),
        ];
        assert_eq!(
            revocable(P, &ev(&young_prev, latest(Some("new"), Duration::ZERO), &["p"]), Duration::ZERO),
            vec!["p"]
        );
        assert!(revocable(P, &ev(&young_prev, latest(Some("new"), Duration::ZERO), &[]), Duration::ZERO).is_empty());
    }

    #[test]
    fn no_secret_means_everything_old_of_ours_is_an_orphan() {
        let tokens = [
            tok("a", "pat-rotator/t/1", Duration::hours(3), None),
            tok("b", "pat-rotator/t/2", Duration::minutes(59), None),
            tok("c", "pat-rotator/tt/2", Duration::hours(3), None),
        ];
        assert_eq!(revocable(P, &ev(&tokens, None, &[]), Duration::hours(24)), vec!["a"]);
    }

    #[test]
    fn a_foreign_latest_version_protects_no_token_once_past_the_grace() {
        let v = SecretView { managed: false, ..view("a", Some("b"), Duration::days(9)) };
        let tokens = [tok("a", "pat-rotator/t/1", Duration::hours(3), None)];
        let l = Some(Latest::of(&v, Some(NOW - Duration::hours(1))));
        assert!(revocable(P, &ev(&tokens, l, &[]), Duration::hours(24)).is_empty());
        let l = Some(Latest::of(&v, Some(NOW - Duration::days(2))));
        assert_eq!(revocable(P, &ev(&tokens, l, &[]), Duration::hours(24)), vec!["a"]);
    }

    #[test]
    fn ages_are_taken_on_the_workspace_clock_at_the_read() {
        let t = [tok("x", "pat-rotator/t/1", Duration::minutes(70), None)];
        let mut e = ev(&t, latest(Some("cur"), Duration::days(2)), &[]);
        assert_eq!(revocable(P, &e, Duration::hours(24)), vec!["x"]);
        // The listing may have been answered 15 minutes after the read: at the read, x was 55
        // minutes old, young enough to be a rotation in flight.
        e.tokens_at = NOW - Duration::minutes(15);
        assert!(revocable(P, &e, Duration::hours(24)).is_empty());
    }

    #[test]
    fn the_cap_revokes_the_oldest_but_never_the_latest_token() {
        let mut t: Vec<TokenInfo> = (0..8)
            .map(|i| tok(&format!("t{i}"), &format!("pat-rotator/t/{i}"), Duration::hours(10 - i), None))
            .collect();
        t.push(tok("foreign", "by hand", Duration::days(9), None));
        // t0 is the oldest and the latest version's token: kept; t1, t2 go.
        assert_eq!(over_cap(P, &t, Some("t0"), &[], 0, 6), vec!["t1", "t2"]);
        // A new token not yet listed counts; tokens already going do not.
        assert_eq!(over_cap(P, &t, Some("t0"), &["t5".to_string()], 1, 6), vec!["t1", "t2"]);
        assert!(over_cap(P, &t[..6], None, &[], 0, 6).is_empty());
    }
}
