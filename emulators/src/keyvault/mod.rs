//! `FakeKeyVault`: the Azure Key Vault secrets data plane over HTTPS.
//!
//! One fake = one vault, served at `https://127.0.0.1:PORT` whatever vault name a client has
//! in mind. The wire behaviour (routes, challenge, RBAC, limits, soft delete, throttling,
//! error bodies) lives in `http.rs`; the stored data and its rules in `store.rs`; this file holds
//! the handle tests use, including helpers that bypass HTTP.
//!
//! Op names for faults and the call log: `get`, `set`, `list` (secrets and versions),
//! `update`, `delete`, `recover`, `purge`, `deleted_get`, `deleted_list`, `other`.

mod http;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

pub use store::StoredVersion;

pub(crate) use http::handle;

use crate::directory::{Directory, unix_secs};
use crate::faults::Faults;
use crate::ratelimit::SlidingWindow;
use store::{NewVersion, Store};

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

/// Key Vault's per-vault throttling (service limits page: 300 secret writes and 4,000 other
/// transactions per 10 seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvThrottle {
    /// Sliding window length.
    pub window: Duration,
    /// Admitted `PUT /secrets/{name}` per window.
    pub write_limit: usize,
    /// Admitted other requests per window.
    pub other_limit: usize,
    /// Whether 429 answers carry `Retry-After` (its presence on real Key Vault is unconfirmed).
    pub retry_after: bool,
}

impl Default for KvThrottle {
    fn default() -> Self {
        KvThrottle { window: Duration::from_secs(10), write_limit: 300, other_limit: 4000, retry_after: true }
    }
}

/// Options of every Key Vault fake.
#[derive(Clone, Debug)]
pub struct KeyVaultOptions {
    /// Throttling; `None` disables it. Default: the documented limits.
    pub throttle: Option<KvThrottle>,
    /// Purge protection: purging is refused with 403 and `recoveryLevel` is `Recoverable`.
    pub purge_protection: bool,
    /// Role of every known principal without an explicit [`FakeKeyVault::set_role`].
    pub default_role: Role,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        KeyVaultOptions { throttle: Some(KvThrottle::default()), purge_protection: false, default_role: Role::Officer }
    }
}

/// Handle to one fake vault. Cheap to clone; all clones share the vault.
#[derive(Clone)]
pub struct FakeKeyVault {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    name: String,
    directory: Arc<Directory>,
    faults: Faults,
    state: Mutex<State>,
}

struct State {
    store: Store,
    roles: HashMap<String, Role>,
    default_role: Role,
    purge_protection: bool,
    throttle: Option<KvThrottle>,
    writes: SlidingWindow,
    others: SlidingWindow,
    throttled: u64,
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

impl State {
    fn reset_windows(&mut self) {
        let t = self.throttle.unwrap_or_default();
        self.writes = SlidingWindow::new(t.window, t.write_limit);
        self.others = SlidingWindow::new(t.window, t.other_limit);
    }
}

impl FakeKeyVault {
    pub(crate) fn new(
        url: String,
        name: String,
        directory: Arc<Directory>,
        opts: &KeyVaultOptions,
        latency: Duration,
    ) -> Self {
        let mut state = State {
            store: Store::default(),
            roles: HashMap::new(),
            default_role: opts.default_role,
            purge_protection: opts.purge_protection,
            throttle: opts.throttle,
            writes: SlidingWindow::new(Duration::ZERO, 0),
            others: SlidingWindow::new(Duration::ZERO, 0),
            throttled: 0,
            recovery_delay: Duration::ZERO,
            recovering: HashMap::new(),
        };
        state.reset_windows();
        FakeKeyVault {
            inner: Arc::new(Inner {
                url,
                name,
                directory,
                faults: Faults::with_latency(latency),
                state: Mutex::new(state),
            }),
        }
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

    /// Replaces the throttling settings (`None` = off) and empties the windows.
    pub fn set_throttle(&self, throttle: Option<KvThrottle>) {
        let mut st = self.state();
        st.throttle = throttle;
        st.reset_windows();
    }

    /// Number of requests answered 429 by the throttle so far.
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
        let now = unix_secs(SystemTime::now());
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
        let now = unix_secs(SystemTime::now());
        self.state().store.delete(name, now).is_ok()
    }

    /// True when the name is currently soft-deleted.
    pub fn is_deleted(&self, name: &str) -> bool {
        self.state().store.deleted(name).is_some()
    }

    /// Sets `enabled` on one version directly. Returns false when there is no such version.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) -> bool {
        let now = unix_secs(SystemTime::now());
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
