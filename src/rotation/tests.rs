//! The rotation against in-memory ports: every invariant of the module docs, without HTTP.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::model::{CreateToken, NewToken, SecretWrite, StoredSecret, TokenInfo, tags};
use super::ports::{Clock, CreateError, Listing, SecretRead, SecretStore, Workspace};
use super::rotate::{Ports, Request, rotate};
use super::{Action, Reason};
use crate::config::Target;
use crate::error::{Code, Error, Result};
use crate::secret::Redacted;

const NOW: OffsetDateTime = datetime!(2026-11-26 03:00 UTC);

struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        NOW
    }
}

#[derive(Debug, Clone)]
struct MemToken {
    info: TokenInfo,
    value: String,
}

#[derive(Default)]
enum CreateFault {
    #[default]
    None,
    /// Create the token, then report an ambiguous failure (the response was lost).
    LostResponse,
    Quota,
    Refuse(Code),
}

#[derive(Default)]
struct MemWorkspace {
    tokens: Mutex<Vec<MemToken>>,
    create_faults: Mutex<VecDeque<CreateFault>>,
    verify_fails: Mutex<bool>,
    /// Lists that succeed before every further list fails (`None`: never fails).
    lists_before_failing: Mutex<Option<u32>>,
    /// The first list leaves this token out (it was created just after the list was taken).
    hidden_from_first_list: Mutex<Option<String>>,
    lists: Mutex<u32>,
    /// The workspace's clock at verification is this much ahead of token creation.
    verify_clock_ahead: Mutex<VecDeque<Duration>>,
    deletes: Mutex<Vec<String>>,
    creates: Mutex<u32>,
    quota: usize,
    next: Mutex<u32>,
}

impl MemWorkspace {
    fn seed(&self, id: &str, comment: &str, age: Duration, expires_in: Duration) {
        self.tokens.lock().unwrap().push(MemToken {
            info: TokenInfo {
                id: id.into(),
                comment: Some(comment.into()),
                created_at: NOW - age,
                expires_at: Some(NOW + expires_in),
            },
            value: format!("dapi-{id}"),
        });
    }
    fn ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tokens.lock().unwrap().iter().map(|t| t.info.id.clone()).collect();
        v.sort();
        v
    }
    fn value_of(&self, id: &str) -> Option<String> {
        self.tokens.lock().unwrap().iter().find(|t| t.info.id == id).map(|t| t.value.clone())
    }
}

#[async_trait]
impl Workspace for MemWorkspace {
    async fn list_tokens(&self) -> Result<Listing> {
        if let Some(n) = self.lists_before_failing.lock().unwrap().as_mut() {
            if *n == 0 {
                return Err(Error::new(Code::UpstreamUnavailable, "list down"));
            }
            *n -= 1;
        }
        *self.lists.lock().unwrap() += 1;
        let hidden = self.hidden_from_first_list.lock().unwrap().take();
        let tokens = self
            .tokens
            .lock()
            .unwrap()
            .iter()
            .filter(|t| Some(&t.info.id) != hidden.as_ref())
            .map(|t| t.info.clone())
            .collect();
        Ok(Listing { tokens, at: Some(NOW) })
    }
    async fn create_token(&self, req: &CreateToken) -> std::result::Result<NewToken, CreateError> {
        *self.creates.lock().unwrap() += 1;
        let fault = self.create_faults.lock().unwrap().pop_front().unwrap_or_default();
        let quota = if self.quota == 0 { 600 } else { self.quota };
        if matches!(fault, CreateFault::Quota) || self.tokens.lock().unwrap().len() >= quota {
            return Err(CreateError::Refused(
                Error::new(Code::DatabricksQuotaExceeded, "QUOTA_EXCEEDED").with_status(400),
            ));
        }
        if let CreateFault::Refuse(code) = fault {
            return Err(CreateError::Refused(Error::new(code, "refused").with_status(400)));
        }
        let n = {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            *n
        };
        let t = MemToken {
            info: TokenInfo {
                id: format!("new{n}"),
                comment: Some(req.comment.clone()),
                created_at: NOW,
                expires_at: Some(NOW + Duration::seconds(req.lifetime_seconds as i64)),
            },
            value: format!("dapi-secret-{n}"),
        };
        self.tokens.lock().unwrap().push(t.clone());
        if matches!(fault, CreateFault::LostResponse) {
            return Err(CreateError::Ambiguous(Error::new(Code::Timeout, "lost").transient()));
        }
        Ok(NewToken { value: Redacted::new(t.value), info: t.info })
    }
    async fn delete_token(&self, id: &str) -> Result<()> {
        self.deletes.lock().unwrap().push(id.to_string());
        self.tokens.lock().unwrap().retain(|t| t.info.id != id);
        Ok(())
    }
    async fn verify_token(&self, token: &Redacted) -> Result<Option<OffsetDateTime>> {
        if *self.verify_fails.lock().unwrap() {
            return Err(Error::new(Code::DatabricksForbidden, "Invalid access token."));
        }
        if self.tokens.lock().unwrap().iter().any(|t| t.value == token.expose()) {
            Ok(Some(NOW + self.verify_clock_ahead.lock().unwrap().pop_front().unwrap_or(Duration::ZERO)))
        } else {
            Err(Error::new(Code::DatabricksForbidden, "Invalid access token."))
        }
    }
    async fn max_lifetime_days(&self) -> Option<u32> {
        Some(30)
    }
}

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: String,
    tags: BTreeMap<String, String>,
    created: OffsetDateTime,
}

