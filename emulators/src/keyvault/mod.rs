//! `FakeKeyVault`: the Azure Key Vault secrets data plane over HTTPS.
//!
//! One fake = one vault, served at `https://127.0.0.1:PORT` whatever vault name a client has
//! in mind. The wire behaviour (routes, challenge, RBAC, limits, soft delete, error bodies)
//! lives in `http.rs`; throttling (per vault and per subscription) in `throttle.rs`; the stored
//! data and its rules in `store.rs`; this file holds the handle tests use, including helpers
//! that bypass HTTP.
//!
//! Op names for faults and the call log: `get`, `set`, `list` (secrets and versions),
//! `update`, `delete`, `recover`, `purge`, `deleted_get`, `deleted_list`, `other`.

mod http;
mod store;
mod throttle;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use store::StoredVersion;
pub use throttle::{KvSubscription, KvThrottle};

pub(crate) use http::handle;

use crate::directory::{Directory, unix_secs};
use crate::encoding::{mix64, random_u64};
use crate::faults::Faults;
use crate::ratelimit::WindowMode;
use store::{NewVersion, Store};
use throttle::Budget;

/// Data-plane role of a principal on the vault (Azure RBAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Key Vault Secrets Officer: get, list, set, update, delete, recover, purge.
    Officer,
    /// Key Vault Secrets User: get and list (read secret values and metadata).
    User,
    /// No role assignment: every data-plane call is refused with 403 `ForbiddenByRbac`.
    None,
}

/// In which order `GET /secrets/{name}/versions` lists versions. Key Vault documents none
/// ("sort by `attributes.created`"), so by default every listing comes in a fresh random order
/// (stable across the pages of one listing: the order travels in its `$skiptoken`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionsOrder {
    /// Shuffled per listing. With a seed, the orders a vault produces are the same from run to
    /// run (for the same sequence of listings); without, they differ every time.
    Shuffled { seed: Option<u64> },
    /// Oldest first (the order they were written in).
    OldestFirst,
}

impl Default for VersionsOrder {
    fn default() -> Self {
        VersionsOrder::Shuffled { seed: None }
    }
}

/// Options of every Key Vault fake.
#[derive(Clone, Debug)]
pub struct KeyVaultOptions {
    /// Each vault's throttling; `None` disables it (and the subscription's). Default: the
    /// documented limits.
    pub throttle: Option<KvThrottle>,
    /// The subscription-wide limits are `throttle` times this (Key Vault: 5); `None`: no
    /// subscription limit. Change at run time with [`crate::Emulators::kv_subscription`].
    pub subscription_factor: Option<usize>,
    /// How every throttling window counts (default: fixed 10 s windows on the emulators'
    /// clock, aligned for all vaults and the subscription).
    pub window_mode: WindowMode,
    /// Purge protection: purging is refused with 403 and `recoveryLevel` is `Recoverable`.
    pub purge_protection: bool,
    /// Role of every known principal without an explicit [`FakeKeyVault::set_role`].
    pub default_role: Role,
    /// Order of version listings.
    pub versions_order: VersionsOrder,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        KeyVaultOptions {
            throttle: Some(KvThrottle::default()),
            subscription_factor: Some(5),
            window_mode: WindowMode::Fixed,
            purge_protection: false,
            default_role: Role::Officer,
            versions_order: VersionsOrder::default(),
        }
    }
}

impl KeyVaultOptions {
    /// The subscription-wide limits these options describe.
    pub(crate) fn subscription_throttle(&self) -> Option<KvThrottle> {
        Some(self.throttle?.times(self.subscription_factor?))
    }
}

/// Handle to one fake vault. Cheap to clone; all clones share the vault.
#[derive(Clone)]
pub struct FakeKeyVault {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    index: usize,
    name: String,
    directory: Arc<Directory>,
    subscription: KvSubscription,
    faults: Faults,
    state: Mutex<State>,
}

struct State {
    store: Store,
    roles: HashMap<String, Role>,
    default_role: Role,
    purge_protection: bool,
    budget: Budget,
    throttled: u64,
    /// The vault's clock when frozen (`created`, `updated`, deletion dates); else this machine's.
    frozen_at: Option<SystemTime>,
    versions_order: VersionsOrder,
    /// Draws the order of each version listing.
    order_rng: u64,
    /// Remaining `PUT`s to refuse with a 400 quoting the submitted value (`usize::MAX`: all).
    refuse_quoting_value: usize,
    /// How long a recovered secret stays invisible (real recovery is asynchronous).
    recovery_delay: Duration,
    /// Lowercase names being recovered, until when.
    recovering: HashMap<String, Instant>,
}

