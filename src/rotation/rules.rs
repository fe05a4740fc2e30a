//! The rules of contract §7 as pure functions: when to rotate, whose a credential is, and which
//! credentials may go.
//!
//! Nothing here performs I/O or reads a clock; every time is an argument, taken from the
//! services' clocks. This is the file to read (and to change) for "when does it rotate" and
//! "what does it revoke".

use std::collections::BTreeSet;

use time::{Date, Duration, OffsetDateTime};

use super::model::{Credential, Ownership, Profile, Reason, SecretView, StoredSecret};
use super::ports::Usage;

/// A credential of this target that no version is known to name is left alone for this long,
/// so that a rotation in flight elsewhere (created, not yet written) is never broken.
pub const ORPHAN_WINDOW: Duration = Duration::hours(1);

/// A new credential older than this (by the issuer's clock) when its write is due is not
/// written: a concurrent run may soon treat it as an orphan. Half the orphan window, so that
/// the write itself (bounded by configuration) still ends inside the window.
pub const MAX_UNWRITTEN_AGE: Duration = Duration::minutes(30);

/// Rotate, and why; or keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Rotate(Reason),
}

/// Rule 2 of contract §7, in the contract's order.
///
/// The expiry that counts is the issuer's (the listed credential's): the tag is what we wrote,
/// the issuer is what is true. Facts beat `force` in the reported reason, so a forced run on a
/// revoked token says `revoked_in_workspace`.
///
/// `tied`: versions sharing the latest version's `created` second when it was found from the
/// versions list (contract §7.4): each counts as the latest, so the target rotates when any of
/// them is foreign, disabled, or names a credential that is not listed.
pub fn decide(
    secret: Option<&SecretView>,
    tied: &[SecretView],
    listed: &[Credential],
    renew_before: Duration,
    now: OffsetDateTime,
    force: bool,
) -> Decision {
    let Some(secret) = secret else {
        return Decision::Rotate(Reason::NoSecret);
    };
    let latest = || std::iter::once(secret).chain(tied);
    // Marked as ours but without a credential id: not something we wrote; foreign too.
    let names = |v: &SecretView| v.credential_id.clone().filter(|_| v.managed);
    if latest().any(|v| names(v).is_none()) {
        return Decision::Rotate(Reason::ForeignSecret);
    }
    if latest().any(|v| !v.enabled) {
        return Decision::Rotate(Reason::DisabledSecret);
    }
    if latest().filter_map(names).any(|id| !listed.iter().any(|c| c.id == id)) {
        return Decision::Rotate(Reason::RevokedInWorkspace);
    }
    let id = names(secret).unwrap_or_default();
    let current = listed.iter().find(|c| c.id == id);
    if let Some(expires) = current.and_then(|c| c.expires_at)
        && expires - now <= renew_before
    {
        return Decision::Rotate(Reason::Expiring);
    }
    if force { Decision::Rotate(Reason::Forced) } else { Decision::Keep }
}

/// Contract §10 ("Key Vault events"): a run started by `SecretNearExpiry` or `SecretExpired`
/// rotates a target whose latest version expires within this, whatever `renew_before_days`
/// says.
pub const EVENT_EXPIRY_WINDOW: Duration = Duration::days(30);

/// Whether a version whose `attributes.exp` is `exp` expires within `window` of `now` (or has
/// expired). A version without `exp` never does.
pub fn expires_within(exp: Option<OffsetDateTime>, now: OffsetDateTime, window: Duration) -> bool {
    exp.is_some_and(|e| e - now <= window)
}

/// Contract §10: the identity that wrote a managed latest version, when it is not `me` (the
/// identity this run writes as; `None` when its object id could not be read). `latest` holds
/// every version that counts as the latest: one, or several when they share the newest
/// `created` second — then another identity if any of them names one.
///
/// A version that is not managed (foreign) is no one's to protect; one without `rotated-by`
/// (written before the tag) is accepted; `unknown`, or any tag while `me` is unknown, cannot be
/// proven to be this identity, so it is another's.
pub fn written_by_another<'a>(latest: &[&'a SecretView], me: Option<&str>) -> Option<&'a str> {
    let mine = |by: &str| {
        !by.eq_ignore_ascii_case(super::model::tags::UNKNOWN_WRITER) && me.is_some_and(|me| by.eq_ignore_ascii_case(me))
    };
    latest.iter().filter(|v| v.managed).filter_map(|v| v.rotated_by.as_deref()).find(|by| !mine(by))
}

/// Contract §3: a forced ProvisionPat is evaluated as an unforced one while the latest version
/// is younger than the cooldown (an unknown age counts as inside), or when the target already
/// holds one credential below its cap.
pub fn force_declined(
    latest_created: Option<OffsetDateTime>,
    vault_at: Option<OffsetDateTime>,
    cooldown: Duration,
    live_ours: usize,
    cap: usize,
) -> bool {
    // A cooldown of 0 is none (contract §2): not even a `Date` a second behind `created` (a
    // front end's cached clock) or a missing one puts a version inside it.
    let inside = cooldown > Duration::ZERO
        && match (latest_created, vault_at) {
            (Some(c), Some(at)) => at - c < cooldown,
            _ => true,
        };
    inside || live_ours + 1 >= cap
}