impl Version {
    fn stored(&self) -> StoredSecret {
        StoredSecret { id: self.id.clone(), tags: self.tags.clone(), content_type: None, created: Some(self.created) }
    }
}

#[derive(Default)]
struct MemStore {
    versions: Mutex<Vec<Version>>,
    /// Fail writes: (landed anyway?, then fail reads too?)
    write_fault: Mutex<Option<(bool, bool)>>,
    read_fails: Mutex<bool>,
    /// Reads that succeed before every further read fails (`None`: never fails).
    reads_before_failing: Mutex<Option<u32>>,
    /// Written by another process when our next write fails: (token id, then fail the write).
    concurrent_writer: Mutex<Option<String>>,
    /// Write attempts that fail (transiently) without landing.
    transient_write_failures: Mutex<u32>,
    writes: Mutex<u32>,
}

impl MemStore {
    fn latest(&self) -> Option<Version> {
        self.versions.lock().unwrap().last().cloned()
    }
    fn seed(&self, value: &str, tags: &[(&str, &str)], age: Duration) {
        let mut versions = self.versions.lock().unwrap();
        let n = versions.len();
        versions.push(Version {
            id: format!("https://kv/secrets/s/v{n}"),
            value: value.into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            created: NOW - age,
        });
    }
}

#[async_trait]
impl SecretStore for MemStore {
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
        Ok(SecretRead { latest: self.latest().map(|v| v.stored()), at: Some(NOW) })
    }
    async fn write(&self, w: &SecretWrite) -> Result<StoredSecret> {
        *self.writes.lock().unwrap() += 1;
        let fault = *self.write_fault.lock().unwrap();
        let v = Version {
            id: format!("https://kv/secrets/s/v{}", self.versions.lock().unwrap().len()),
            value: w.value.expose().to_string(),
            tags: w.tags.clone(),
            created: NOW,
        };
        if let Some(other) = self.concurrent_writer.lock().unwrap().take() {
            let n = self.versions.lock().unwrap().len();
            self.seed(
                &format!("dapi-{other}"),
                &[(tags::MANAGED_BY, "pat-rotator"), (tags::TOKEN_ID, other.as_str())],
                Duration::ZERO,
            );
            let _ = n;
            return Err(Error::new(Code::UpstreamUnavailable, "503 from vault").with_status(503).transient());
        }
        {
            let mut left = self.transient_write_failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(Error::new(Code::Throttled, "429 from vault").with_status(429).transient());
            }
        }
        match fault {
            None => {
                self.versions.lock().unwrap().push(v.clone());
                Ok(v.stored())
            }
            Some((landed, then_reads_fail)) => {
                if landed {
                    self.versions.lock().unwrap().push(v);
                }
                if then_reads_fail {
                    *self.read_fails.lock().unwrap() = true;
                }
                Err(Error::new(Code::UpstreamUnavailable, "500 from vault").with_status(500))
            }
        }
    }
}

