//! Contract §7.4(a) across targets: no revocation touches a credential that the latest version
//! of any configured secret names. An operator may copy a version from one secret to another
//! (a backup restored into a second vault, a sync tool, a migration), so a token of target `ta`
//! may be what the consumers of target `tb` read.
//!
//! - [`shares_issuer`]: which other targets' secrets may name a target's credentials — a `pat`
//!   target on the same workspace, an `sp_oauth_secret` target with the same service principal.
//! - [`PassReads`]: the reads of those secrets, shared by every target of one pass (and by
//!   `tokens --revoke`): each secret is read once, when a target is about to revoke something,
//!   and read again when a revocation comes more than [`PROTECTION_FRESH_FOR`] after that read.
//! - [`Siblings`]: the rotation's [`OtherSecrets`] port for one target, on those reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::time::Instant;

use super::Engine;
use crate::config::{Kind, Target};
use crate::databricks::tags as db_tags;
use crate::error::{Error, Result};
use crate::rotation::model::StoredSecret;
use crate::rotation::ports::{OtherSecrets, PROTECTION_FRESH_FOR, Protection, SecretRead, SecretStore};

/// Whether the credentials of `a`'s issuer may be named by `b`'s secret (contract §7.4(a)): a
/// `pat` target on the same workspace (host and port), an `sp_oauth_secret` target with the same
/// service principal (a principal's OAuth secrets are account-wide, §9). Never `a` itself.
pub fn shares_issuer(a: &Target, b: &Target) -> bool {
    if a.name == b.name {
        return false;
    }
    match (&a.kind, &b.kind) {
        (Kind::Pat { .. }, Kind::Pat { .. }) => workspace(a) == workspace(b),
        (Kind::SpOauthSecret { service_principal: x }, Kind::SpOauthSecret { service_principal: y }) => {
            x.eq_ignore_ascii_case(y)
        }
        _ => false,
    }
}

/// A workspace by its host and port, in lower case.
fn workspace(t: &Target) -> Option<(String, u16)> {
    let u = url::Url::parse(&t.workspace_url).ok()?;
    Some((u.host_str()?.to_ascii_lowercase(), u.port_or_known_default()?))
}

/// Every credential a version names under either kind's tag (contract §7.4(a)).
pub fn named_by(v: &StoredSecret) -> impl Iterator<Item = String> + '_ {
    db_tags::NAMING.iter().filter_map(|t| v.tags.get(*t)).map(|id| id.trim().to_string()).filter(|id| !id.is_empty())
}

/// Every credential a version records: what it names and what it superseded, either kind.
fn recorded_by(v: &StoredSecret) -> impl Iterator<Item = String> + '_ {
    named_by(v).chain(
        [db_tags::PREVIOUS_TOKEN_ID, db_tags::PREVIOUS_SECRET_ID]
            .into_iter()
            .filter_map(|t| v.tags.get(t))
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty()),
    )
}

/// A secret, by vault and name (both case-insensitive in Key Vault).
type SecretKey = (String, String);

fn key(t: &Target) -> SecretKey {
    (t.key_vault_url.trim_end_matches('/').to_ascii_lowercase(), t.secret_name.to_ascii_lowercase())
}

/// A value and when its fetch began; empty until first fetched.
type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// One value per key, fetched by the first caller that needs it while the others wait, and
/// fetched again once it is older than the freshness bound.
struct Slots<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    fresh_for: std::time::Duration,
}

impl<K: Eq + Hash, V: Clone> Slots<K, V> {
    fn new(fresh_for: std::time::Duration) -> Self {
        Slots { slots: Mutex::new(HashMap::new()), fresh_for }
    }

    async fn get<F: std::future::Future<Output = V>>(&self, key: K, fetch: impl FnOnce() -> F) -> V {
        let slot = self.slots.lock().expect("pass reads lock").entry(key).or_default().clone();
        let mut held = slot.lock().await;
        if let Some((at, v)) = held.as_ref()
            && at.elapsed() <= self.fresh_for
        {
            return v.clone();
        }
        // The read's age counts from before it was sent: it says nothing about later.
        let at = Instant::now();
        let v = fetch().await;
        *held = Some((at, v.clone()));
        v
    }
}