/// Settles [`Ownership::IfRecorded`]: such a credential is the target's exactly when some
/// version of the secret names it (`named`); otherwise it is someone else's, or unaccounted for,
/// and is never touched.
pub fn resolve(listed: &[Credential], named: &BTreeSet<String>) -> Vec<Credential> {
    listed
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.ownership == Ownership::IfRecorded {
                c.ownership = if named.contains(&c.id) { Ownership::Ours } else { Ownership::NotOurs };
            }
            c
        })
        .collect()
}

/// This target's credentials (after [`resolve`]).
pub fn ours(creds: &[Credential]) -> impl Iterator<Item = &Credential> {
    creds.iter().filter(|c| c.ownership == Ownership::Ours)
}

/// What one run read, as the evidence for what it may revoke (contract §7 step 4).
///
/// A credential may go only when the evidence proves that no consumer can still rely on it: it
/// is not the one the latest version names; every version that named it was superseded at least
/// the grace ago; and if it may be named by no version at all (a rotation in flight elsewhere),
/// it is at least [`ORPHAN_WINDOW`] old on the issuer's clock.
///
/// No version history is needed. While the latest version is younger than the grace, a version
/// superseded inside the grace may name any credential, so nothing is provable and revocation
/// waits for a later run. Once the latest version is older than the grace, every other version
/// was superseded longer ago than that (each one's successor is no newer than the latest).
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The issuer's credentials as listed, ownership resolved.
    pub creds: &'a [Credential],
    /// The issuer's clock at the moment the latest version was read, at the earliest (the
    /// listing's `Date`, moved back by how long the listing may have trailed the read). `None`:
    /// the issuer sent no `Date`, so no credential's age is proven.
    pub creds_at: Option<OffsetDateTime>,
    pub latest: Latest<'a>,
    /// Key Vault's clock when it answered the read; `None` proves no grace.
    pub vault_at: Option<OffsetDateTime>,
    /// Credentials this run knows some version names: for them the grace decides, not the
    /// orphan window.
    pub recorded: &'a [&'a str],
    /// Credentials a latest version names besides `latest`'s own: versions tied with it, the
    /// other kind's tag, the latest versions of other configured secrets (contract §7.4(a)).
    /// Never revocable.
    pub protected: &'a BTreeSet<String>,
}

/// The latest version, as far as revocation cares.
#[derive(Debug, Clone, Copy)]
pub enum Latest<'a> {
    /// The vault answered "no such secret". That proves nothing (soft-deleted, recovering):
    /// nothing is revocable on it.
    Absent,
    Found {
        /// The credential it names, whatever its other tags say.
        credential_id: Option<&'a str>,
        /// Its `attributes.created` (Key Vault's clock); `None` proves nothing.
        created: Option<OffsetDateTime>,
    },
}

/// Rule 4 of contract §7: the ids of this target's credentials that the evidence proves
/// revocable.
pub fn revocable(ev: &Evidence<'_>, grace: Duration) -> Vec<String> {
    let (protected, created) = match ev.latest {
        // The old defect, for the simulator to find: an absent secret read as "no version names
        // anything", so every old credential of ours looked like an orphan.
        #[cfg(feature = "sim-bugs")]
        Latest::Absent if super::bugs::on(super::bugs::Bug::AbsentIsProof) => {
            return ours(ev.creds)
                .filter(|c| {
                    ev.recorded.contains(&c.id.as_str()) || age(c, ev.creds_at).is_some_and(|a| a >= ORPHAN_WINDOW)
                })
                .map(|c| c.id.clone())
                .collect();
        }
        Latest::Absent => return Vec::new(),
        Latest::Found { credential_id, created } => (credential_id, created),
    };
    let superseded_long_enough = match (created, ev.vault_at) {
        (Some(c), Some(at)) => at - c >= grace,
        _ => false,
    };
    if !superseded_long_enough {
        return Vec::new();
    }
    ours(ev.creds)
        .filter(|c| Some(c.id.as_str()) != protected && !ev.protected.contains(&c.id))
        .filter(|c| ev.recorded.contains(&c.id.as_str()) || age(c, ev.creds_at).is_some_and(|a| a >= ORPHAN_WINDOW))
        .map(|c| c.id.clone())
        .collect()
}

/// A credential's age on the issuer's clock, when both ends are known.
fn age(c: &Credential, at: Option<OffsetDateTime>) -> Option<Duration> {
    Some(at? - c.created_at?)
}

/// What the cap of contract §7 step 4 revokes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capped {
    /// Oldest first.
    pub revoke: Vec<String>,
    /// How many more would have to go to get down to the limit, but a latest version names
    /// them (contract §7.4(a)): the target stays above the limit and the run warns.
    pub held: usize,
}