impl State {
    /// Whether `name` is still being recovered (forgets finished recoveries).
    fn recovering(&mut self, name: &str) -> bool {
        let key = name.to_ascii_lowercase();
        match self.recovering.get(&key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.recovering.remove(&key);
                false
            }
            None => false,
        }
    }
}

/// The first state of a listing-order generator: from the seed and the vault's index (so
/// that vaults differ), or random.
fn order_rng(order: VersionsOrder, index: usize) -> u64 {
    match order {
        VersionsOrder::Shuffled { seed: Some(seed) } => mix64(seed ^ mix64(index as u64 + 1)),
        _ => random_u64(),
    }
}

/// Where a vault fake sits: its address and name, and what it shares with the others.
pub(crate) struct Placement {
    pub url: String,
    pub index: usize,
    pub directory: Arc<Directory>,
    pub subscription: KvSubscription,
    /// Where fixed throttling windows start (the same for every vault and the subscription).
    pub origin: Instant,
}

impl FakeKeyVault {
    pub(crate) fn new(at: Placement, opts: &KeyVaultOptions, latency: Duration) -> Self {
        let state = State {
            store: Store::default(),
            roles: HashMap::new(),
            default_role: opts.default_role,
            purge_protection: opts.purge_protection,
            budget: Budget::new(opts.throttle, opts.window_mode, at.origin),
            throttled: 0,
            frozen_at: None,
            versions_order: opts.versions_order,
            order_rng: order_rng(opts.versions_order, at.index),
            refuse_quoting_value: 0,
            recovery_delay: Duration::ZERO,
            recovering: HashMap::new(),
        };
        FakeKeyVault {
            inner: Arc::new(Inner {
                url: at.url,
                index: at.index,
                name: format!("kv{}", at.index),
                directory: at.directory,
                subscription: at.subscription,
                faults: Faults::with_latency(latency),
                state: Mutex::new(state),
            }),
        }
    }

    /// The vault's clock: frozen ([`Self::freeze_clock`]) or this machine's. `created`,
    /// `updated` and deletion dates are its whole seconds.
    pub fn now(&self) -> SystemTime {
        self.state().frozen_at.unwrap_or_else(SystemTime::now)
    }

    /// Stops the vault's clock at `at` (`Some`), so that every write lands in the same
    /// `created` second until it moves again, or lets it follow this machine's clock (`None`).
    /// Throttling windows are not affected (they run on the emulators' monotonic clock).
    pub fn freeze_clock(&self, at: Option<SystemTime>) {
        self.state().frozen_at = at;
    }

    /// Sets the order of version listings from now on (a seed restarts the sequence).
    pub fn set_versions_order(&self, order: VersionsOrder) {
        let mut st = self.state();
        st.versions_order = order;
        st.order_rng = order_rng(order, self.inner.index);
    }

    /// Refuses the next `times` secret writes (`usize::MAX`: all) that pass authentication,
    /// RBAC and validation with 400 `BadParameter` and a message that quotes the submitted
    /// `value` — the way Key Vault's validation messages quote a property's value. Nothing is
    /// stored. `0` switches it off.
    pub fn refuse_writes_quoting_value(&self, times: usize) {
        self.state().refuse_quoting_value = times;
    }

    /// The subscription-wide budget this vault counts against (shared by every vault).
    pub fn subscription(&self) -> &KvSubscription {
        &self.inner.subscription
    }

    /// Vault URL, `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The vault's name as it appears in 403 messages (`kv0`, `kv1`, ...).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Fault injection and call log of this vault.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Assigns a data-plane role to a principal (object id).
    pub fn set_role(&self, principal: &str, role: Role) {
        self.state().roles.insert(principal.to_string(), role);
    }

    /// Effective role of a principal: explicit assignment, else the default role for
    /// principals known to the directory, else none.
    pub fn role(&self, principal: &str) -> Role {
        let st = self.state();
        match st.roles.get(principal) {
            Some(r) => *r,
            None if self.inner.directory.knows(principal) => st.default_role,
            None => Role::None,
        }
    }

    /// Replaces this vault's own limits (`None` = none; the subscription's still apply) and
    /// empties its windows.
    pub fn set_throttle(&self, throttle: Option<KvThrottle>) {
        self.state().budget.set(throttle);
    }

