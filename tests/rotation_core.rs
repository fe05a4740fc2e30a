//! The rotation against in-memory ports: every invariant of the module docs, without HTTP.
//! The issuer here is either kind: PAT-like (comments carry the target, the secret key and the
//! attempt; the real naming functions of `databricks::pat`) or OAuth-secret-like (no comment,
//! ownership by record, a limit of five).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use pat_rotator::databricks::{oauth_secret, pat, tags as db_tags};
use pat_rotator::error::{Code, Error, Result};
use pat_rotator::rotation::model::{
    CreateRequest, Credential, NewCredential, Ownership, Profile, SecretWrite, StoredSecret, Warning, WarningKind, tags,
};
use pat_rotator::rotation::ports::{
    Backoff, Clock, CreateError, Issuer, Listing, OtherSecrets, Protection, Refusal, SecretRead, SecretStore, Usage,
    WriteError,
};
use pat_rotator::rotation::rotate::{Ports, rotate};
use pat_rotator::rotation::spec::{Force, OtherWriter, Owner, Request, Spec};
use pat_rotator::rotation::{Action, Reason};
use pat_rotator::secret::Redacted;

const NOW: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);
const KEY: &str = "0123456789ab";

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        NOW
    }
}

struct FastBackoff;
impl Backoff for FastBackoff {
    fn next_wait(&self, attempt: u32, _err: &Error) -> Option<std::time::Duration> {
        (attempt < 3).then_some(std::time::Duration::from_millis(1))
    }
    fn past_deadline(&self) -> bool {
        false
    }
}

struct NoRetry;
impl Backoff for NoRetry {
    fn next_wait(&self, _attempt: u32, _err: &Error) -> Option<std::time::Duration> {
        None
    }
    fn past_deadline(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
struct MemCred {
    info: Credential,
    value: String,
}

#[derive(Default)]
enum CreateFault {
    #[default]
    None,
    /// Create the credential, then report an ambiguous failure (the response was lost).
    LostResponse,
    Refuse,
}

struct MemIssuer {
    profile: &'static Profile,
    creds: Mutex<Vec<MemCred>>,
    create_faults: Mutex<VecDeque<CreateFault>>,
    verify_fails: Mutex<bool>,
    /// Verification refusals quote the presented value (as some upstream bodies do).
    verify_echoes: Mutex<bool>,
    /// Lists that succeed before every further list fails (`None`: never fails).
    lists_before_failing: Mutex<Option<u32>>,
    /// The first list leaves this credential out (it was created just after the list was taken).
    hidden_from_first_list: Mutex<Option<String>>,
    lists: Mutex<u32>,
    /// The issuer's clock at verification is this much ahead of creation.
    verify_clock_ahead: Mutex<VecDeque<Duration>>,
    /// Listings carry no `Date`.
    no_date: Mutex<bool>,
    /// Deleted by a concurrent run right after the first listing was answered.
    deleted_after_first_list: Mutex<Option<String>>,
    /// The verification's answer arrives this long after the issuer answered (its `Date`).
    verify_answer_delay: Mutex<Option<std::time::Duration>>,
    deletes: Mutex<Vec<String>>,
    /// Every revocation fails.
    revoke_fails: Mutex<bool>,
    creates: Mutex<u32>,
    limit: usize,
    next: Mutex<u32>,
}

impl MemIssuer {
    fn pat() -> MemIssuer {
        MemIssuer::with(&pat::PROFILE, 600)
    }
    fn oauth() -> MemIssuer {
        MemIssuer::with(&oauth_secret::PROFILE, 5)
    }
    fn with(profile: &'static Profile, limit: usize) -> MemIssuer {
        MemIssuer {
            profile,
            creds: Mutex::default(),
            create_faults: Mutex::default(),
            verify_fails: Mutex::default(),
            verify_echoes: Mutex::default(),
            lists_before_failing: Mutex::default(),
            hidden_from_first_list: Mutex::default(),
            lists: Mutex::default(),
            verify_clock_ahead: Mutex::default(),
            no_date: Mutex::default(),
            deleted_after_first_list: Mutex::default(),
            verify_answer_delay: Mutex::default(),
            deletes: Mutex::default(),
            revoke_fails: Mutex::default(),
            creates: Mutex::default(),
            limit,
            next: Mutex::default(),
        }
    }
    fn is_pat(&self) -> bool {
        self.profile.labels_attempts
    }
    /// A credential with `comment` (PATs; ignored for OAuth secrets), created `age` ago.
    fn seed(&self, id: &str, comment: &str, age: Duration, expires_in: Duration) {
        let (ownership, attempt) =
            if self.is_pat() { pat::ownership(Some(comment), "t", KEY) } else { (Ownership::IfRecorded, None) };
        self.creds.lock().unwrap().push(MemCred {
            info: Credential {
                id: id.into(),
                comment: self.is_pat().then(|| comment.to_string()),
                created_at: Some(NOW - age),
                expires_at: Some(NOW + expires_in),
                ownership,
                attempt,
            },
            value: format!("value-{id}"),
        });
    }
    fn ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.creds.lock().unwrap().iter().map(|t| t.info.id.clone()).collect();
        v.sort();
        v
    }
    fn value_of(&self, id: &str) -> Option<String> {
        self.creds.lock().unwrap().iter().find(|t| t.info.id == id).map(|t| t.value.clone())
    }
}

/// A comment of this target and secret.
fn ours(attempt: &str) -> String {
    pat::comment("t", KEY, attempt)
}

#[async_trait]
impl Issuer for MemIssuer {
    fn profile(&self) -> &'static Profile {
        self.profile
    }
    async fn list(&self) -> Result<Listing> {
        if let Some(n) = self.lists_before_failing.lock().unwrap().as_mut() {
            if *n == 0 {
                return Err(Error::new(Code::UpstreamUnavailable, "list down"));
            }
            *n -= 1;
        }
        *self.lists.lock().unwrap() += 1;
        let hidden = self.hidden_from_first_list.lock().unwrap().take();
        let credentials = self
            .creds
            .lock()
            .unwrap()
            .iter()
            .filter(|t| Some(&t.info.id) != hidden.as_ref())
            .map(|t| t.info.clone())
            .collect();
        let at = (!*self.no_date.lock().unwrap()).then_some(NOW);
        if let Some(id) = self.deleted_after_first_list.lock().unwrap().take() {
            self.creds.lock().unwrap().retain(|t| t.info.id != id);
        }
        Ok(Listing { credentials, at })
    }
    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        *self.creates.lock().unwrap() += 1;
        let fault = self.create_faults.lock().unwrap().pop_front().unwrap_or_default();
        if self.creds.lock().unwrap().len() >= self.limit {
            return Err(CreateError::Refused(Refusal::Full, Error::new(Code::DatabricksQuotaExceeded, "full")));
        }
        if let CreateFault::Refuse = fault {
            return Err(CreateError::Refused(Refusal::Other, Error::new(Code::DatabricksForbidden, "refused")));
        }
        let n = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        let comment = self.is_pat().then(|| ours(&req.attempt));
        let (ownership, attempt) =
            if self.is_pat() { pat::ownership(comment.as_deref(), "t", KEY) } else { (Ownership::IfRecorded, None) };
        let t = MemCred {
            info: Credential {
                id: format!("new{n}"),
                comment,
                created_at: Some(NOW),
                expires_at: Some(NOW + Duration::seconds(req.lifetime_seconds as i64)),
                ownership,
                attempt,
            },
            value: format!("secret-value-{n}"),
        };
        self.creds.lock().unwrap().push(t.clone());
        if matches!(fault, CreateFault::LostResponse) {
            return Err(CreateError::Ambiguous(Error::new(Code::Timeout, "lost").transient()));
        }
        Ok(NewCredential { value: Redacted::new(t.value), info: t.info })
    }
    async fn revoke(&self, id: &str) -> Result<()> {
        if *self.revoke_fails.lock().unwrap() {
            return Err(Error::new(Code::DatabricksError, "delete refused"));
        }
        self.deletes.lock().unwrap().push(id.to_string());
        self.creds.lock().unwrap().retain(|t| t.info.id != id);
        Ok(())
    }
    async fn usage(&self, _id: &str) -> Usage {
        Usage::Untracked
    }
    async fn verify(&self, value: &Redacted) -> Result<Option<OffsetDateTime>> {
        if *self.verify_fails.lock().unwrap() {
            return Err(Error::new(Code::DatabricksUnauthorized, "Invalid access token."));
        }
        if *self.verify_echoes.lock().unwrap() {
            let quoted = format!("rejected Authorization: Bearer {}", value.expose());
            return Err(Error::new(Code::DatabricksUnauthorized, quoted));
        }
        if self.creds.lock().unwrap().iter().any(|t| t.value == value.expose()) {
            let ahead = self.verify_clock_ahead.lock().unwrap().pop_front().unwrap_or(Duration::ZERO);
            let late = self.verify_answer_delay.lock().unwrap().take();
            if let Some(d) = late {
                tokio::time::sleep(d).await;
            }
            Ok((!*self.no_date.lock().unwrap()).then_some(NOW + ahead))
        } else {
            Err(Error::new(Code::DatabricksUnauthorized, "Invalid access token."))
        }
    }
}

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    tags: BTreeMap<String, String>,
    content_type: Option<String>,
    created: OffsetDateTime,
    enabled: bool,
}