fn target(grace: u32) -> Target {
    Target {
        name: "t".into(),
        workspace_url: "https://adb-1.1.azuredatabricks.net".into(),
        workspace_resource_id: None,
        key_vault_url: "https://kv.vault.azure.net".into(),
        secret_name: "s".into(),
        lifetime_days: 90,
        renew_before_days: 30,
        revoke_grace_hours: grace,
        scopes: None,
        autoscope: None,
        client_id: None,
    }
}

async fn run(t: &Target, ws: &MemWorkspace, kv: &MemStore, force: bool, dry_run: bool) -> super::Outcome {
    let retry = crate::transport::retry::RetryPolicy {
        attempts: 3,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
        call_timeout: std::time::Duration::from_secs(5),
    };
    let ports = Ports { workspace: ws, store: kv, clock: &FixedClock, retry: &retry };
    rotate(Request { target: t, force, dry_run }, &ports).await
}

/// A managed secret naming token `id` (created `age` ago, expiring in `exp`).
fn seed_current(ws: &MemWorkspace, kv: &MemStore, id: &str, age: Duration, exp: Duration, prev: Option<&str>) {
    ws.seed(id, &format!("pat-rotator/t/{id}"), age, exp);
    let rotated = super::model::rfc3339(NOW - age);
    let mut tags = vec![
        (tags::MANAGED_BY, "pat-rotator"),
        (tags::TARGET, "t"),
        (tags::TOKEN_ID, id),
        (tags::ROTATED_AT, rotated.as_str()),
    ];
    if let Some(p) = prev {
        tags.push((tags::PREVIOUS_TOKEN_ID, p));
    }
    kv.seed(&format!("dapi-{id}"), &tags, age);
}

#[tokio::test]
async fn first_run_creates_and_records_a_working_token() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Created, Some(Reason::NoSecret)), "{o:?}");
    let v = kv.latest().unwrap();
    let id = v.tags[tags::TOKEN_ID].clone();
    assert_eq!(o.token_id.as_deref(), Some(id.as_str()));
    assert_eq!(ws.value_of(&id).as_deref(), Some(v.value.as_str()), "the vault holds the live token's value");
    assert_eq!(v.tags[tags::MANAGED_BY], "pat-rotator");
    assert!(!v.tags.contains_key(tags::PREVIOUS_TOKEN_ID));
    assert_eq!(o.expires_at.as_deref(), Some("2027-02-24T03:00:00Z"));

    // Second run: unchanged, no write of any kind.
    let o2 = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o2.action, o2.reason), (Action::Unchanged, Some(Reason::Fresh)));
    assert_eq!(*kv.writes.lock().unwrap(), 1);
    assert_eq!(*ws.creates.lock().unwrap(), 1);
    assert!(ws.deletes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expiring_token_is_rotated_and_previous_kept_within_grace() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::Expiring)));
    assert!(o.revoked_token_ids.is_empty());
    let v = kv.latest().unwrap();
    assert_eq!(v.tags[tags::PREVIOUS_TOKEN_ID], "old");
    assert_eq!(ws.ids(), vec!["new1", "old"]);
}

#[tokio::test]
async fn grace_zero_revokes_the_superseded_token_after_the_write() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(0));
    seed_current(&ws, &kv, "old", Duration::days(1), Duration::days(89), None);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::Forced)));
    assert_eq!(o.revoked_token_ids, vec!["old"]);
    assert_eq!(ws.ids(), vec!["new1"]);
}