/// The reads of configured secrets that one pass shares (contract §7.4(a)).
pub struct PassReads {
    latest: Slots<SecretKey, std::result::Result<SecretRead, Error>>,
    versions: Slots<SecretKey, std::result::Result<Vec<StoredSecret>, Error>>,
}

impl Default for PassReads {
    fn default() -> Self {
        PassReads::with_freshness(PROTECTION_FRESH_FOR)
    }
}

impl PassReads {
    pub fn with_freshness(fresh_for: std::time::Duration) -> PassReads {
        PassReads { latest: Slots::new(fresh_for), versions: Slots::new(fresh_for) }
    }

    /// The latest version of `t`'s secret (with those tied with it), read at most the freshness
    /// bound ago.
    pub async fn latest(&self, t: &Target, store: &dyn SecretStore) -> std::result::Result<SecretRead, Error> {
        self.latest.get(key(t), || store.read_latest(&t.secret_name)).await
    }

    /// Every version of `t`'s secret, read at most the freshness bound ago.
    async fn versions(&self, t: &Target, store: &dyn SecretStore) -> std::result::Result<Vec<StoredSecret>, Error> {
        self.versions.get(key(t), || store.versions(&t.secret_name)).await
    }
}

/// How a secret is named in messages.
pub fn describe(t: &Target) -> String {
    format!("the secret {} of target {} (vault {})", t.secret_name, t.name, t.key_vault_url)
}

/// The [`OtherSecrets`] of one target: the secrets of the targets that share its issuer, read
/// through the pass's shared reads.
pub struct Siblings<'a> {
    engine: &'a Engine,
    others: Vec<&'a Target>,
    reads: &'a PassReads,
}

impl<'a> Siblings<'a> {
    pub fn of(engine: &'a Engine, t: &Target, reads: &'a PassReads) -> Siblings<'a> {
        let others = engine.config.targets.iter().filter(|o| shares_issuer(t, o)).collect();
        Siblings { engine, others, reads }
    }
}

#[async_trait]
impl OtherSecrets for Siblings<'_> {
    async fn latest(&self) -> Protection {
        let reads = futures::future::join_all(self.others.iter().map(|o| async move {
            let read = match self.engine.clients.vault(o) {
                Ok(store) => self.reads.latest(o, store.as_ref()).await,
                Err(e) => Err(e),
            };
            (*o, read)
        }))
        .await;
        let mut p = Protection::default();
        for (o, read) in reads {
            match read {
                Err(e) => p.unread.push(format!("{} ({e})", describe(o))),
                Ok(r) if r.latest.is_none() => p
                    .unread
                    .push(format!("{} (it reads as absent: deleted, soft-deleted or being recovered)", describe(o))),
                Ok(r) => {
                    for v in r.latest_versions() {
                        for id in named_by(v) {
                            p.named.entry(id).or_insert_with(|| describe(o));
                        }
                    }
                }
            }
        }
        p
    }

    async fn recorded(&self) -> Result<BTreeSet<String>> {
        let mut all = BTreeSet::new();
        for o in &self.others {
            let store = self.engine.clients.vault(o)?;
            let latest = self.reads.latest(o, store.as_ref()).await?;
            if latest.latest.is_none() {
                return Err(Error::new(
                    crate::error::Code::KeyvaultError,
                    format!("{} reads as absent: deleted, soft-deleted or being recovered", describe(o)),
                ));
            }
            for v in latest.latest_versions() {
                all.extend(recorded_by(v));
            }
            for v in self.reads.versions(o, store.as_ref()).await? {
                all.extend(recorded_by(&v));
            }
        }
        Ok(all)
    }
}

/// What the latest versions of `targets`' secrets name, each id with the secret that names it;
/// and the secrets whose read failed or said absent, with why.
pub async fn latest_names(
    engine: &Engine,
    targets: &[&Target],
    reads: &PassReads,
) -> (BTreeMap<String, String>, Vec<(String, Unread)>) {
    let results = engine
        .each_target(targets, |t| async move {
            match engine.clients.vault(t) {
                Ok(store) => reads.latest(t, store.as_ref()).await,
                Err(e) => Err(e),
            }
        })
        .await;
    let mut named = BTreeMap::new();
    let mut unread = Vec::new();
    for (t, r) in targets.iter().zip(results) {
        match r {
            Err(e) => unread.push((t.name.clone(), Unread::Failed(e))),
            Ok(r) if r.latest.is_none() => unread.push((t.name.clone(), Unread::Absent)),
            Ok(r) => {
                for v in r.latest_versions() {
                    for id in named_by(v) {
                        named.entry(id).or_insert_with(|| t.name.clone());
                    }
                }
            }
        }
    }
    (named, unread)
}