impl Version {
    fn stored(&self) -> StoredSecret {
        StoredSecret {
            id: self.id.clone(),
            tags: self.tags.clone(),
            content_type: self.content_type.clone(),
            created: Some(self.created),
            enabled: self.enabled,
            expires: None,
        }
    }
}

#[derive(Clone, Copy)]
enum WriteFault {
    /// The vault answered with an error; the version is not stored.
    Refused,
    /// The vault answered with an error although the version was stored.
    LandedAnyway,
    /// No answer; the version lands after the read-back (a timed-out PUT applied later).
    TimeoutLandsLater,
    /// No answer; the version never lands.
    TimeoutNeverLands,
    /// Stored, then answered with a transient 5xx (an answer lost after the commit).
    StoredThen5xx,
    /// Refused (400) with a message quoting the submitted value, as Key Vault's validation does
    /// (a store that forgot to drop it).
    RefusedQuoting,
}

#[derive(Default)]
struct MemStore {
    versions: Mutex<Vec<Version>>,
    /// The object id this store writes as (`None`: it cannot tell).
    writer: Mutex<Option<String>>,
    write_faults: Mutex<VecDeque<WriteFault>>,
    /// Writes that land after the next read-back.
    pending: Mutex<Vec<Version>>,
    read_fails: Mutex<bool>,
    /// Reads that succeed before every further read fails (`None`: never fails).
    reads_before_failing: Mutex<Option<u32>>,
    /// Reads answer 404 (soft-deleted, or being recovered) although versions exist.
    reads_absent: Mutex<bool>,
    /// The first this many reads answer 404 although versions exist (a spurious 404).
    first_reads_absent: Mutex<u32>,
    /// Reads answer 404 once a write was attempted.
    absent_after_write: Mutex<bool>,
    /// Written by another process when our next write fails: (credential id).
    concurrent_writer: Mutex<Option<String>>,
    /// Write attempts that fail (transiently) without landing.
    transient_write_failures: Mutex<u32>,
    version_lists: Mutex<u32>,
    /// Another run writes a version naming this credential just before the versions list is
    /// answered (after this run read the latest version).
    written_before_versions: Mutex<Option<String>>,
    /// The same, an OAuth secret's version.
    oauth_written_before_versions: Mutex<Option<String>>,
    writes: Mutex<u32>,
    /// Versions of the latest version's `created` second, read from the versions list with it
    /// (the latest was disabled): each counts as the latest.
    tied: Mutex<Vec<Version>>,
    /// The other configured secrets that may name this issuer's credentials.
    others: MemOthers,
}

/// The other configured secrets (contract §7.4(a)), as the engine's shared reads present them.
#[derive(Default)]
struct MemOthers {
    /// id → the secret whose latest version names it.
    named: Mutex<BTreeMap<String, String>>,
    /// Secrets whose read failed or said absent.
    unread: Mutex<Vec<String>>,
    /// What any of their versions records.
    recorded: Mutex<BTreeSet<String>>,
    /// Reading what they record fails.
    recorded_fails: Mutex<bool>,
    /// Calls of `latest` (each revocation asks).
    asked: Mutex<u32>,
}

impl MemOthers {
    fn names(&self, id: &str, by: &str) {
        self.named.lock().unwrap().insert(id.into(), by.into());
    }
}

#[async_trait]
impl OtherSecrets for MemOthers {
    async fn latest(&self) -> Protection {
        *self.asked.lock().unwrap() += 1;
        Protection { named: self.named.lock().unwrap().clone(), unread: self.unread.lock().unwrap().clone() }
    }
    async fn recorded(&self) -> Result<BTreeSet<String>> {
        if *self.recorded_fails.lock().unwrap() {
            return Err(Error::new(Code::KeyvaultError, "versions down"));
        }
        Ok(self.recorded.lock().unwrap().clone())
    }
}

impl MemStore {
    fn latest(&self) -> Option<Version> {
        self.versions.lock().unwrap().last().cloned()
    }
    fn push(&self, value: &str, tags: &[(&str, &str)], content_type: &str, age: Duration) {
        let mut versions = self.versions.lock().unwrap();
        let n = versions.len();
        versions.push(Version {
            id: format!("https://kv/secrets/s/v{n}"),
            value: value.into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            content_type: Some(content_type.to_string()),
            created: NOW - age,
            enabled: true,
        });
    }
    /// Moves every version `by` into the past.
    fn age_all(&self, by: Duration) {
        for v in self.versions.lock().unwrap().iter_mut() {
            v.created -= by;
        }
    }
    fn land_pending(&self) {
        let pending: Vec<Version> = self.pending.lock().unwrap().drain(..).collect();
        let mut v = self.versions.lock().unwrap();
        for mut p in pending {
            p.id = format!("https://kv/secrets/s/v{}", v.len());
            v.push(p);
        }
    }
}

#[async_trait]
impl SecretStore for MemStore {
    fn error(&self, message: String) -> Error {
        Error::new(Code::KeyvaultError, message)
    }

    async fn writer(&self) -> Option<String> {
        self.writer.lock().unwrap().clone()
    }

    async fn read_latest(&self, _name: &str) -> Result<SecretRead> {
        if let Some(n) = self.reads_before_failing.lock().unwrap().as_mut() {
            if *n == 0 {
                return Err(Error::new(Code::UpstreamUnavailable, "read down"));
            }
            *n -= 1;
        }
        if *self.read_fails.lock().unwrap() {
            return Err(Error::new(Code::UpstreamUnavailable, "read down"));
        }
        let spurious = {
            let mut n = self.first_reads_absent.lock().unwrap();
            let s = *n > 0;
            *n = n.saturating_sub(1);
            s
        };
        let absent = spurious
            || *self.reads_absent.lock().unwrap()
            || (*self.absent_after_write.lock().unwrap() && *self.writes.lock().unwrap() > 0);
        let latest = if absent { None } else { self.latest().map(|v| v.stored()) };
        let tied = if absent { Vec::new() } else { self.tied.lock().unwrap().iter().map(Version::stored).collect() };
        // A PUT that timed out lands after the read-back saw the old version.
        self.land_pending();
        Ok(SecretRead { latest, tied, at: Some(NOW) })
    }
    async fn versions(&self, _name: &str) -> Result<Vec<StoredSecret>> {
        *self.version_lists.lock().unwrap() += 1;
        if let Some(id) = self.written_before_versions.lock().unwrap().take() {
            self.push(
                &format!("value-{id}"),
                &[(tags::MANAGED_BY, "pat-rotator"), (db_tags::TOKEN_ID, id.as_str())],
                "databricks-pat",
                Duration::ZERO,
            );
        }
        if let Some(id) = self.oauth_written_before_versions.lock().unwrap().take() {
            self.push(
                &format!("value-{id}"),
                &[(tags::MANAGED_BY, "pat-rotator"), (db_tags::SECRET_ID, id.as_str())],
                "databricks-oauth-secret",
                Duration::ZERO,
            );
        }
        Ok(self.versions.lock().unwrap().iter().map(Version::stored).collect())
    }
    async fn write(&self, w: &SecretWrite) -> std::result::Result<StoredSecret, WriteError> {
        *self.writes.lock().unwrap() += 1;
        let v = Version {
            id: format!("https://kv/secrets/s/v{}", self.versions.lock().unwrap().len()),
            value: w.value.expose().to_string(),
            tags: w.tags.clone(),
            content_type: Some(w.content_type.clone()),
            created: NOW,
            enabled: true,
        };
        if let Some(other) = self.concurrent_writer.lock().unwrap().take() {
            self.push(
                &format!("value-{other}"),
                &[(tags::MANAGED_BY, "pat-rotator"), (db_tags::TOKEN_ID, other.as_str())],
                "databricks-pat",
                Duration::ZERO,
            );
            return Err(WriteError::Failed(Error::new(Code::UpstreamUnavailable, "unavailable").transient()));
        }
        {
            let mut left = self.transient_write_failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(WriteError::Failed(Error::new(Code::Throttled, "throttled").transient()));
            }
        }
        let fault = self.write_faults.lock().unwrap().pop_front();
        match fault {
            None => {
                self.versions.lock().unwrap().push(v.clone());
                Ok(v.stored())
            }
            Some(WriteFault::Refused) => Err(WriteError::Failed(Error::new(Code::KeyvaultForbidden, "forbidden"))),
            Some(WriteFault::LandedAnyway) => {
                self.versions.lock().unwrap().push(v);
                Err(WriteError::Failed(Error::new(Code::UpstreamUnavailable, "failed")))
            }
            Some(WriteFault::TimeoutLandsLater) => {
                self.pending.lock().unwrap().push(v);
                Err(WriteError::Unknown(Error::new(Code::Timeout, "no answer").transient()))
            }
            Some(WriteFault::TimeoutNeverLands) => {
                Err(WriteError::Unknown(Error::new(Code::Timeout, "no answer").transient()))
            }
            Some(WriteFault::RefusedQuoting) => Err(WriteError::Failed(Error::new(
                Code::KeyvaultError,
                format!("Property 'value' ('{}') does not match", w.value.expose()),
            ))),
            Some(WriteFault::StoredThen5xx) => {
                self.versions.lock().unwrap().push(v);
                Err(WriteError::Failed(Error::new(Code::UpstreamUnavailable, "unavailable").transient()))
            }
        }
    }
}

