//! What a pass over a fleet of targets needs beyond one rotation (contract §11):
//!
//! - [`Paced`]: one target's ports as the pass hands them to the rotation. The secret write's
//!   pacing is reserved *before* the credential is created, so a credential never waits for
//!   pacing between its creation and its write; and once the process is shutting down, no
//!   credential is created at all.
//! - [`urgency_order`]: the order a pass takes its targets in — no secret, disabled, foreign,
//!   then the earliest `next_rotation_at` — from one listing of each vault's secrets before the
//!   pass (a pass of one target, ProvisionPat included, reads nothing extra).
//! - [`Progress`]: `info` lines while a pass runs (targets done of total, every 10 % or 30 s).
//! - [`Drain`]: SIGTERM in `serve`: no new target, no new create; what is in flight finishes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::time::Instant;

use super::clients::Clients;
use crate::azure::keyvault::{KeyVaultStore, WriteSlot};
use crate::config::Target;
use crate::error::{Code, Error, Result};
use crate::rotation::model::{CreateRequest, NewCredential, Profile, SecretView, SecretWrite, StoredSecret};
use crate::rotation::ports::{CreateError, Issuer, Listing, Refusal, SecretRead, SecretStore, Usage, WriteError};
use crate::secret::Redacted;

/// The process is shutting down (SIGTERM): passes start no new target and runs create no new
/// credential. Shared by every engine of the process.
#[derive(Debug)]
pub struct Drain(tokio::sync::watch::Sender<bool>);

impl Default for Drain {
    fn default() -> Self {
        Drain(tokio::sync::watch::Sender::new(false))
    }
}

impl Drain {
    /// From now on, nothing new starts.
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    pub fn draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has started.
    pub async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

/// The error of a target a draining pass did not start.
pub fn not_started() -> Error {
    Error::new(
        Code::Timeout,
        "not started: the process is shutting down (SIGTERM); nothing was changed, the next pass rotates it",
    )
}

/// The error of a run stopped before its create by a shutdown.
fn not_created() -> Error {
    Error::new(
        Code::Timeout,
        "the process is shutting down (SIGTERM): no new credential was created; the secret and its credential are unchanged, the next pass rotates it",
    )
}

/// One target's ports during a pass: the vault and the issuer, with the write's pacing
/// reserved before the create (see the module docs).
pub struct Paced<'a> {
    pub store: &'a KeyVaultStore,
    pub issuer: &'a dyn Issuer,
    pub drain: &'a Drain,
    slot: Mutex<Option<WriteSlot>>,
}

impl<'a> Paced<'a> {
    pub fn new(store: &'a KeyVaultStore, issuer: &'a dyn Issuer, drain: &'a Drain) -> Paced<'a> {
        Paced { store, issuer, drain, slot: Mutex::new(None) }
    }

    fn take_slot(&self) -> Option<WriteSlot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn has_slot(&self) -> bool {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

#[async_trait]
impl SecretStore for Paced<'_> {
    async fn read_latest(&self, name: &str) -> Result<SecretRead> {
        self.store.read_latest(name).await
    }

    async fn versions(&self, name: &str) -> Result<Vec<StoredSecret>> {
        self.store.versions(name).await
    }

    /// The first write goes out in the slot reserved before the create; a second attempt (after
    /// a read-back) waits for room like any write.
    async fn write(&self, secret: &SecretWrite) -> std::result::Result<StoredSecret, WriteError> {
        let slot = self.take_slot();
        self.store.write_in(secret, slot).await
    }

    fn error(&self, message: String) -> Error {
        SecretStore::error(self.store, message)
    }

    async fn writer(&self) -> Option<String> {
        self.store.writer().await
    }
}

#[async_trait]
impl Issuer for Paced<'_> {
    fn profile(&self) -> &'static Profile {
        self.issuer.profile()
    }

    async fn list(&self) -> Result<Listing> {
        self.issuer.list().await
    }

    /// Waits for room for the secret write first (unless a slot is still held from an earlier
    /// create of this run), then creates. A shutdown before the create stops the run here.
    async fn create(&self, req: &CreateRequest) -> std::result::Result<NewCredential, CreateError> {
        let reserve = async {
            if !self.has_slot() {
                let slot = self.store.reserve_write().await;
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot);
            }
        };
        // A shutdown that has begun wins over a slot that is ready.
        tokio::select! {
            biased;
            _ = self.drain.started() => return Err(CreateError::Refused(Refusal::Other, not_created())),
            _ = reserve => {}
        }
        self.issuer.create(req).await
    }

    async fn verify(&self, value: &Redacted) -> Result<Option<OffsetDateTime>> {
        self.issuer.verify(value).await
    }

    async fn revoke(&self, id: &str) -> Result<()> {
        self.issuer.revoke(id).await
    }

    async fn usage(&self, id: &str) -> Usage {
        self.issuer.usage(id).await
    }
}