    /// This vault's own limits.
    pub fn throttle(&self) -> Option<KvThrottle> {
        self.state().budget.throttle()
    }

    /// Requests this vault answered 429 because of throttling so far (its own budget or the
    /// subscription's; injected faults are not counted).
    pub fn throttled_count(&self) -> u64 {
        self.state().throttled
    }

    /// Turns purge protection on or off.
    pub fn set_purge_protection(&self, on: bool) {
        self.state().purge_protection = on;
    }

    /// Makes recovery asynchronous, as in real Key Vault: after a successful
    /// `POST /deletedsecrets/{name}/recover` the secret stays invisible for `delay` — `GET`
    /// answers 404 `SecretNotFound`, the versions list is empty, the secret list omits it, and
    /// `PUT` answers 409 `Conflict` / `ObjectIsBeingRecovered`. `Duration::ZERO` (the default)
    /// recovers at once.
    pub fn set_recovery_delay(&self, delay: Duration) {
        self.state().recovery_delay = delay;
    }

    /// True while a recovery of `name` is still in progress (see [`Self::set_recovery_delay`]).
    pub fn is_recovering(&self, name: &str) -> bool {
        self.state().recovering(name)
    }

    /// Writes a version directly (no HTTP, no auth, no limits). Returns the version id.
    ///
    /// # Panics
    /// When the name is soft-deleted (Key Vault itself would answer 409).
    pub fn seed_secret(
        &self,
        name: &str,
        value: &str,
        content_type: Option<&str>,
        tags: &[(&str, &str)],
        exp: Option<i64>,
    ) -> String {
        let new = NewVersion {
            value: value.to_string(),
            content_type: content_type.map(str::to_string),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            enabled: true,
            nbf: None,
            exp,
        };
        let now = unix_secs(self.now());
        match self.state().store.set(name, new, now) {
            Ok((_, v)) => v.version,
            Err(e) => panic!("seed_secret({name}): {e:?}"),
        }
    }

    /// Moves the creation of every version of `name` `by` into the past (Key Vault's clock, as
    /// grace periods are judged). False when there is no such secret.
    pub fn age_secret(&self, name: &str, by: Duration) -> bool {
        self.state().store.age(name, by.as_secs() as i64, false)
    }

    /// Like [`Self::age_secret`] for the latest version only.
    pub fn age_latest_version(&self, name: &str, by: Duration) -> bool {
        self.state().store.age(name, by.as_secs() as i64, true)
    }

    /// All versions of a live secret, oldest first (empty if none or soft-deleted).
    pub fn versions(&self, name: &str) -> Vec<StoredVersion> {
        self.state().store.versions(name)
    }

    /// Latest version of a live secret.
    pub fn latest(&self, name: &str) -> Option<StoredVersion> {
        self.state().store.get(name, None).ok().map(|(_, v)| v)
    }

    /// Names of the live secrets, sorted.
    pub fn secret_names(&self) -> Vec<String> {
        self.state().store.list().into_iter().map(|(n, _)| n).collect()
    }

    /// Soft-deletes a secret directly. Returns false when it did not exist.
    pub fn soft_delete(&self, name: &str) -> bool {
        let now = unix_secs(self.now());
        self.state().store.delete(name, now).is_ok()
    }

    /// True when the name is currently soft-deleted.
    pub fn is_deleted(&self, name: &str) -> bool {
        self.state().store.deleted(name).is_some()
    }

    /// Sets `enabled` on one version directly. Returns false when there is no such version.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> bool {
        let now = unix_secs(self.now());
        let patch = store::Patch { enabled: Some(enabled), ..Default::default() };
        self.state().store.update(name, Some(version), patch, now).is_ok()
    }

    /// Summary for the `/_emulator/state` endpoint: versions without values.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let st = self.state();
        let secrets: Vec<_> = st
            .store
            .list()
            .into_iter()
            .map(|(name, _)| {
                let versions: Vec<_> = st
                    .store
                    .versions(&name)
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "version": v.version, "enabled": v.enabled, "contentType": v.content_type,
                            "tags": v.tags, "exp": v.exp, "created": v.created,
                        })
                    })
                    .collect();
                serde_json::json!({"name": name, "versions": versions})
            })
            .collect();
        let deleted: Vec<_> = st.store.deleted_list().into_iter().map(|d| d.secret.name).collect();
        serde_json::json!({"url": self.inner.url, "secrets": secrets, "deleted": deleted, "throttled": st.throttled})
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