fn spec(grace: i64) -> Spec {
    Spec {
        target: "t".into(),
        secret_name: "s".into(),
        lifetime_days: 90,
        renew_before: Duration::days(30),
        grace: Duration::hours(grace),
        tags: BTreeMap::new(),
        owner: Some(Owner { client_id: None, tag: db_tags::CLIENT_ID }),
        keep_while_used: false,
    }
}

fn req(force: Force) -> Request {
    Request {
        force,
        dry_run: false,
        revoke_superseded: false,
        other_writer: OtherWriter::Overwrite,
        via: "cli",
        expiry_window: None,
    }
}

async fn run_req(s: &Spec, ws: &MemIssuer, kv: &MemStore, r: Request) -> pat_rotator::rotation::Outcome {
    let ports = Ports { issuer: ws, store: kv, clock: &FixedClock, backoff: &FastBackoff, others: &kv.others };
    rotate(s, r, &ports).await
}

async fn run(s: &Spec, ws: &MemIssuer, kv: &MemStore, force: bool, dry_run: bool) -> pat_rotator::rotation::Outcome {
    let force = if force { Force::Cli } else { Force::No };
    run_req(
        s,
        ws,
        kv,
        Request {
            force,
            dry_run,
            revoke_superseded: false,
            other_writer: OtherWriter::Overwrite,
            via: "cli",
            expiry_window: None,
        },
    )
    .await
}

/// A managed PAT secret naming credential `id` (created `age` ago, expiring in `exp`).
fn seed_current(ws: &MemIssuer, kv: &MemStore, id: &str, age: Duration, exp: Duration, prev: Option<&str>) {
    ws.seed(id, &ours(id), age, exp);
    let rotated = pat_rotator::rotation::model::rfc3339(NOW - age);
    let p = ws.profile;
    let mut tags = vec![
        (tags::MANAGED_BY, "pat-rotator"),
        (tags::TARGET, "t"),
        (p.id_tag, id),
        (tags::ROTATED_AT, rotated.as_str()),
    ];
    if let Some(prev) = prev {
        tags.push((p.previous_tag, prev));
    }
    kv.push(&format!("value-{id}"), &tags, p.content_type, age);
}

#[tokio::test]
async fn first_run_creates_and_records_a_working_token() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Created, Some(Reason::NoSecret)), "{o:?}");
    let v = kv.latest().unwrap();
    let id = v.tags[db_tags::TOKEN_ID].clone();
    assert_eq!(o.token_id.as_deref(), Some(id.as_str()));
    assert_eq!(ws.value_of(&id).as_deref(), Some(v.value.as_str()), "the vault holds the live token's value");
    assert_eq!(v.tags[tags::MANAGED_BY], "pat-rotator");
    assert_eq!(v.content_type.as_deref(), Some("databricks-pat"));
    assert!(!v.tags.contains_key(db_tags::PREVIOUS_TOKEN_ID));
    assert_eq!(o.expires_at.as_deref(), Some("2027-02-24T03:00:00Z"));
    let comment = ws.creds.lock().unwrap()[0].info.comment.clone().unwrap();
    assert!(comment.starts_with(&format!("pat-rotator/t/{KEY}/")), "{comment}");

    // Second run: unchanged, no write of any kind.
    let o2 = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o2.action, o2.reason), (Action::Unchanged, Some(Reason::Fresh)));
    assert_eq!(*kv.writes.lock().unwrap(), 1);
    assert_eq!(*ws.creates.lock().unwrap(), 1);
    assert!(ws.deletes.lock().unwrap().is_empty());
    assert_eq!(*kv.version_lists.lock().unwrap(), 0, "the steady state reads one version");
}

#[tokio::test]
async fn expiring_token_is_rotated_and_previous_kept_within_grace() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::Expiring)));
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(kv.latest().unwrap().tags[db_tags::PREVIOUS_TOKEN_ID], "old");
    assert_eq!(ws.ids(), vec!["new1", "old"]);
}

/// Contract §10: a due target whose latest version another identity wrote, under each caller's
/// policy. Every version written carries `rotated-by` (the store's identity, or `unknown`) and
/// `rotated-via`.
#[tokio::test]
async fn another_identitys_version_under_each_policy() {
    let cases = [
        (OtherWriter::Overwrite, Action::Rotated, 0),
        (OtherWriter::TakeOwnership, Action::Rotated, 1),
        (OtherWriter::Refuse, Action::Failed, 0),
        (OtherWriter::Leave, Action::Unchanged, 1),
    ];
    for (policy, action, warnings) in cases {
        for dry_run in [false, true] {
            let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
            *kv.writer.lock().unwrap() = Some("me".into());
            seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
            kv.versions.lock().unwrap().last_mut().unwrap().tags.insert(tags::ROTATED_BY.into(), "other".into());
            let req = Request {
                force: Force::No,
                dry_run,
                revoke_superseded: false,
                other_writer: policy,
                via: "x",
                expiry_window: None,
            };
            let o = run_req(&t, &ws, &kv, req).await;
            let want = if dry_run && action == Action::Rotated { Action::Planned } else { action };
            assert_eq!((o.action, o.reason), (want, Some(Reason::Expiring)), "{policy:?} dry_run={dry_run}: {o:?}");
            assert_eq!(o.warnings.len(), warnings, "{policy:?}: {:?}", o.warnings);
            if policy == OtherWriter::Refuse {
                let e = o.error.as_ref().unwrap();
                assert_eq!(e.code, Code::RotatedByAnotherIdentity);
                assert!(e.message.contains("other") && e.message.contains("identity me"), "{}", e.message);
                assert!(e.message.contains("would belong to the caller"), "{}", e.message);
            }
            let written = want == Action::Rotated;
            assert_eq!(ws.ids().len(), if written { 2 } else { 1 }, "{policy:?}: created only when written");
            let latest = kv.latest().unwrap();
            let by = (latest.tags[tags::ROTATED_BY].as_str(), latest.tags.get(tags::ROTATED_VIA).map(String::as_str));
            assert_eq!(by, if written { ("me", Some("x")) } else { ("other", None) }, "{policy:?}");
        }
    }
    // An app's PAT or an OAuth secret does not belong to the caller: no such sentence.
    let (ws, kv) = (MemIssuer::pat(), MemStore::default());
    let t = Spec { owner: Some(Owner { client_id: Some("app".into()), tag: db_tags::CLIENT_ID }), ..spec(24) };
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    kv.versions.lock().unwrap().last_mut().unwrap().tags.insert(tags::ROTATED_BY.into(), "other".into());
    let req = Request {
        force: Force::No,
        dry_run: false,
        revoke_superseded: false,
        other_writer: OtherWriter::Refuse,
        via: "cli",
        expiry_window: None,
    };
    let o = run_req(&t, &ws, &kv, req).await;
    let m = &o.error.as_ref().unwrap().message;
    assert!(m.contains("identity unknown") && !m.contains("would belong to the caller"), "{m}");
    // A store that cannot tell who it is writes `unknown`.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    assert_eq!(run(&t, &ws, &kv, false, false).await.action, Action::Created);
    assert_eq!(kv.latest().unwrap().tags[tags::ROTATED_BY], "unknown");
}

#[tokio::test]
async fn grace_zero_revokes_the_superseded_token_after_the_write() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    seed_current(&ws, &kv, "old", Duration::days(1), Duration::days(89), None);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::Forced)));
    assert_eq!(o.revoked_token_ids, vec!["old"]);
    assert_eq!(ws.ids(), vec!["new1"]);
}

#[tokio::test]
async fn previous_past_grace_is_swept_by_an_unchanged_run() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("prev", &ours("p"), Duration::days(61), Duration::days(29));
    seed_current(&ws, &kv, "cur", Duration::days(2), Duration::days(88), Some("prev"));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert_eq!(o.revoked_token_ids, vec!["prev"]);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
}