#[tokio::test]
async fn previous_past_grace_is_swept_by_an_unchanged_run() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.seed("prev", "pat-rotator/t/p", Duration::days(61), Duration::days(29));
    seed_current(&ws, &kv, "cur", Duration::days(2), Duration::days(88), Some("prev"));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert_eq!(o.revoked_token_ids, vec!["prev"]);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
}

#[tokio::test]
async fn revoked_out_of_band_is_reprovisioned() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "gone", Duration::days(1), Duration::days(89), None);
    ws.tokens.lock().unwrap().clear();
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Reprovisioned, Some(Reason::RevokedInWorkspace)));
    assert!(!kv.latest().unwrap().tags.contains_key(tags::PREVIOUS_TOKEN_ID), "a gone token is not a previous one");
}

#[tokio::test]
async fn foreign_secret_gets_a_new_version_and_its_value_is_left_alone() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    kv.seed("hand-made", &[], Duration::days(3));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Rotated, Some(Reason::ForeignSecret)));
    let versions = kv.versions.lock().unwrap().clone();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].value, "hand-made");
}

#[tokio::test]
async fn failed_write_deletes_the_new_token_and_keeps_the_old() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(0));
    seed_current(&ws, &kv, "old", Duration::days(70), Duration::days(20), None);
    *kv.write_fault.lock().unwrap() = Some((false, false));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, Code::UpstreamUnavailable);
    assert_eq!(ws.ids(), vec!["old"], "new token deleted, old one untouched even with grace 0");
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "old");
}

#[tokio::test]
async fn write_that_landed_despite_an_error_is_a_success() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    *kv.write_fault.lock().unwrap() = Some((true, false));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.ids(), vec!["new1"]);
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "new1");
}

#[tokio::test]
async fn unknown_write_outcome_keeps_the_token_for_the_orphan_sweep() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    *kv.write_fault.lock().unwrap() = Some((true, true));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert!(o.error.as_ref().unwrap().message.contains("kept"), "{o:?}");
    // The token landed in the vault, so deleting it would have broken the secret.
    assert_eq!(ws.ids(), vec!["new1"]);
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "new1");
}

#[tokio::test]
async fn lost_create_response_is_cleaned_up_and_retried() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::LostResponse);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.ids(), vec!["new2"], "the token whose value was lost is deleted");
    assert_eq!(ws.deletes.lock().unwrap().as_slice(), ["new1"]);
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "new2");
}

#[tokio::test]
async fn lost_create_responses_are_retried_a_bounded_number_of_times_without_leaking() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.create_faults.lock().unwrap().extend([CreateFault::LostResponse, CreateFault::LostResponse]);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "third create succeeds: {o:?}");
    assert_eq!(ws.ids(), vec!["new3"]);

    let (ws, kv) = (MemWorkspace::default(), MemStore::default());
    ws.create_faults.lock().unwrap().extend((0..5).map(|_| CreateFault::LostResponse));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 3);
    assert!(ws.ids().is_empty(), "every lost token deleted: {:?}", ws.ids());
    assert!(kv.latest().is_none());
}

#[tokio::test]
async fn lost_create_response_without_a_list_is_not_retried() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::LostResponse);
    // The first list (step 1) works; the one after the ambiguous create fails.
    *ws.lists_before_failing.lock().unwrap() = Some(1);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 1, "no second create while the first may exist");
    assert_eq!(ws.ids().len(), 1, "left for the orphan sweep (it carries the target's prefix)");
    assert!(ws.tokens.lock().unwrap()[0].info.comment.as_deref().unwrap().starts_with("pat-rotator/t/"));
}

#[tokio::test]
async fn failed_verification_deletes_the_new_token() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    *ws.verify_fails.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert!(ws.ids().is_empty());
    assert_eq!(*kv.writes.lock().unwrap(), 0, "an unverified token is never written");
}