/// Why a configured secret's latest version is not known.
#[derive(Debug)]
pub enum Unread {
    Failed(Error),
    /// Key Vault answered 404: deleted, soft-deleted or being recovered — no proof of anything.
    Absent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_read_is_shared_until_it_is_ten_minutes_old() {
        let reads: Slots<&str, usize> = Slots::new(PROTECTION_FRESH_FOR);
        let calls = AtomicUsize::new(0);
        let fetch = || async { calls.fetch_add(1, Ordering::SeqCst) + 1 };
        assert_eq!(reads.get("kv/s", fetch).await, 1);
        assert_eq!(reads.get("kv/s", fetch).await, 1, "shared");
        assert_eq!(reads.get("kv/other", fetch).await, 2, "per secret");
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(reads.get("kv/s", fetch).await, 1, "ten minutes is still fresh");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(reads.get("kv/s", fetch).await, 3, "read again after ten minutes");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_wait_for_one_read() {
        let reads: Slots<&str, usize> = Slots::new(PROTECTION_FRESH_FOR);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            calls.fetch_add(1, Ordering::SeqCst) + 1
        };
        let (a, b) = futures::join!(reads.get("kv/s", fetch), reads.get("kv/s", fetch));
        assert_eq!((a, b, calls.load(Ordering::SeqCst)), (1, 1, 1));
    }

    fn target(name: &str, kind: Kind, ws: &str) -> Target {
        Target { name: name.into(), kind, workspace_url: ws.into(), ..Target::default() }
    }

    #[test]
    fn which_targets_share_an_issuer() {
        let pat = || Kind::blank(crate::config::TargetKind::Pat);
        let sp = |p: &str| Kind::SpOauthSecret { service_principal: p.to_string() };
        let a = target("a", pat(), "https://adb-1.azuredatabricks.net");
        let b = target("b", pat(), "https://ADB-1.azuredatabricks.net/");
        let c = target("c", pat(), "https://adb-2.azuredatabricks.net");
        let d = target("d", pat(), "https://127.0.0.1:8001");
        let e = target("e", pat(), "https://127.0.0.1:8002");
        let s1 = target("s1", sp("0c0c0c0c-2222-4222-8222-cccccccccccc"), "https://adb-1.azuredatabricks.net");
        let s2 = target("s2", sp("0c0c0c0c-2222-4222-8222-cccccccccccc"), "https://adb-2.azuredatabricks.net");
        let s3 = target("s3", sp("0d0d0d0d-2222-4222-8222-cccccccccccc"), "https://adb-1.azuredatabricks.net");
        assert!(shares_issuer(&a, &b) && shares_issuer(&b, &a), "same workspace host");
        assert!(!shares_issuer(&a, &a), "never itself");
        assert!(!shares_issuer(&a, &c), "another workspace");
        assert!(!shares_issuer(&d, &e), "another port is another workspace");
        assert!(shares_issuer(&s1, &s2), "one principal, account-wide");
        assert!(!shares_issuer(&s1, &s3), "another principal");
        assert!(!shares_issuer(&a, &s1) && !shares_issuer(&s1, &a), "another kind of credential");
    }

    #[test]
    fn a_version_names_and_records_under_either_tag() {
        let mut v = StoredSecret {
            id: "https://v/secrets/s/1".into(),
            tags: Default::default(),
            content_type: None,
            created: None,
            enabled: true,
            expires: None,
        };
        v.tags.insert(db_tags::TOKEN_ID.into(), " tok ".into());
        v.tags.insert(db_tags::SECRET_ID.into(), "sec".into());
        v.tags.insert(db_tags::PREVIOUS_TOKEN_ID.into(), "old".into());
        v.tags.insert(db_tags::PREVIOUS_SECRET_ID.into(), "".into());
        assert_eq!(named_by(&v).collect::<Vec<_>>(), vec!["tok", "sec"]);
        assert_eq!(recorded_by(&v).collect::<Vec<_>>(), vec!["tok", "sec", "old"]);
    }
}