#[tokio::test]
async fn revoked_out_of_band_is_reprovisioned() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "gone", Duration::days(1), Duration::days(89), None);
    ws.creds.lock().unwrap().clear();
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Reprovisioned, Some(Reason::RevokedInWorkspace)));
    assert!(!kv.latest().unwrap().tags.contains_key(db_tags::PREVIOUS_TOKEN_ID), "a gone token is not a previous one");
    assert!(o.warnings.iter().any(|w| w.contains("holds no token of this target")), "{:?}", o.warnings);
}

#[tokio::test]
async fn foreign_secret_gets_a_new_version_and_its_value_is_left_alone() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    kv.push("hand-made", &[], "text/plain", Duration::days(3));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::ForeignSecret)));
    let versions = kv.versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].value, "hand-made");
}

#[tokio::test]
async fn a_version_of_the_other_kind_is_foreign() {
    // An OAuth-secret version where a PAT target reads (or the reverse) is not this kind's.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("cur", &ours("cur"), Duration::days(1), Duration::days(89));
    kv.push(
        "v",
        &[(tags::MANAGED_BY, "pat-rotator"), (db_tags::TOKEN_ID, "cur")],
        "databricks-oauth-secret",
        Duration::days(1),
    );
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.reason, Some(Reason::ForeignSecret), "{o:?}");
}

#[tokio::test]
async fn failed_write_deletes_the_new_token_and_keeps_the_old() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    kv.write_faults.lock().unwrap().push_back(WriteFault::Refused);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, Code::KeyvaultForbidden);
    assert_eq!(ws.ids(), vec!["old"], "new token deleted, old one untouched even with grace 0");
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "old");
}

#[tokio::test]
async fn write_that_landed_despite_an_error_is_a_success() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    kv.write_faults.lock().unwrap().push_back(WriteFault::LandedAnyway);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.ids(), vec!["new1"]);
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new1");
}

#[tokio::test]
async fn a_failed_read_back_keeps_the_token() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    kv.write_faults.lock().unwrap().push_back(WriteFault::LandedAnyway);
    // The first read works; the read-back after the failed write does not.
    *kv.reads_before_failing.lock().unwrap() = Some(1);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert!(o.error.as_ref().unwrap().message.contains("kept"), "{o:?}");
    // The token landed in the vault, so deleting it would have broken the secret.
    assert_eq!(ws.ids(), vec!["new1"]);
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new1");
}

#[tokio::test]
async fn a_timed_out_write_that_lands_later_never_names_a_dead_token() {
    // Finding 4: the PUT times out, the read-back shows the old version, the PUT lands later.
    // No further attempt is allowed (the budget is spent), so the run must decide on the
    // read-back alone — which it must not trust.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    kv.write_faults.lock().unwrap().push_back(WriteFault::TimeoutLandsLater);
    let ports = Ports { issuer: &ws, store: &kv, clock: &FixedClock, backoff: &NoRetry, others: &kv.others };
    let o = rotate(&t, req(Force::No), &ports).await;
    assert_eq!(o.action, Action::Failed, "{o:?}");
    let latest = kv.latest().unwrap();
    let named = &latest.tags[db_tags::TOKEN_ID];
    assert_eq!(named, "new1", "the late write landed");
    assert!(ws.ids().contains(named), "the vault names a live token: {:?}", ws.ids());
    assert!(o.error.as_ref().unwrap().message.contains("kept"), "{o:?}");
}

#[tokio::test]
async fn a_timed_out_write_is_retried_with_the_same_token() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    kv.write_faults.lock().unwrap().push_back(WriteFault::TimeoutNeverLands);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 2);
    assert_eq!(*ws.creates.lock().unwrap(), 1, "no second token");
    assert!(ws.deletes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_absent_read_back_over_versions_is_no_reason_to_write_again() {
    // Found by the simulator's soak (seed 10906): a write without an answer, a read-back that
    // said "absent" (a 404) although versions exist; the retry buried a concurrent run's newer
    // version under this run's credential, which that run then revoked.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    kv.write_faults.lock().unwrap().push_back(WriteFault::TimeoutNeverLands);
    *kv.absent_after_write.lock().unwrap() = true;
    let ports = Ports { issuer: &ws, store: &kv, clock: &FixedClock, backoff: &FastBackoff, others: &kv.others };
    let o = rotate(&t, req(Force::No), &ports).await;
    assert_eq!(o.action, Action::Failed, "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 1, "written again after a read-back that proves nothing: {o:?}");
    assert!(ws.ids().contains(&"new1".to_string()), "the new token of a write that may land was deleted: {o:?}");
}

#[tokio::test]
async fn a_5xx_answer_to_a_stored_write_never_deletes_the_token() {
    // Found by the simulator (seed 528): the write was stored, answered 500, and the read-back
    // answered 404; the token the vault names was deleted.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    kv.write_faults.lock().unwrap().push_back(WriteFault::StoredThen5xx);
    // The first read works; the read-back after the write answers "absent" (404).
    *kv.absent_after_write.lock().unwrap() = true;
    let ports = Ports { issuer: &ws, store: &kv, clock: &FixedClock, backoff: &NoRetry, others: &kv.others };
    let o = rotate(&t, req(Force::No), &ports).await;
    let named = kv.latest().unwrap().tags[db_tags::TOKEN_ID].clone();
    assert_eq!(named, "new1", "{o:?}");
    assert!(ws.ids().contains(&named), "the vault names a deleted token: {o:?}");
}

#[tokio::test]
async fn a_version_written_after_the_read_is_no_record() {
    // Found by the simulator (seed 86): the versions list, read after the latest version,
    // held a concurrent run's new version; its brand-new token then counted as recorded and
    // was revoked, judged against the older latest version this run had read.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("legacy", "pat-rotator/t/old-style", Duration::days(40), Duration::days(50));
    ws.seed("theirs", &ours("theirs"), Duration::minutes(2), Duration::days(90));
    *kv.written_before_versions.lock().unwrap() = Some("theirs".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(!o.revoked_token_ids.contains(&"theirs".to_string()), "{o:?}");
    assert!(ws.ids().contains(&"theirs".to_string()), "the latest version's token was revoked");
}

#[tokio::test]
async fn a_credential_a_version_written_after_the_read_names_is_no_orphan() {
    // Found by the simulator (seed 15736): a forced CLI run read the latest version, then
    // another run wrote a version naming a token created more than an hour earlier (verified,
    // then written just inside the 30 minutes); the versions list held that version, newer
    // than the one read, so it was rightly no record, but its token was then judged an
    // unrecorded orphan (over an hour old) and revoked while consumers read it. A version names
    // it: it stays, whether the run keeps the secret or writes over it.
    for (force, grace) in [(false, 24), (true, 24), (true, 0)] {
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(grace));
        seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
        ws.seed("legacy", "pat-rotator/t/old-style", Duration::days(40), Duration::days(50));
        ws.seed("theirs", &ours("theirs"), Duration::minutes(71), Duration::days(90));
        *kv.written_before_versions.lock().unwrap() = Some("theirs".into());
        let o = run(&t, &ws, &kv, force, false).await;
        assert!(!o.revoked_token_ids.contains(&"theirs".to_string()), "force {force}, grace {grace}: {o:?}");
        assert!(
            ws.ids().contains(&"theirs".to_string()),
            "force {force}, grace {grace}: a token a version names was revoked"
        );
    }
}

#[tokio::test]
async fn a_version_there_before_an_absent_read_is_no_concurrent_rotation() {
    // Found by invariant 13 (simulator seeds 12 and 20): the first read of a forced run got a
    // spurious 404 for a secret that exists; its write then failed, and reading back found the
    // version that was there all along. The run called it "a concurrent rotation wrote a newer
    // version" and ended unchanged/fresh: a refused write went unreported, and an unknown one
    // was given up instead of retried. A version Key Vault created before that read is no
    // concurrent rotation.
    for (fault, want) in [(WriteFault::Refused, Action::Failed), (WriteFault::TimeoutNeverLands, Action::Created)] {
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
        *kv.first_reads_absent.lock().unwrap() = 1;
        kv.write_faults.lock().unwrap().push_back(fault);
        let o = run(&t, &ws, &kv, true, false).await;
        assert_eq!(o.action, want, "{o:?}");
        assert!(ws.ids().contains(&"cur".to_string()), "{o:?}");
        if want == Action::Created {
            let latest = kv.latest().unwrap();
            assert_eq!(latest.tags.get(db_tags::TOKEN_ID), o.token_id.as_ref(), "{o:?}");
        }
    }
    // A version created at the second of that read (or after) may be another run's: kept.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::ZERO, Duration::days(80), None);
    *kv.first_reads_absent.lock().unwrap() = 1;
    kv.write_faults.lock().unwrap().push_back(WriteFault::Refused);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!((o.action, o.reason), (Action::Unchanged, Some(Reason::Fresh)), "{o:?}");
}

#[tokio::test]
async fn lost_create_response_is_cleaned_up_and_retried() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::LostResponse);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.ids(), vec!["new2"], "the token whose value was lost is deleted");
    assert_eq!(ws.deletes.lock().unwrap().as_slice(), ["new1"]);
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new2");
}