#[tokio::test]
async fn quota_exceeded_sweeps_own_stale_tokens_and_retries_once() {
    let ws = MemWorkspace { quota: 3, ..Default::default() };
    let (kv, t) = (MemStore::default(), target(24));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    // An orphan younger than the window is not swept before the create...
    ws.seed("young", "pat-rotator/t/young", Duration::minutes(30), Duration::days(89));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(o.error.as_ref().unwrap().code, Code::DatabricksQuotaExceeded);
    assert!(o.error.as_ref().unwrap().message.contains("3 tokens"), "{o:?}");
    assert_eq!(ws.ids(), vec!["cur", "foreign", "young"], "nothing revocable was touched");

    // ...but an old orphan is, and then the create fits.
    let ws = MemWorkspace { quota: 3, ..Default::default() };
    let kv = MemStore::default();
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    ws.seed("orphan", "pat-rotator/t/orphan", Duration::hours(2), Duration::days(89));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Rotated, "{o:?}");
    assert_eq!(o.revoked_token_ids, vec!["orphan"]);
    assert_eq!(ws.ids(), vec!["cur", "foreign", "new1"]);
}

#[tokio::test]
async fn quota_error_from_the_workspace_triggers_one_sweep_and_retry() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::Quota);
    // Aged between the first list and the quota error: not swept up front.
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    let o = run(&t, &ws, &kv, false, false).await;
    // Nothing revocable: fails with the quota code, after exactly one extra list.
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::DatabricksQuotaExceeded));
    assert_eq!(*ws.creates.lock().unwrap(), 1);
}

#[tokio::test]
async fn lifetime_above_cap_names_the_cap() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    ws.create_faults.lock().unwrap().push_back(CreateFault::Refuse(Code::DatabricksError));
    let o = run(&t, &ws, &kv, false, false).await;
    let e = o.error.unwrap();
    assert_eq!(e.code, Code::DatabricksLifetimeTooLong);
    assert!(e.message.contains("30 days"), "{}", e.message);
}

#[tokio::test]
async fn orphans_old_and_young_and_foreign_tokens() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "cur", Duration::days(1), Duration::days(89), None);
    ws.seed("old-orphan", "pat-rotator/t/x", Duration::hours(2), Duration::days(89));
    ws.seed("young-orphan", "pat-rotator/t/y", Duration::minutes(5), Duration::days(89));
    ws.seed("foreign", "pat-rotator/t2/z", Duration::days(5), Duration::days(80));
    ws.seed("hand", "manual", Duration::days(500), Duration::days(1));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Unchanged);
    assert_eq!(o.revoked_token_ids, vec!["old-orphan"]);
    assert_eq!(ws.ids(), vec!["cur", "foreign", "hand", "young-orphan"]);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(0));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("old-orphan", "pat-rotator/t/x", Duration::hours(2), Duration::days(89));
    let o = run(&t, &ws, &kv, false, true).await;
    assert_eq!((o.action, o.reason), (Action::Planned, Some(Reason::Expiring)));
    assert_eq!(ws.ids(), vec!["cur", "old-orphan"]);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
    assert_eq!(*ws.creates.lock().unwrap(), 0);
}

#[tokio::test]
async fn read_failure_fails_before_any_effect() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    *kv.read_fails.lock().unwrap() = true;
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.action, Action::Failed);
    assert_eq!(*ws.creates.lock().unwrap(), 0);
}

#[tokio::test]
async fn outcome_debug_never_shows_a_value() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    let o = run(&t, &ws, &kv, false, false).await;
    let text = format!("{o:?} {}", serde_json::to_string(&o).unwrap());
    assert!(!text.contains("dapi-secret-1"), "{text}");
}

#[tokio::test]
async fn a_failed_write_revokes_nothing_even_when_the_secret_is_missing() {
    // A soft-deleted secret reads as missing, so every old token of ours looks like an orphan;
    // the write then fails (409). Revoking before the write would have left nothing working.
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(0));
    ws.seed("was-current", "pat-rotator/t/a", Duration::days(10), Duration::days(80));
    ws.seed("old-orphan", "pat-rotator/t/b", Duration::hours(3), Duration::days(80));
    *kv.write_fault.lock().unwrap() = Some((false, false));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Failed);
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["old-orphan", "was-current"]);
}