/// The bound of contract §7 step 4: which of this target's credentials to revoke so that at
/// most `limit` stay live, oldest by creation first, never one in `protected` (what a latest
/// version names: the secret's own, a tied one, another configured secret's), not counting
/// those in `going` (already being revoked). `extra` live credentials not in the list (a new
/// one this run created) count towards the limit.
pub fn over_cap(
    creds: &[Credential],
    protected: &BTreeSet<String>,
    going: &[String],
    extra: usize,
    limit: usize,
) -> Capped {
    let mut live: Vec<&Credential> = ours(creds).filter(|c| !going.contains(&c.id)).collect();
    let count = live.len() + extra;
    if count <= limit {
        return Capped::default();
    }
    let before = live.len();
    live.retain(|c| !protected.contains(&c.id));
    let named = before - live.len();
    // Unknown creation times sort first: they are the least provably young.
    live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    let revoke: Vec<String> = live.into_iter().take(count - limit).map(|c| c.id.clone()).collect();
    Capped { held: (count - limit - revoke.len()).min(named), revoke }
}

/// [`over_cap`] when some credentials are known to be in use (contract §10 "Usage"): those not
/// in use go first, oldest first, then those in use, oldest first. As many go, and as many are
/// held, as [`over_cap`] says.
pub fn over_cap_unused_first(
    creds: &[Credential],
    protected: &BTreeSet<String>,
    going: &[String],
    in_use: &BTreeSet<String>,
    extra: usize,
    limit: usize,
) -> Capped {
    let plain = over_cap(creds, protected, going, extra, limit);
    if plain.revoke.is_empty() || in_use.is_empty() {
        return plain;
    }
    let mut live: Vec<&Credential> =
        ours(creds).filter(|c| !going.contains(&c.id) && !protected.contains(&c.id)).collect();
    // Unknown creation times sort first within each group, as in `over_cap`.
    live.sort_by(|a, b| {
        (in_use.contains(&a.id), a.created_at, &a.id).cmp(&(in_use.contains(&b.id), b.created_at, &b.id))
    });
    Capped { revoke: live.into_iter().take(plain.revoke.len()).map(|c| c.id.clone()).collect(), held: plain.held }
}

/// When a credential stopped being the one a secret names (contract §10 "Usage": it is kept
/// no longer than `renew_before_days` after that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supersession {
    /// Superseded at this moment (the successor version's `created`, Key Vault's clock).
    At(OffsetDateTime),
    /// No version names it: it never reached the vault (a run stopped before its write), so no
    /// consumer can hold it.
    NeverRecorded,
    /// The versions do not tell (the latest still names it, or no `created`).
    Unknown,
}

/// When the versions of a secret say `id` was superseded: the `created` of the first version
/// after the last one naming it (`profile`'s id tag; a version of the same second counts as
/// after it, the earlier reading); without any version naming it by the id tag, the first
/// version naming it as its predecessor.
pub fn supersession(versions: &[StoredSecret], id: &str, profile: &Profile) -> Supersession {
    let names = |v: &StoredSecret| v.names(profile);
    let named: Vec<&StoredSecret> = versions.iter().filter(|v| names(v).0.as_deref() == Some(id)).collect();
    if named.is_empty() {
        return versions
            .iter()
            .filter(|v| names(v).1.as_deref() == Some(id))
            .filter_map(|v| v.created)
            .min()
            .map_or(Supersession::NeverRecorded, Supersession::At);
    }
    let Some(last) = named.iter().map(|v| v.created).collect::<Option<Vec<_>>>().and_then(|c| c.into_iter().max())
    else {
        return Supersession::Unknown;
    };
    versions
        .iter()
        .filter(|v| names(v).0.as_deref() != Some(id))
        .filter_map(|v| v.created)
        .filter(|c| *c >= last)
        .min()
        .map_or(Supersession::Unknown, Supersession::At)
}

/// What to do with a superseded credential that would be revoked after its grace, for a target
/// with `keep_while_used` (contract §10 "Usage").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseVerdict {
    /// Revoke it as the grace says.
    Revoke,
    /// Keep it: a consumer used it on this UTC day, today or yesterday by the issuer's clock.
    InUse(Date),
    /// Keep it for this run: the lookup failed, or its answer lacked the day or a `Date`, or
    /// when it was superseded is unknown.
    Unknown,
}

/// Contract §10 "Usage", for one credential past its grace.
///
/// - `usage`: the issuer's answer; a credential is in use while its `last_used_day` falls on
///   the current or the previous UTC day by the `Date` of the same answer. A `403` (or a kind
///   without usage) means the plain grace: revoke. Any other failure, or an answer without
///   `last_used_day` or `Date`, keeps it for this run.
/// - Never kept past its own expiry (`expires_at`, by the answer's `Date`, else by `issuer_now`)
///   nor more than `bound` (`renew_before_days`) after it was `superseded` (Key Vault's clock:
///   `vault_now`); one no version ever named is an orphan no consumer holds: revoked.
pub fn use_verdict(
    usage: &Usage,
    expires_at: Option<OffsetDateTime>,
    issuer_now: Option<OffsetDateTime>,
    superseded: Supersession,
    vault_now: Option<OffsetDateTime>,
    bound: Duration,
) -> UseVerdict {
    let (day, at) = match usage {
        // Already gone: revoking it changes nothing.
        Usage::Untracked | Usage::Forbidden { .. } | Usage::Gone => return UseVerdict::Revoke,
        Usage::Failed(_) => (None, None),
        Usage::Read { last_used_day, at } => (*last_used_day, *at),
    };
    if let (Some(exp), Some(now)) = (expires_at, at.or(issuer_now))
        && exp <= now
    {
        return UseVerdict::Revoke;
    }
    match (superseded, vault_now) {
        (Supersession::NeverRecorded, _) => return UseVerdict::Revoke,
        (Supersession::At(s), Some(now)) if now - s > bound => return UseVerdict::Revoke,
        (Supersession::At(_), Some(_)) => {}
        _ => return UseVerdict::Unknown,
    }
    match (in_use(usage), day) {
        (Some(true), Some(day)) => UseVerdict::InUse(day),
        (Some(false), _) => UseVerdict::Revoke,
        _ => UseVerdict::Unknown,
    }
}