#[tokio::test]
async fn lost_create_responses_are_retried_a_bounded_number_of_times_without_leaking() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.create_faults.lock().unwrap().extend([CreateFault::LostResponse, CreateFault::LostResponse]);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "third create succeeds: {o:?}");
    assert_eq!(ws.ids(), vec!["new3"]);

    let (ws, kv) = (MemIssuer::pat(), MemStore::default());
    ws.create_faults.lock().unwrap().extend((0..5).map(|_| CreateFault::LostResponse));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 3);
    assert!(ws.ids().is_empty(), "every lost token deleted: {:?}", ws.ids());
    assert!(kv.latest().is_none());
}

#[tokio::test]
async fn lost_create_response_without_a_list_is_not_retried() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::LostResponse);
    // The first list (step 1) works; the one after the ambiguous create fails.
    *ws.lists_before_failing.lock().unwrap() = Some(1);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 1, "no second create while the first may exist");
    assert_eq!(ws.ids().len(), 1, "left for the orphan sweep (it carries the target's and secret's prefix)");
    assert_eq!(ws.creds.lock().unwrap()[0].info.ownership, Ownership::Ours);
}

#[tokio::test]
async fn failed_verification_deletes_the_new_token() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    *ws.verify_fails.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, Code::DatabricksUnauthorized);
    assert!(ws.ids().is_empty());
    assert_eq!(*kv.writes.lock().unwrap(), 0, "an unverified token is never written");
}

#[tokio::test]
async fn quota_exceeded_sweeps_own_stale_tokens_and_retries_once() {
    let ws = MemIssuer::with(&pat::PROFILE, 3);
    let (kv, t) = (MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    // An orphan younger than the window is not swept...
    ws.seed("young", &ours("young"), Duration::minutes(30), Duration::days(89));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, Code::DatabricksQuotaExceeded);
    assert!(o.error.as_ref().unwrap().message.contains("3 listed"), "{o:?}");
    assert_eq!(ws.ids(), vec!["cur", "foreign", "young"], "nothing revocable was touched");
    assert_eq!(*ws.creates.lock().unwrap(), 1);

    // ...but an old orphan is, and then the second create fits.
    let ws = MemIssuer::with(&pat::PROFILE, 3);
    let kv = MemStore::default();
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    ws.seed("orphan", &ours("orphan"), Duration::hours(2), Duration::days(89));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Rotated, "{o:?}");
    assert_eq!(o.revoked_token_ids, vec!["orphan"]);
    assert_eq!(ws.ids(), vec!["cur", "foreign", "new1"]);
    assert_eq!(*ws.creates.lock().unwrap(), 2, "one refused create, one retry after the sweep");
}

#[tokio::test]
async fn a_full_issuer_with_an_absent_read_revokes_nothing() {
    // Finding 1: a soft-deleted secret reads 404. At the quota, the sweep must not take the
    // token consumers still hold as an orphan.
    let ws = MemIssuer::with(&pat::PROFILE, 2);
    let (kv, t) = (MemStore::default(), spec(0));
    seed_current(&ws, &kv, "cur", Duration::days(5), Duration::days(80), None);
    ws.seed("other", &ours("other"), Duration::days(6), Duration::days(80));
    *kv.reads_absent.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::DatabricksQuotaExceeded), "{o:?}");
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["cur", "other"]);
    assert!(o.error.as_ref().unwrap().message.contains("absent"), "{o:?}");
}

#[tokio::test]
async fn an_absent_read_revokes_nothing_even_over_the_cap() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    seed_current(&ws, &kv, "cur", Duration::days(5), Duration::days(80), None);
    for i in 0..7 {
        ws.seed(&format!("x{i}"), &ours(&format!("x{i}")), Duration::days(3), Duration::days(80));
    }
    *kv.reads_absent.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    // The write lands (on the "absent" name), but nothing may be revoked on that evidence.
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    assert!(ws.ids().contains(&"cur".to_string()));
}

#[tokio::test]
async fn the_retagged_latest_version_still_protects_its_token() {
    // Finding 3: `set-attributes --tags` dropped managed-by; the version still names "cur".
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("cur", &ours("cur"), Duration::days(5), Duration::days(80));
    kv.push("value-cur", &[(db_tags::TOKEN_ID, "cur")], "databricks-pat", Duration::days(3));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::ForeignSecret)), "{o:?}");
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    assert!(ws.ids().contains(&"cur".to_string()), "consumers' token lives through its grace");
    assert_eq!(kv.latest().unwrap().tags[db_tags::PREVIOUS_TOKEN_ID], "cur");
}

#[tokio::test]
async fn a_disabled_latest_version_is_replaced_and_its_token_kept() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    kv.versions.lock().unwrap().last_mut().unwrap().enabled = false;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::DisabledSecret)), "{o:?}");
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["cur", "new1"]);
    assert!(kv.latest().unwrap().enabled);
}

#[tokio::test]
async fn ages_need_the_issuers_clock() {
    // Finding 5: no Date on the listing: an unrecorded token of ours proves no age.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("in-flight", &ours("in-flight"), Duration::hours(2), Duration::days(89));
    *ws.no_date.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    *ws.no_date.lock().unwrap() = false;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids, vec!["in-flight"], "with the issuer's clock it is an orphan");
}

#[tokio::test]
async fn tokens_of_another_secret_are_never_revoked() {
    // Finding 2: the target's secret_name changed; the old secret's token is someone's still.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("old-secret", &pat::comment("t", "ffffffffffff", "a"), Duration::days(9), Duration::days(80));
    for _ in 0..8 {
        let o = run(&t, &ws, &kv, true, false).await;
        assert!(o.ok(), "{o:?}");
        assert!(!o.revoked_token_ids.contains(&"old-secret".to_string()), "{o:?}");
    }
    assert!(ws.ids().contains(&"old-secret".to_string()));
}

#[tokio::test]
async fn legacy_comments_are_ours_only_while_a_version_records_them() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("legacy-recorded", "pat-rotator/t/aaa", Duration::days(60), Duration::days(30));
    kv.push(
        "v0",
        &[(tags::MANAGED_BY, "pat-rotator"), (db_tags::TOKEN_ID, "legacy-recorded")],
        "databricks-pat",
        Duration::days(60),
    );
    ws.seed("legacy-unrecorded", "pat-rotator/t/bbb", Duration::days(60), Duration::days(30));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert_eq!(o.revoked_token_ids, vec!["legacy-recorded"], "{o:?}");
    assert_eq!(*kv.version_lists.lock().unwrap(), 1, "the versions list was read to settle them");
    assert!(ws.ids().contains(&"legacy-unrecorded".to_string()));
}

#[tokio::test]
async fn lifetime_refusal_is_reported_as_is() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::Refuse);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.error.unwrap().code, Code::DatabricksForbidden);
    assert_eq!(*ws.creates.lock().unwrap(), 1);
}

#[tokio::test]
async fn orphans_old_and_young_and_foreign_tokens() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::hours(3), Duration::days(89), None);
    ws.seed("old-orphan", &ours("x"), Duration::hours(2), Duration::days(89));
    ws.seed("young-orphan", &ours("y"), Duration::minutes(5), Duration::days(89));
    ws.seed("foreign", "pat-rotator/t2/z", Duration::days(5), Duration::days(80));
    ws.seed("hand", "manual", Duration::days(555), Duration::days(1));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert!(o.revoked_token_ids.is_empty(), "the latest version is inside the grace: {o:?}");
    kv.versions.lock().unwrap().last_mut().unwrap().created = NOW - Duration::days(2);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids, vec!["old-orphan"]);
    assert_eq!(ws.ids(), vec!["cur", "foreign", "hand", "young-orphan"]);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("old-orphan", &ours("x"), Duration::hours(2), Duration::days(89));
    let o = run(&t, &ws, &kv, false, true).await;
    assert_eq!((o.action, o.reason), (Action::Planned, Some(Reason::Expiring)));
    assert_eq!(ws.ids(), vec!["cur", "old-orphan"]);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
    assert_eq!(*ws.creates.lock().unwrap(), 0);
}

#[tokio::test]
async fn read_failure_fails_before_any_effect() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    *kv.read_fails.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_failed_write_revokes_nothing_even_when_the_secret_reads_absent() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    ws.seed("was-current", &ours("a"), Duration::days(10), Duration::days(80));
    ws.seed("old-orphan", &ours("b"), Duration::hours(3), Duration::days(80));
    kv.write_faults.lock().unwrap().push_back(WriteFault::Refused);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["old-orphan", "was-current"]);
}