#[tokio::test]
async fn quick_rotations_keep_every_superseded_token_through_its_grace() {
    // T1 superseded by T2, T2 by T3 a moment later: T1 (old, superseded moments ago) must live.
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "t1", Duration::days(2), Duration::days(88), None);
    let a = run(&t, &ws, &kv, true, false).await;
    let b = run(&t, &ws, &kv, true, false).await;
    assert_eq!((a.action, b.action), (Action::Rotated, Action::Rotated), "{a:?} {b:?}");
    assert!(a.revoked_token_ids.is_empty() && b.revoked_token_ids.is_empty(), "{a:?} {b:?}");
    assert_eq!(ws.ids(), vec!["new1", "new2", "t1"]);
}

#[tokio::test]
async fn a_failed_read_in_the_quota_path_revokes_nothing() {
    let ws = MemWorkspace { quota: 3, ..Default::default() };
    let (kv, t) = (MemStore::default(), target(24));
    ws.seed("prev", "pat-rotator/t/p", Duration::days(60), Duration::days(30));
    seed_current(&ws, &kv, "cur", Duration::days(5), Duration::days(20), Some("prev"));
    ws.seed("foreign", "someone else's", Duration::days(300), Duration::days(300));
    // The first read works, the re-read after QUOTA_EXCEEDED fails.
    *kv.reads_before_failing.lock().unwrap() = Some(1);
    let o = run(&t, &ws, &kv, true, false).await;
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::DatabricksQuotaExceeded), "{o:?}");
    assert!(o.revoked_token_ids.is_empty());
    assert_eq!(ws.ids(), vec!["cur", "foreign", "prev"], "the current token and its predecessor live");
}

#[tokio::test]
async fn a_forcing_loop_never_keeps_more_than_six_tokens() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
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
async fn a_token_missing_from_the_first_list_is_looked_for_again() {
    // A concurrent run wrote a version naming a token created after our list was taken.
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "b", Duration::minutes(1), Duration::days(89), None);
    *ws.hidden_from_first_list.lock().unwrap() = Some("b".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.reason), (Action::Unchanged, Some(Reason::Fresh)), "{o:?}");
    assert_eq!(*ws.lists.lock().unwrap(), 2);
    assert_eq!(*kv.writes.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_write_retry_stops_when_another_run_wrote_a_newer_version() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    seed_current(&ws, &kv, "cur", Duration::days(70), Duration::days(20), None);
    ws.seed("theirs", "pat-rotator/t/theirs", Duration::ZERO, Duration::days(90));
    *kv.concurrent_writer.lock().unwrap() = Some("theirs".into());
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!((o.action, o.token_id.as_deref()), (Action::Unchanged, Some("theirs")), "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 1, "no blind retry over the newer version");
    assert_eq!(ws.ids(), vec!["cur", "theirs"], "our token deleted, theirs and the old one kept");
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "theirs");
}

#[tokio::test]
async fn a_write_that_did_not_land_is_retried_after_reading_back() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    *kv.transient_write_failures.lock().unwrap() = 2;
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(*kv.writes.lock().unwrap(), 3);
    assert_eq!(kv.versions.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_token_too_old_to_write_is_deleted_and_replaced() {
    let (ws, kv, t) = (MemWorkspace::default(), MemStore::default(), target(24));
    // The workspace's clock says 31 minutes passed between create and verification.
    ws.verify_clock_ahead.lock().unwrap().push_back(Duration::minutes(31));
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.action, Action::Created, "{o:?}");
    assert_eq!(ws.deletes.lock().unwrap().as_slice(), ["new1"]);
    assert_eq!(kv.latest().unwrap().tags[tags::TOKEN_ID], "new2");

    let (ws, kv) = (MemWorkspace::default(), MemStore::default());
    ws.verify_clock_ahead.lock().unwrap().extend([Duration::minutes(31), Duration::minutes(45)]);
    let o = run(&t, &ws, &kv, false, false).await;
    assert_eq!(o.error.as_ref().map(|e| e.code), Some(Code::Timeout), "{o:?}");
    assert!(ws.ids().is_empty() && kv.latest().is_none());
}