/// How urgent a target is, as its vault's list of secrets tells: lower goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// No secret (or the listing could not say): `no_secret` is the most urgent reason.
    NoSecret,
    Disabled,
    Foreign,
    /// Managed: by when it is due (`next_rotation_at` = expiry − `renew_before_days`); an
    /// unknown expiry first.
    Due(Option<OffsetDateTime>),
}

impl Urgency {
    pub fn of(latest: Option<&StoredSecret>, profile: &Profile, renew_before_days: u32) -> Urgency {
        let Some(s) = latest else { return Urgency::NoSecret };
        let v = SecretView::of(s, profile);
        if !v.enabled {
            Urgency::Disabled
        } else if !v.managed {
            Urgency::Foreign
        } else {
            Urgency::Due(v.expires_at.map(|e| e - time::Duration::days(renew_before_days as i64)))
        }
    }
}

/// At most this many secrets are listed per vault before the pass, or four per target of the
/// pass in that vault if that is more; targets not seen in a list cut short count as most urgent.
const LIST_AT_LEAST: usize = 1_000;
/// How long a vault's listing may take before the pass goes on without it (its targets then
/// count as most urgent): the order must not hold the pass back.
const LIST_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The order a pass of `targets` takes them in: the indices of `targets`, most urgent first,
/// ties in configuration order (contract §11). Each vault of the pass is listed once (one
/// request per 25 secrets, paced like every other read); a vault whose list cannot be read puts
/// its targets first.
pub async fn urgency_order(clients: &Clients, targets: &[&Target], concurrency: usize) -> Vec<usize> {
    let mut by_vault: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        by_vault.entry(t.key_vault_url.to_ascii_lowercase()).or_default().push(i);
    }
    let urgency: Vec<(usize, Urgency)> = futures::stream::iter(by_vault.into_values())
        .map(|idx| async move {
            let first = targets[idx[0]];
            let profiles: Vec<Option<&'static Profile>> =
                idx.iter().map(|i| clients.issuer(targets[*i]).ok().map(|x| x.profile())).collect();
            let wanted: HashSet<String> = idx.iter().map(|i| targets[*i].secret_name.to_ascii_lowercase()).collect();
            let listed = match clients.vault(first) {
                Ok(store) => {
                    let list = store.latest_of(&wanted, LIST_AT_LEAST.max(4 * idx.len()));
                    tokio::time::timeout(LIST_TIME_LIMIT, list).await.unwrap_or_else(|_| {
                        Err(Error::new(Code::Timeout, "listing the vault's secrets took longer than 30 s"))
                    })
                }
                Err(e) => Err(e),
            };
            // A name missing from a list cut short may still exist; it counts as absent too.
            let found = match listed {
                Ok((found, _complete)) => found,
                Err(e) => {
                    tracing::debug!(vault = %first.key_vault_url, error = %e, "the vault's secrets could not be listed; its targets go first");
                    HashMap::new()
                }
            };
            idx.iter()
                .zip(profiles)
                .map(|(i, profile)| {
                    let t = targets[*i];
                    let latest = found.get(&t.secret_name.to_ascii_lowercase());
                    let u = match profile {
                        Some(p) => Urgency::of(latest, p, t.renew_before_days),
                        None => Urgency::NoSecret,
                    };
                    (*i, u)
                })
                .collect::<Vec<_>>()
        })
        .buffer_unordered(concurrency.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let mut order = urgency;
    order.sort_by_key(|(i, u)| (*u, *i));
    order.into_iter().map(|(i, _)| i).collect()
}

/// Progress lines at `info` during a pass: targets done of total, whenever another tenth is
/// done and every [`Progress::EVERY`] meanwhile.
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    started: Instant,
}

impl Progress {
    /// The longest time between two progress lines.
    pub const EVERY: Duration = Duration::from_secs(30);

    pub fn new(total: usize) -> Progress {
        Progress { total, done: AtomicUsize::new(0), started: Instant::now() }
    }

    /// One more target done; a line when it completes another tenth of the pass.
    pub fn one_done(&self) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n * 10 / self.total > (n - 1) * 10 / self.total {
            self.line(n);
        }
    }

    fn line(&self, n: usize) {
        let pct = n * 100 / self.total.max(1);
        tracing::info!(
            done = n,
            total = self.total,
            elapsed_s = self.started.elapsed().as_secs(),
            "progress: {n} of {} targets done ({pct} %)",
            self.total
        );
    }

    /// Runs forever: a line every [`Progress::EVERY`] (for the pass to race against).
    pub async fn ticker(&self) {
        loop {
            tokio::time::sleep(Self::EVERY).await;
            self.line(self.done.load(Ordering::SeqCst));
        }
    }
}