#[tokio::test]
async fn quick_rotations_keep_every_superseded_token_through_its_grace() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "t1", Duration::days(2), Duration::days(88), None);
    let a = run(&t, &ws, &kv, true, false).await;
    let b = run(&t, &ws, &kv, true, false).await;
    assert_eq!((a.action, b.action), (Action::Rotated, Action::Rotated), "{a:?} {b:?}");
    assert!(a.revoked_token_ids.is_empty() && b.revoked_token_ids.is_empty(), "{a:?} {b:?}");
    assert_eq!(ws.ids(), vec!["new1", "new2", "t1"]);
}

#[tokio::test]
async fn a_failed_read_in_the_quota_path_revokes_nothing() {
    let ws = MemIssuer::with(&pat::PROFILE, 3);
    let (kv, t) = (MemStore::default(), spec(24));
    ws.seed("prev", &ours("p"), Duration::days(60), Duration::days(30));
    seed_current(&ws, &kv, "cur", Duration::days(5), Duration::days(20), Some("prev"));
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    *kv.reads_before_failing.lock().unwrap() = Some(1);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::DatabricksQuotaExceeded), "{o:?}");
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["cur", "foreign", "prev"], "the current token and its predecessor live");
}

#[tokio::test]
async fn a_cli_forcing_loop_never_keeps_more_than_six_tokens() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    for i in 0..9 {
        let o = run(&t, &ws, &kv, true, false).await;
        assert!(o.ok(), "{i}: {o:?}");
        let live = ws.ids();
        assert!(live.len() <= 6, "{i}: {live:?}");
        assert!(live.contains(o.token_id.as_ref().unwrap()), "the latest token lives");
    }
    assert_eq!(*ws.creates.lock().unwrap(), 9);
}

#[tokio::test]
async fn forced_provisions_inside_the_cooldown_are_unforced() {
    // Finding 6: seven forced calls in a second must not push the cap into a consumer's token.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(2), Duration::days(80), None);
    let force = Force::Provision { cooldown: Duration::minutes(15) };
    let first = run_req(&t, &ws, &kv, req(force)).await;
    assert_eq!((first.action, first.reason), (Action::Rotated, Some(Reason::Forced)), "{first:?}");
    for _ in 0..6 {
        let o = run_req(&t, &ws, &kv, req(force)).await;
        assert_eq!((o.action, o.reason), (Action::Unchanged, Some(Reason::RecentlyRotated)), "{o:?}");
        assert_eq!(o.token_id, first.token_id);
    }
    assert_eq!(ws.ids(), vec!["cur", "new1"], "nothing revoked, nothing more created");
    // Cooldown 0, but the room below the cap still holds them back.
    let force = Force::Provision { cooldown: Duration::ZERO };
    for _ in 0..8 {
        let o = run_req(&t, &ws, &kv, req(force)).await;
        assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    }
    assert_eq!(ws.ids().len(), 5, "{:?}", ws.ids());
}

#[tokio::test]
async fn revoke_superseded_revokes_every_other_token_at_once() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("prev", &ours("p"), Duration::days(3), Duration::days(80));
    seed_current(&ws, &kv, "cur", Duration::hours(1), Duration::days(80), Some("prev"));
    ws.seed("other-secret", &pat::comment("t", "ffffffffffff", "a"), Duration::days(1), Duration::days(80));
    ws.seed("hand", "manual", Duration::days(1), Duration::days(80));
    let o = run_req(
        &t,
        &ws,
        &kv,
        Request {
            force: Force::Cli,
            dry_run: false,
            revoke_superseded: true,
            other_writer: OtherWriter::Overwrite,
            via: "cli",
            expiry_window: None,
        },
    )
    .await;
    assert_eq!(o.action, Action::Rotated, "{o:?}");
    let mut revoked = o.revoked_token_ids.clone();
    revoked.sort();
    assert_eq!(revoked, vec!["cur", "prev"]);
    assert_eq!(ws.ids(), vec!["hand", "new1", "other-secret"]);
    assert_eq!(o.warnings.iter().filter(|w| w.contains("--revoke-superseded")).count(), 2, "{:?}", o.warnings);
}

#[tokio::test]
async fn a_token_missing_from_the_first_list_is_looked_for_again() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "b", Duration::minutes(1), Duration::days(89), None);
    *ws.hidden_from_first_list.lock().unwrap() = Some("b".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Unchanged, Some(Reason::Fresh)), "{o:?}");
    assert_eq!(*ws.lists.lock().unwrap(), 2);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_write_retry_stops_when_another_run_wrote_a_newer_version() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("theirs", &ours("theirs"), Duration::ZERO, Duration::days(90));
    *kv.concurrent_writer.lock().unwrap() = Some("theirs".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.token_id.as_deref()), (Action::Unchanged, Some("theirs")), "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 1, "no blind retry over the newer version");
    assert_eq!(ws.ids(), vec!["cur", "theirs"], "our token deleted, theirs and the old one kept");
}

#[tokio::test]
async fn a_write_that_did_not_land_is_retried_after_reading_back() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    *kv.transient_write_failures.lock().unwrap() = 2;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 3);
    assert_eq!(kv.versions.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_too_old_to_write_is_deleted_and_replaced() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.verify_clock_ahead.lock().unwrap().push_back(Duration::minutes(31));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.deletes.lock().unwrap().as_slice(), ["new1"]);
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new2");

    let (ws, kv) = (MemIssuer::pat(), MemStore::default());
    ws.verify_clock_ahead.lock().unwrap().extend([Duration::minutes(31), Duration::minutes(45)]);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::Timeout), "{o:?}");
    assert!(ws.ids().is_empty() && kv.latest().is_none());
}

/// Simulator seed 40900: the verification's answer came back 41 minutes after the workspace
/// answered (a suspended laptop); the age must count that time, so the token is not written.
#[tokio::test(start_paused = true)]
async fn a_token_whose_verification_answered_late_is_too_old_to_write() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    *ws.verify_answer_delay.lock().unwrap() = Some(std::time::Duration::from_secs(41 * 60));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.deletes.lock().unwrap().as_slice(), ["new1"], "the 41-minute-old token is deleted, not written");
    assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new2");
    assert_eq!(*kv.writes.lock().unwrap(), 1);
}

/// Simulator seeds 577372 and 860212: a concurrent run deleted one of the target's tokens after
/// this run listed them (its own token of an ambiguous create). The cap sweep after the write
/// must count what is live then — six — and revoke nothing inside the grace.
#[tokio::test]
async fn the_cap_after_a_write_counts_only_what_is_still_live() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("oldest", &ours("oldest"), Duration::hours(20), Duration::days(80));
    for (i, age) in [(1, 10), (2, 9), (3, 8)] {
        ws.seed(&format!("o{i}"), &ours(&format!("o{i}")), Duration::hours(age), Duration::days(80));
    }
    ws.seed("theirs", &ours("theirs"), Duration::minutes(1), Duration::days(90));
    seed_current(&ws, &kv, "cur", Duration::hours(2), Duration::days(80), Some("oldest"));
    *ws.deleted_after_first_list.lock().unwrap() = Some("theirs".into());
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.action, Action::Rotated, "{o:?}");
    assert!(o.revoked_token_ids.is_empty(), "six live tokens are not over the cap: {o:?}");
    assert_eq!(ws.ids(), vec!["cur", "new1", "o1", "o2", "o3", "oldest"]);

    // Seven live ones are: the oldest goes, with the warning.
    let (ws, kv) = (MemIssuer::pat(), MemStore::default());
    ws.seed("oldest", &ours("oldest"), Duration::hours(20), Duration::days(80));
    for (i, age) in [(1, 10), (2, 9), (3, 8)] {
        ws.seed(&format!("o{i}"), &ours(&format!("o{i}")), Duration::hours(age), Duration::days(80));
    }
    ws.seed("theirs", &ours("theirs"), Duration::minutes(1), Duration::days(90));
    seed_current(&ws, &kv, "cur", Duration::hours(2), Duration::days(80), Some("oldest"));
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.revoked_token_ids, vec!["oldest"], "{o:?}");
    assert!(o.warnings.iter().any(|w| w.contains("more than 6")), "{:?}", o.warnings);
}

#[tokio::test]
async fn a_refusal_that_quotes_the_new_value_never_reaches_the_result() {
    // Some upstream answers quote what they were sent. The verification error below carries
    // the new credential's value; the result (message, Debug, JSON) must not.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    *ws.verify_echoes.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    let text = format!("{o:?} {}", serde_json::to_string(&o).unwrap());
    assert!(text.contains("Bearer [redacted]"), "the refusal text is kept, the value is not: {text}");
    assert!(!text.contains("secret-value-1"), "{text}");
}

// Contract §7.4(a) across secrets: what the latest version of any configured secret names.