/// Whether an answer says the credential is in use: its `last_used_day` falls on the current
/// or the previous UTC day by the `Date` of the same answer (contract §10). `None`: the answer
/// does not tell (a failed lookup, no `last_used_day`, no `Date`).
pub fn in_use(usage: &Usage) -> Option<bool> {
    match usage {
        Usage::Read { last_used_day: Some(day), at: Some(at) } => {
            let today = at.to_offset(time::UtcOffset::UTC).date();
            Some(*day >= today.previous_day().unwrap_or(today))
        }
        Usage::Untracked | Usage::Forbidden { .. } | Usage::Gone => Some(false),
        Usage::Failed(_) | Usage::Read { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);

    fn cred(id: &str, ownership: Ownership, age: Duration, expires_in: Option<Duration>) -> Credential {
        Credential {
            id: id.into(),
            comment: None,
            created_at: Some(NOW - age),
            expires_at: expires_in.map(|d| NOW + d),
            ownership,
            attempt: None,
        }
    }

    fn ours_cred(id: &str, age: Duration) -> Credential {
        cred(id, Ownership::Ours, age, None)
    }

    fn view(id: &str) -> SecretView {
        SecretView {
            id: "https://v/secrets/s/1".into(),
            managed: true,
            enabled: true,
            credential_id: Some(id.into()),
            previous_id: None,
            expires_at: None,
            rotated_at: None,
            rotated_by: None,
        }
    }

    #[test]
    fn another_identity_wrote_the_latest_version() {
        let by =
            |who: Option<&str>, managed: bool| SecretView { rotated_by: who.map(str::to_string), managed, ..view("a") };
        let (me, other, untagged, unknown) =
            (by(Some("me"), true), by(Some("other"), true), by(None, true), by(Some("unknown"), true));
        let foreign = by(Some("other"), false);
        let cases: &[(&[&SecretView], Option<&str>, Option<&str>)] = &[
            (&[], Some("me"), None),
            (&[&me], Some("me"), None),
            (&[&me], Some("ME"), None),
            (&[&untagged], Some("me"), None),
            (&[&untagged], None, None),
            (&[&foreign], Some("me"), None),
            (&[&other], Some("me"), Some("other")),
            (&[&unknown], Some("me"), Some("unknown")),
            (&[&unknown], Some("unknown"), Some("unknown")),
            (&[&me], None, Some("me")),
            // Tied latest versions: another identity if any of them names one.
            (&[&me, &other], Some("me"), Some("other")),
            (&[&me, &untagged], Some("me"), None),
        ];
        for (i, (latest, me, want)) in cases.iter().enumerate() {
            assert_eq!(written_by_another(latest, *me), *want, "case {i}");
        }
    }

    #[test]
    fn decide_table() {
        let renew = Duration::days(30);
        let fresh = [cred("a", Ownership::Ours, Duration::days(1), Some(Duration::days(89)))];
        let expiring = [cred("a", Ownership::Ours, Duration::days(70), Some(Duration::days(20)))];
        let never = [cred("a", Ownership::Ours, Duration::days(70), None)];
        let v = view("a");
        let foreign = SecretView { managed: false, ..v.clone() };
        let untagged = SecretView { credential_id: None, ..v.clone() };
        let disabled = SecretView { enabled: false, ..v.clone() };
        let foreign_disabled = SecretView { managed: false, enabled: false, ..v.clone() };
        let cases: &[(Option<&SecretView>, &[Credential], bool, Decision)] = &[
            (None, &fresh, false, Decision::Rotate(Reason::NoSecret)),
            (None, &fresh, true, Decision::Rotate(Reason::NoSecret)),
            (Some(&foreign), &fresh, false, Decision::Rotate(Reason::ForeignSecret)),
            (Some(&untagged), &fresh, false, Decision::Rotate(Reason::ForeignSecret)),
            (Some(&foreign_disabled), &fresh, false, Decision::Rotate(Reason::ForeignSecret)),
            (Some(&disabled), &fresh, false, Decision::Rotate(Reason::DisabledSecret)),
            (Some(&disabled), &[], false, Decision::Rotate(Reason::DisabledSecret)),
            (Some(&v), &[], false, Decision::Rotate(Reason::RevokedInWorkspace)),
            (Some(&v), &[], true, Decision::Rotate(Reason::RevokedInWorkspace)),
            (Some(&v), &expiring, false, Decision::Rotate(Reason::Expiring)),
            (Some(&v), &expiring, true, Decision::Rotate(Reason::Expiring)),
            (Some(&v), &fresh, true, Decision::Rotate(Reason::Forced)),
            (Some(&v), &fresh, false, Decision::Keep),
            (Some(&v), &never, false, Decision::Keep),
        ];
        for (i, (s, t, force, want)) in cases.iter().enumerate() {
            assert_eq!(decide(*s, &[], t, renew, NOW, *force), *want, "case {i}");
        }
    }

    #[test]
    fn expiring_boundary_is_inclusive() {
        let v = view("a");
        let t = [cred("a", Ownership::Ours, Duration::days(60), Some(Duration::days(30)))];
        assert_eq!(decide(Some(&v), &[], &t, Duration::days(30), NOW, false), Decision::Rotate(Reason::Expiring));
        let t = [cred("a", Ownership::Ours, Duration::days(60), Some(Duration::days(30) + Duration::seconds(1)))];
        assert_eq!(decide(Some(&v), &[], &t, Duration::days(30), NOW, false), Decision::Keep);
    }

    #[test]
    fn the_force_cooldown_and_the_room_below_the_cap() {
        let m15 = Duration::minutes(15);
        let ago = |d: Duration| Some(NOW - d);
        assert!(force_declined(ago(Duration::minutes(14)), Some(NOW), m15, 1, 6), "inside the cooldown");
        assert!(!force_declined(ago(m15), Some(NOW), m15, 1, 6), "the boundary is outside");
        assert!(force_declined(ago(Duration::days(1)), None, m15, 1, 6), "no Date: counts as inside");
        assert!(force_declined(None, Some(NOW), m15, 1, 6), "no created: counts as inside");
        assert!(force_declined(ago(Duration::days(1)), Some(NOW), m15, 5, 6), "5 of 6 live: declined");
        assert!(!force_declined(ago(Duration::days(1)), Some(NOW), m15, 4, 6));
        assert!(force_declined(ago(Duration::days(1)), Some(NOW), m15, 4, 5), "OAuth secrets: 4 of 5");
        assert!(!force_declined(ago(Duration::days(1)), Some(NOW), Duration::ZERO, 0, 6), "cooldown 0");
        assert!(
            !force_declined(Some(NOW + Duration::seconds(1)), Some(NOW), Duration::ZERO, 0, 6),
            "cooldown 0, Date behind"
        );
        assert!(!force_declined(None, None, Duration::ZERO, 0, 6), "cooldown 0, no Date");
        assert!(force_declined(None, None, Duration::ZERO, 5, 6), "cooldown 0 still keeps the room below the cap");
    }

    #[test]
    fn if_recorded_is_ours_only_when_a_version_names_it() {
        let listed = [
            cred("named", Ownership::IfRecorded, Duration::days(3), None),
            cred("unnamed", Ownership::IfRecorded, Duration::days(3), None),
            cred("mine", Ownership::Ours, Duration::days(3), None),
            cred("other", Ownership::NotOurs, Duration::days(3), None),
        ];
        let named: BTreeSet<String> = ["named".to_string(), "other".to_string()].into();
        let r = resolve(&listed, &named);
        let own: Vec<_> = r.iter().map(|c| (c.id.as_str(), c.ownership)).collect();
        assert_eq!(
            own,
            [
                ("named", Ownership::Ours),
                ("unnamed", Ownership::NotOurs),
                ("mine", Ownership::Ours),
                ("other", Ownership::NotOurs)
            ],
            "a version naming a credential someone else owns does not make it ours"
        );
    }

    static NONE: BTreeSet<String> = BTreeSet::new();

    fn ev<'a>(creds: &'a [Credential], latest: Latest<'a>, recorded: &'a [&'a str]) -> Evidence<'a> {
        Evidence { creds, creds_at: Some(NOW), latest, vault_at: Some(NOW), recorded, protected: &NONE }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn found(id: Option<&str>, age: Duration) -> Latest<'_> {
        Latest::Found { credential_id: id, created: Some(NOW - age) }
    }

    fn creds() -> Vec<Credential> {
        vec![
            ours_cred("cur", Duration::days(3)),
            ours_cred("prev", Duration::days(60)),
            ours_cred("old-orphan", Duration::hours(2)),
            ours_cred("young-orphan", Duration::minutes(10)),
            cred("foreign", Ownership::NotOurs, Duration::days(365), None),
        ]
    }

    #[test]
    fn nothing_is_provable_while_the_latest_version_is_inside_the_grace() {
        let t = creds();
        assert!(revocable(&ev(&t, found(Some("cur"), Duration::hours(2)), &[]), Duration::hours(24)).is_empty());
        let unknown = Latest::Found { credential_id: Some("cur"), created: None };
        assert!(revocable(&ev(&t, unknown, &[]), Duration::ZERO).is_empty(), "unknown age of the latest version");
        let mut no_date = ev(&t, found(Some("cur"), Duration::days(2)), &[]);
        no_date.vault_at = None;
        assert!(revocable(&no_date, Duration::ZERO).is_empty(), "Key Vault sent no Date");
    }

    #[test]
    fn past_the_grace_only_the_latest_and_young_unrecorded_ones_stay() {
        let t = creds();
        let grace = Duration::hours(24);
        assert_eq!(revocable(&ev(&t, found(Some("cur"), grace), &[]), grace), vec!["prev", "old-orphan"]);
        // Grace 0: a credential known to be recorded goes however young it is.
        let young_prev = [ours_cred("new", Duration::ZERO), ours_cred("p", Duration::minutes(5))];
        assert_eq!(revocable(&ev(&young_prev, found(Some("new"), Duration::ZERO), &["p"]), Duration::ZERO), vec!["p"]);
        assert!(revocable(&ev(&young_prev, found(Some("new"), Duration::ZERO), &[]), Duration::ZERO).is_empty());
    }

    #[test]
    fn an_absent_secret_proves_nothing() {
        let t = [ours_cred("a", Duration::days(30)), ours_cred("b", Duration::hours(3))];
        assert!(revocable(&ev(&t, Latest::Absent, &[]), Duration::ZERO).is_empty());
        assert!(revocable(&ev(&t, Latest::Absent, &["a"]), Duration::ZERO).is_empty());
    }

    #[test]
    fn the_latest_version_protects_its_credential_whatever_its_tags() {
        // A retagged latest version (no managed-by) still names "cur"; the caller passes its id.
        let t = creds();
        let out = revocable(&ev(&t, found(Some("cur"), Duration::days(2)), &[]), Duration::hours(24));
        assert!(!out.contains(&"cur".to_string()), "{out:?}");
    }

    #[test]
    fn ages_are_taken_on_the_issuers_clock_at_the_read() {
        let t = [ours_cred("x", Duration::minutes(70))];
        let mut e = ev(&t, found(Some("cur"), Duration::days(2)), &[]);
        assert_eq!(revocable(&e, Duration::hours(24)), vec!["x"]);
        // The listing may have been answered 15 minutes after the read: at the read, x was 55
        // minutes old, young enough to be a rotation in flight.
        e.creds_at = Some(NOW - Duration::minutes(15));
        assert!(revocable(&e, Duration::hours(24)).is_empty());
        // No Date from the issuer: no age is proven, so an unrecorded credential stays...
        e.creds_at = None;
        assert!(revocable(&e, Duration::hours(24)).is_empty());
        // ...while one a version is known to name is judged by the grace alone.
        let e = Evidence { recorded: &["x"], ..e };
        assert_eq!(revocable(&e, Duration::hours(24)), vec!["x"]);
        // No creation time: no age either.
        let t = [Credential { created_at: None, ..ours_cred("y", Duration::days(9)) }];
        assert!(revocable(&ev(&t, found(Some("cur"), Duration::days(2)), &[]), Duration::hours(24)).is_empty());
    }

    #[test]
    fn only_ours_are_ever_revocable() {
        let t = [
            cred("nope", Ownership::NotOurs, Duration::days(9), None),
            cred("unresolved", Ownership::IfRecorded, Duration::days(9), None),
        ];
        assert!(revocable(&ev(&t, found(None, Duration::days(9)), &["nope", "unresolved"]), Duration::ZERO).is_empty());
        assert_eq!(over_cap(&t, &NONE, &[], 9, 1), Capped::default());
    }

    #[test]
    fn the_cap_revokes_the_oldest_but_never_the_latest() {
        let mut t: Vec<Credential> =
            (0..8).map(|i| ours_cred(&format!("t{i}"), Duration::hours(10 - i as i64))).collect();
        t.push(cred("foreign", Ownership::NotOurs, Duration::days(9), None));
        assert_eq!(over_cap(&t, &set(&["t0"]), &[], 0, 6).revoke, vec!["t1", "t2"]);
        assert_eq!(over_cap(&t, &set(&["t0"]), &["t5".to_string()], 1, 6).revoke, vec!["t1", "t2"]);
        assert_eq!(over_cap(&t[..6], &NONE, &[], 0, 6), Capped::default());
    }

    #[test]
    fn the_cap_skips_what_a_latest_version_names_and_says_what_it_could_not_revoke() {
        let t: Vec<Credential> = (0..8).map(|i| ours_cred(&format!("t{i}"), Duration::hours(10 - i as i64))).collect();
        // t1 is what another configured secret's latest version names: the next oldest goes.
        assert_eq!(
            over_cap(&t, &set(&["t0", "t1"]), &[], 0, 6),
            Capped { revoke: vec!["t2".into(), "t3".into()], held: 0 }
        );
        // Protected all but one of the candidates: one goes, one more would be needed.
        let all_but_t7 = set(&["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
        assert_eq!(over_cap(&t, &all_but_t7, &[], 0, 6), Capped { revoke: vec!["t7".into()], held: 1 });
        let everything = set(&["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]);
        assert_eq!(over_cap(&t, &everything, &[], 1, 6), Capped { revoke: vec![], held: 3 });
    }

    #[test]
    fn what_a_latest_version_names_is_never_revocable() {
        let t = creds();
        let grace = Duration::hours(24);
        let protected = set(&["prev"]);
        let e = Evidence { protected: &protected, ..ev(&t, found(Some("cur"), grace), &[]) };
        assert_eq!(revocable(&e, grace), vec!["old-orphan"]);
        // Recorded or not, young or old: protection wins.
        let protected = set(&["prev", "old-orphan"]);
        let e = Evidence { protected: &protected, ..ev(&t, found(Some("cur"), grace), &["prev", "old-orphan"]) };
        assert!(revocable(&e, grace).is_empty());
    }

    #[test]
    fn tied_latest_versions_each_count_as_the_latest() {
        let renew = Duration::days(30);
        let listed = [
            cred("a", Ownership::Ours, Duration::days(1), Some(Duration::days(89))),
            cred("b", Ownership::Ours, Duration::days(1), Some(Duration::days(89))),
        ];
        let a = view("a");
        let b = view("b");
        let keep = decide(Some(&a), std::slice::from_ref(&b), &listed, renew, NOW, false);
        assert_eq!(keep, Decision::Keep, "two fresh, enabled, listed versions of one second");
        let b_disabled = SecretView { enabled: false, ..b.clone() };
        assert_eq!(
            decide(Some(&a), std::slice::from_ref(&b_disabled), &listed, renew, NOW, false),
            Decision::Rotate(Reason::DisabledSecret),
            "the disabled one may be the one written last"
        );
        let b_foreign = SecretView { managed: false, ..b.clone() };
        assert_eq!(
            decide(Some(&a), &[b_disabled, b_foreign], &listed, renew, NOW, false),
            Decision::Rotate(Reason::ForeignSecret)
        );
        let c = view("c");
        assert_eq!(
            decide(Some(&a), &[c], &listed, renew, NOW, false),
            Decision::Rotate(Reason::RevokedInWorkspace),
            "a tied version names a credential that is not listed"
        );
    }

    #[test]
    fn an_event_rotates_within_thirty_days_of_the_vaults_exp() {
        let w = EVENT_EXPIRY_WINDOW;
        assert!(expires_within(Some(NOW + Duration::days(30)), NOW, w), "the boundary is inside");
        assert!(!expires_within(Some(NOW + Duration::days(30) + Duration::seconds(1)), NOW, w));
        assert!(expires_within(Some(NOW - Duration::days(2)), NOW, w), "expired");
        assert!(!expires_within(None, NOW, w), "no exp: never");
    }

    static TEST_PROFILE: Profile = Profile {
        noun: "credential",
        content_type: "test",
        id_tag: "credential-id",
        previous_tag: "previous-credential-id",
        expires_tag: None,
        cap: 6,
        revokes_over_cap: true,
        labels_attempts: true,
        reports_unrecorded: false,
        naming_tags: &["credential-id"],
    };

    fn version(id: &str, tag: Option<&str>, prev: Option<&str>, created: Option<OffsetDateTime>) -> StoredSecret {
        let mut tags = std::collections::BTreeMap::new();
        if let Some(t) = tag {
            tags.insert(TEST_PROFILE.id_tag.to_string(), t.to_string());
        }
        if let Some(p) = prev {
            tags.insert(TEST_PROFILE.previous_tag.to_string(), p.to_string());
        }
        StoredSecret {
            id: format!("https://v/secrets/s/{id}"),
            tags,
            content_type: Some("test".into()),
            created,
            enabled: true,
            expires: None,
        }
    }

    #[test]
    fn when_a_credential_was_superseded() {
        let p = &TEST_PROFILE;
        let at = |d: i64| Some(NOW - Duration::days(d));
        // Shuffled, as Key Vault may list them.
        let vs = [
            version("3", Some("c"), Some("b"), at(1)),
            version("1", Some("a"), None, at(9)),
            version("2", Some("b"), Some("a"), at(5)),
            version("4", Some("b"), Some("c"), at(0)), // b copied back later
        ];
        assert_eq!(supersession(&vs, "a", p), Supersession::At(NOW - Duration::days(5)));
        assert_eq!(supersession(&vs, "c", p), Supersession::At(NOW));
        assert_eq!(supersession(&vs, "b", p), Supersession::Unknown, "the latest names it again");
        assert_eq!(supersession(&vs, "z", p), Supersession::NeverRecorded);
        // Named only as a predecessor (the version naming it lost its tag).
        let vs = [version("1", None, None, at(9)), version("2", Some("b"), Some("a"), at(5))];
        assert_eq!(supersession(&vs, "a", p), Supersession::At(NOW - Duration::days(5)));
        // Same second: the version of that second counts as the successor.
        let vs = [version("1", Some("a"), None, at(2)), version("2", Some("b"), Some("a"), at(2))];
        assert_eq!(supersession(&vs, "a", p), Supersession::At(NOW - Duration::days(2)));
        // No created: unknown.
        let vs = [version("1", Some("a"), None, None), version("2", Some("b"), Some("a"), at(2))];
        assert_eq!(supersession(&vs, "a", p), Supersession::Unknown);
    }

    #[test]
    fn usage_keeps_a_superseded_credential_while_used_within_its_bounds() {
        let today = NOW.date();
        let read = |days_ago: i64| Usage::Read { last_used_day: Some(today - Duration::days(days_ago)), at: Some(NOW) };
        let bound = Duration::days(30);
        let sup = |d: i64| Supersession::At(NOW - Duration::days(d));
        let exp = Some(NOW + Duration::days(20));
        let err = || crate::error::Error::new(crate::error::Code::Timeout, "x");
        let forbidden = Usage::Forbidden { scope: "w".into(), error: err() };
        type Case = (Usage, Option<OffsetDateTime>, Supersession, Option<OffsetDateTime>, UseVerdict);
        let cases: Vec<Case> = vec![
            (read(0), exp, sup(2), Some(NOW), UseVerdict::InUse(today)),
            (read(1), exp, sup(2), Some(NOW), UseVerdict::InUse(today - Duration::days(1))),
            (read(2), exp, sup(2), Some(NOW), UseVerdict::Revoke),
            // the bound: renew_before_days after it was superseded (Key Vault's clock)
            (read(0), exp, sup(30), Some(NOW), UseVerdict::InUse(today)),
            (
                read(0),
                exp,
                Supersession::At(NOW - Duration::days(30) - Duration::seconds(1)),
                Some(NOW),
                UseVerdict::Revoke,
            ),
            // never past its own expiry
            (read(0), Some(NOW), sup(2), Some(NOW), UseVerdict::Revoke),
            (read(0), None, sup(2), Some(NOW), UseVerdict::InUse(today)),
            // never recorded: an orphan, revoked whatever its use (verification counts as one)
            (read(0), exp, Supersession::NeverRecorded, Some(NOW), UseVerdict::Revoke),
            // what cannot be judged keeps it for this run
            (read(0), exp, Supersession::Unknown, Some(NOW), UseVerdict::Unknown),
            (read(0), exp, sup(2), None, UseVerdict::Unknown),
            (Usage::Read { last_used_day: None, at: Some(NOW) }, exp, sup(2), Some(NOW), UseVerdict::Unknown),
            (Usage::Read { last_used_day: Some(today), at: None }, exp, sup(2), Some(NOW), UseVerdict::Unknown),
            (Usage::Failed(err()), exp, sup(2), Some(NOW), UseVerdict::Unknown),
            (Usage::Failed(err()), exp, sup(31), Some(NOW), UseVerdict::Revoke),
            // 403, or a kind without usage: the plain grace
            (forbidden, exp, sup(2), Some(NOW), UseVerdict::Revoke),
            (Usage::Untracked, exp, sup(2), Some(NOW), UseVerdict::Revoke),
            (Usage::Gone, exp, sup(2), Some(NOW), UseVerdict::Revoke),
        ];
        for (i, (u, e, s, v, want)) in cases.into_iter().enumerate() {
            assert_eq!(use_verdict(&u, e, Some(NOW), s, v, bound), want, "case {i}");
        }
        // The day is judged by the answer's Date, not by any other clock: just after midnight
        // UTC, yesterday's use still counts and the day before's does not.
        let just_after = datetime!(2026-11-27 00:00:01 UTC);
        let u = Usage::Read { last_used_day: Some(datetime!(2026-11-26 00:00 UTC).date()), at: Some(just_after) };
        assert!(matches!(use_verdict(&u, None, None, sup(1), Some(NOW), bound), UseVerdict::InUse(_)));
        let u = Usage::Read { last_used_day: Some(datetime!(2026-11-25 00:00 UTC).date()), at: Some(just_after) };
        assert_eq!(use_verdict(&u, None, None, sup(1), Some(NOW), bound), UseVerdict::Revoke);
    }

    #[test]
    fn over_the_cap_those_not_in_use_go_first() {
        let t: Vec<Credential> = (0..8).map(|i| ours_cred(&format!("t{i}"), Duration::hours(10 - i as i64))).collect();
        let t0: BTreeSet<String> = ["t0".to_string()].into();
        let in_use: BTreeSet<String> = ["t1".to_string(), "t2".to_string()].into();
        assert_eq!(over_cap_unused_first(&t, &t0, &[], &in_use, 0, 6).revoke, vec!["t3", "t4"]);
        assert_eq!(over_cap_unused_first(&t, &t0, &[], &BTreeSet::new(), 0, 6), over_cap(&t, &t0, &[], 0, 6));
        // When everything left is in use, the oldest in use go.
        let all: BTreeSet<String> = t.iter().map(|c| c.id.clone()).collect();
        assert_eq!(over_cap_unused_first(&t, &t0, &[], &all, 0, 6).revoke, vec!["t1", "t2"]);
        assert!(over_cap_unused_first(&t[..6], &BTreeSet::new(), &[], &in_use, 0, 6).revoke.is_empty());
        // What a latest version names is never taken, in use or not; the shortfall is held.
        let named: BTreeSet<String> = (0..7).map(|i| format!("t{i}")).collect();
        let c = over_cap_unused_first(&t, &named, &[], &in_use, 0, 6);
        assert_eq!((c.revoke, c.held), (vec!["t7".to_string()], 1));
    }
}