#[tokio::test]
async fn a_credential_another_secrets_latest_version_names_is_never_revoked() {
    // The control first: without the copy, "prev" goes after its grace.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("prev", &ours("prev"), Duration::days(10), Duration::days(80));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), Some("prev"));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids, vec!["prev"], "{o:?}");

    // An operator copied the version naming "prev" into target tb's secret.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    ws.seed("prev", &ours("prev"), Duration::days(10), Duration::days(80));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), Some("prev"));
    kv.others.names("prev", "the secret tb-pat of target tb");
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    assert!(ws.ids().contains(&"prev".to_string()));
    assert!(
        o.warnings.iter().any(|w| w.kind == WarningKind::Protected && w.contains("prev") && w.contains("tb-pat")),
        "{:?}",
        o.warnings
    );
    // The same for --revoke-superseded, and for a forced rotation with grace 0.
    let o = run_req(
        &t,
        &ws,
        &kv,
        Request {
            force: Force::Cli,
            dry_run: false,
            revoke_superseded: true,
            other_writer: OtherWriter::Overwrite,
            via: "cli",
            expiry_window: None,
        },
    )
    .await;
    assert!(o.ok(), "{o:?}");
    assert_eq!(o.revoked_token_ids, vec!["cur"], "{o:?}");
    assert!(ws.ids().contains(&"prev".to_string()));
    let t0 = spec(0);
    let o = run(&t0, &ws, &kv, true, false).await;
    assert!(o.ok() && !o.revoked_token_ids.contains(&"prev".to_string()), "{o:?}");
    assert!(ws.ids().contains(&"prev".to_string()));
}

#[tokio::test]
async fn the_cap_passes_over_what_a_latest_version_names_and_says_so() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    for i in 0..6 {
        ws.seed(&format!("old{i}"), &ours(&format!("old{i}")), Duration::hours(20 - i), Duration::days(80));
    }
    seed_current(&ws, &kv, "cur", Duration::hours(2), Duration::days(80), None);
    // Seven live, inside the grace: the cap takes the oldest, old0 — which tb's secret names.
    kv.others.names("old0", "tb's secret");
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids, vec!["old1"], "the next oldest goes instead: {o:?}");
    // Every one of them named elsewhere: nothing goes, and the run says why.
    for i in 1..6 {
        kv.others.names(&format!("old{i}"), "tb's secret");
    }
    ws.seed("old9", &ours("old9"), Duration::hours(30), Duration::days(80));
    kv.others.names("old9", "tb's secret");
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    assert!(o.warnings.iter().any(|w| w.kind == WarningKind::OverCapProtected), "{:?}", o.warnings);
}

#[tokio::test]
async fn an_unread_other_secret_blocks_every_revocation_even_the_cap() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    for i in 0..7 {
        ws.seed(&format!("old{i}"), &ours(&format!("old{i}")), Duration::days(20 - i), Duration::days(80));
    }
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), Some("old6"));
    kv.others.unread.lock().unwrap().push("the secret tb-pat of target tb (it reads as absent)".into());
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.action, Action::Rotated, "the rotation itself goes on: {o:?}");
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
    assert_eq!(ws.ids().len(), 9, "nothing revoked, over the cap or not: {:?}", ws.ids());
    let said: Vec<&Warning> = o.warnings.iter().filter(|w| w.kind == WarningKind::ProtectionUnreadable).collect();
    assert_eq!(said.len(), 1, "said once: {:?}", o.warnings);
    assert!(said[0].contains("tb-pat"), "names the secret: {}", said[0].message);
    // Readable again: the next run catches up.
    kv.others.unread.lock().unwrap().clear();
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.revoked_token_ids.len() >= 7, "{o:?}");
}

#[tokio::test]
async fn the_other_secrets_are_asked_only_before_a_revocation_and_before_each_one() {
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, *kv.others.asked.lock().unwrap()), (Action::Unchanged, 0), "nothing to revoke, nothing read");
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!((o.action, *kv.others.asked.lock().unwrap()), (Action::Rotated, 0), "inside the grace: nothing read");
    // Two revocable: asked once to plan, and once more before each revocation (the engine
    // answers from its shared read unless that is ten minutes old).
    ws.seed("a", &ours("a"), Duration::days(9), Duration::days(80));
    ws.seed("b", &ours("b"), Duration::days(9), Duration::days(80));
    kv.age_all(Duration::days(2));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids.len(), 3, "{o:?}");
    assert_eq!(*kv.others.asked.lock().unwrap(), 1 + 3);
}

#[tokio::test]
async fn the_latest_version_protects_under_either_kinds_tag() {
    // A target that was `pat` and is now `sp_oauth_secret`: its latest version is a PAT version.
    // Its token is no OAuth secret of the principal; the rule is the tag, whatever the kind.
    // (Once a newer version supersedes it, the grace protects it like any superseded one.)
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    ws.seed("shared-id", "", Duration::days(9), Duration::days(80));
    kv.push(
        "value",
        &[
            (tags::MANAGED_BY, "pat-rotator"),
            (db_tags::TOKEN_ID, "shared-id"),
            (db_tags::PREVIOUS_SECRET_ID, "shared-id"),
        ],
        "databricks-pat",
        Duration::days(3),
    );
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.reason, Some(Reason::ForeignSecret), "{o:?}");
    assert!(!o.revoked_token_ids.contains(&"shared-id".to_string()), "{o:?}");
    assert!(ws.ids().contains(&"shared-id".to_string()));
}

#[tokio::test]
async fn tied_latest_versions_each_count_as_the_latest() {
    // Two versions of one second; the vault refused to read the latest (disabled), so the
    // versions list gave both. "b" (greatest id) names "tb", the disabled one names "ta".
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    ws.seed("ta", &ours("ta"), Duration::days(5), Duration::days(80));
    seed_current(&ws, &kv, "tb", Duration::days(5), Duration::days(80), None);
    kv.tied.lock().unwrap().push(Version {
        id: "https://kv/secrets/s/a".into(),
        value: "value-ta".into(),
        tags: [(tags::MANAGED_BY, "pat-rotator"), (db_tags::TOKEN_ID, "ta")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        content_type: Some("databricks-pat".into()),
        created: NOW - Duration::days(5),
        enabled: false,
    });
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::DisabledSecret)), "{o:?}");
    assert_eq!(kv.latest().unwrap().tags[db_tags::PREVIOUS_TOKEN_ID], "tb", "the tied version with the greatest id");
    // Grace 0: the superseded credentials may go after the write — but not before it was
    // written: both were "the latest" when this run read.
    assert!(ws.ids().contains(&"new1".to_string()));
    // A tied version naming a credential that is not listed: reprovision.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
    seed_current(&ws, &kv, "tb", Duration::days(5), Duration::days(80), None);
    let mut gone = kv.latest().unwrap();
    gone.tags.insert(db_tags::TOKEN_ID.into(), "gone".into());
    kv.tied.lock().unwrap().push(gone);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.reason, Some(Reason::RevokedInWorkspace), "{o:?}");
}

#[tokio::test]
async fn a_tied_version_protects_its_credential() {
    // The latest (greatest id) names "tb"; a version of the same second names "ta": neither is
    // revocable, whatever the grace.
    let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
    ws.seed("ta", &ours("ta"), Duration::days(5), Duration::days(80));
    seed_current(&ws, &kv, "tb", Duration::days(5), Duration::days(80), Some("ta"));
    let mut tied = kv.latest().unwrap();
    tied.id = "https://kv/secrets/s/0".into();
    tied.tags.insert(db_tags::TOKEN_ID.into(), "ta".into());
    kv.tied.lock().unwrap().push(tied);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged, "{o:?}");
    assert!(o.revoked_token_ids.is_empty(), "{o:?}");
}

#[tokio::test]
async fn another_targets_record_is_not_reported_as_unrecorded() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("spb-secret", "", Duration::days(3), Duration::days(600));
    kv.others.recorded.lock().unwrap().insert("spb-secret".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    // When those records cannot be read, nothing is offered for removal.
    *kv.others.recorded_fails.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.warnings.iter().all(|w| !w.contains("--revoke")), "{:?}", o.warnings);
    assert!(o.warnings.iter().any(|w| w.kind == WarningKind::VersionsUnreadable), "{:?}", o.warnings);
    assert!(ws.ids().contains(&"spb-secret".to_string()));
}

#[tokio::test]
async fn what_a_run_says_of_a_credential_it_leaves_is_true_for_its_kind() {
    for (ws, t) in [(MemIssuer::oauth(), oauth_spec(24)), (MemIssuer::pat(), spec(24))] {
        let kv = MemStore::default();
        seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
        kv.write_faults.lock().unwrap().push_back(WriteFault::RefusedQuoting);
        *ws.revoke_fails.lock().unwrap() = true;
        let o = run(&t, &ws, &kv, true, false).await;
        let e = o.error.clone().expect("fails");
        let text = format!("{} {:?}", e.message, o.warnings);
        assert!(!text.contains("secret-value-1"), "the refused value is scrubbed: {text}");
        assert!(!text.contains("an orphan a later run will revoke"), "{text}");
        if ws.is_pat() {
            assert!(e.message.contains("a later run revokes it once it is 60 minutes old"), "{}", e.message);
        } else {
            assert!(
                e.message.contains("reported as unrecorded") && e.message.contains("tokens --target t --revoke new1")
            );
        }
    }
}

// OAuth secrets (contract §9): the same order, with ownership by record and a limit of five.

fn oauth_spec(grace: i64) -> Spec {
    Spec { owner: None, ..spec(grace) }
}

#[tokio::test]
async fn oauth_first_run_and_rerun() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    let v = kv.latest().unwrap();
    assert_eq!(v.content_type.as_deref(), Some("databricks-oauth-secret"));
    assert_eq!(v.tags[db_tags::SECRET_ID], "new1");
    assert!(!v.tags.contains_key(db_tags::TOKEN_ID) && !v.tags.contains_key(db_tags::EXPIRES_AT));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Unchanged, Some(Reason::Fresh)), "{o:?}");
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
}

#[tokio::test]
async fn oauth_secrets_nobody_recorded_are_reported_never_deleted() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(0));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("someone-elses", "", Duration::days(100), Duration::days(600));
    for _ in 0..3 {
        let o = run(&t, &ws, &kv, true, false).await;
        assert!(o.ok(), "{o:?}");
        assert!(!o.revoked_token_ids.contains(&"someone-elses".to_string()), "{o:?}");
        assert!(
            o.warnings.iter().any(|w| w.contains("someone-elses") && w.contains("tokens --target t --revoke")),
            "{:?}",
            o.warnings
        );
    }
    assert!(ws.ids().contains(&"someone-elses".to_string()));
}

#[tokio::test]
async fn an_oauth_secret_a_version_names_is_never_called_unrecorded() {
    // Found by the simulator's invariant 13 (seed 1303): a concurrent run's version, written
    // after this run read the latest, names a new OAuth secret. It is no evidence of whose the
    // secret is (it cannot be ordered against the latest), but the warning called the secret
    // one "that no version of this secret records" and advised `tokens --revoke`.
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    ws.seed("theirs", "", Duration::minutes(2), Duration::days(90));
    *kv.oauth_written_before_versions.lock().unwrap() = Some("theirs".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert!(o.ok(), "{o:?}");
    assert!(!o.warnings.iter().any(|w| w.contains("theirs")), "called unrecorded: {:?}", o.warnings);
    assert!(ws.ids().contains(&"theirs".to_string()));
}

#[tokio::test]
async fn oauth_at_the_limit_fails_naming_what_it_may_not_touch() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    seed_current(&ws, &kv, "cur", Duration::hours(2), Duration::days(80), None);
    for i in 0..4 {
        ws.seed(&format!("theirs{i}"), "", Duration::days(10), Duration::days(600));
    }
    let o = run(&t, &ws, &kv, true, false).await;
    let e = o.error.clone().expect("fails");
    assert_eq!(e.code, Code::DatabricksQuotaExceeded);
    assert!(e.message.contains("theirs0") && e.message.contains("theirs3"), "{}", e.message);
    assert_eq!(ws.ids().len(), 5, "nothing deleted");
}

#[tokio::test]
async fn oauth_an_ambiguous_create_is_not_retried_and_names_what_appeared() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.create_faults.lock().unwrap().push_back(CreateFault::LostResponse);
    let o = run(&t, &ws, &kv, false, false).await;
    let e = o.error.clone().expect("fails");
    assert_eq!(e.code, Code::Timeout);
    assert!(e.message.contains("new1"), "{}", e.message);
    assert_eq!(*ws.creates.lock().unwrap(), 1);
    assert_eq!(ws.ids(), vec!["cur", "new1"], "the unidentifiable secret is not deleted on a guess");
}

#[tokio::test]
async fn oauth_the_superseded_secret_goes_after_its_grace() {
    let (ws, kv, t) = (MemIssuer::oauth(), MemStore::default(), oauth_spec(24));
    seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.action, Action::Rotated);
    assert!(o.revoked_token_ids.is_empty());
    kv.versions.lock().unwrap().last_mut().unwrap().created = NOW - Duration::days(2);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.revoked_token_ids, vec!["cur"], "{o:?}");
    assert_eq!(*kv.version_lists.lock().unwrap(), 0, "the latest version's previous-secret-id records it");
}

/// Each old defect, switched on, breaks the scenario that guards it (proof that the switches the
/// simulator relies on really bring the defect back).
#[cfg(feature = "sim-bugs")]
mod old_defects {
    use super::*;
    use pat_rotator::rotation::bugs::{self, Bug};

    #[tokio::test]
    async fn absent_is_proof() {
        bugs::set(&[Bug::AbsentIsProof]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
        seed_current(&ws, &kv, "cur", Duration::days(5), Duration::days(80), None);
        *kv.reads_absent.lock().unwrap() = true;
        let o = run(&t, &ws, &kv, false, false).await;
        bugs::set(&[]);
        assert_eq!(o.revoked_token_ids, vec!["cur"], "{o:?}");
    }

    #[tokio::test]
    async fn owner_by_name() {
        bugs::set(&[Bug::OwnerByName]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(0));
        seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
        ws.seed("old-secret", &pat::comment("t", "ffffffffffff", "a"), Duration::days(9), Duration::days(80));
        let o = run(&t, &ws, &kv, true, false).await;
        bugs::set(&[]);
        assert!(o.revoked_token_ids.contains(&"old-secret".to_string()), "{o:?}");
    }

    #[tokio::test]
    async fn retag_unprotected() {
        bugs::set(&[Bug::RetagUnprotected]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        ws.seed("cur", &ours("cur"), Duration::days(5), Duration::days(80));
        kv.push("value-cur", &[(db_tags::TOKEN_ID, "cur")], "databricks-pat", Duration::days(3));
        let o = run(&t, &ws, &kv, false, false).await;
        bugs::set(&[]);
        assert!(o.revoked_token_ids.contains(&"cur".to_string()), "{o:?}");
    }

    #[tokio::test]
    async fn timeout_is_failure() {
        bugs::set(&[Bug::TimeoutIsFailure]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
        kv.write_faults.lock().unwrap().push_back(WriteFault::TimeoutLandsLater);
        let ports = Ports { issuer: &ws, store: &kv, clock: &FixedClock, backoff: &NoRetry, others: &kv.others };
        let _ = rotate(&t, req(Force::No), &ports).await;
        bugs::set(&[]);
        let named = kv.latest().unwrap().tags[db_tags::TOKEN_ID].clone();
        assert!(!ws.ids().contains(&named), "the vault names a dead token: {named} {:?}", ws.ids());
    }

    #[tokio::test(start_paused = true)]
    async fn age_from_the_answer() {
        bugs::set(&[Bug::AgeFromTheAnswer]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        *ws.verify_answer_delay.lock().unwrap() = Some(std::time::Duration::from_secs(41 * 60));
        let _ = run(&t, &ws, &kv, false, false).await;
        bugs::set(&[]);
        assert_eq!(kv.latest().unwrap().tags[db_tags::TOKEN_ID], "new1", "the 41-minute-old token is written");
    }

    #[tokio::test]
    async fn cap_counts_the_gone() {
        bugs::set(&[Bug::CapCountsTheGone]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        ws.seed("oldest", &ours("oldest"), Duration::hours(20), Duration::days(80));
        for (i, age) in [(1, 10), (2, 9), (3, 8)] {
            ws.seed(&format!("o{i}"), &ours(&format!("o{i}")), Duration::hours(age), Duration::days(80));
        }
        ws.seed("theirs", &ours("theirs"), Duration::minutes(1), Duration::days(90));
        seed_current(&ws, &kv, "cur", Duration::hours(2), Duration::days(80), Some("oldest"));
        *ws.deleted_after_first_list.lock().unwrap() = Some("theirs".into());
        let o = run(&t, &ws, &kv, true, false).await;
        bugs::set(&[]);
        assert_eq!(o.revoked_token_ids, vec!["oldest"], "{o:?}");
    }

    #[tokio::test]
    async fn no_date_local_clock() {
        bugs::set(&[Bug::NoDateLocalClock]);
        let (ws, kv, t) = (MemIssuer::pat(), MemStore::default(), spec(24));
        seed_current(&ws, &kv, "cur", Duration::days(3), Duration::days(80), None);
        ws.seed("in-flight", &ours("in-flight"), Duration::hours(2), Duration::days(89));
        *ws.no_date.lock().unwrap() = true;
        let o = run(&t, &ws, &kv, false, false).await;
        bugs::set(&[]);
        assert_eq!(o.revoked_token_ids, vec!["in-flight"], "{o:?}");
    }
}
