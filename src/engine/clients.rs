//! The engine's long-lived clients, built on first use and shared by every target and
//! invocation of the process: the identity's token sources, one Databricks client per workspace
//! and owner, one Key Vault client per vault (each with its pacers), one OAuth-secret issuer per
//! workspace and principal. Nothing here does I/O when built; a client's first request does.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::azure::credential::{self, TokenSource};
use crate::azure::federation;
use crate::azure::keyvault::KeyVaultStore;
use crate::config::{Kind, Settings, Target};
use crate::databricks::DatabricksWorkspace;
use crate::databricks::oauth_secret::OAuthSecretIssuer;
use crate::databricks::pat::{self, PatIssuer};
use crate::error::{Error, Result};
use crate::rotation::ports::Issuer;
use crate::transport::client::Http;
use crate::transport::pacing::{Pace, RateLimiter};
use crate::transport::retry::RetryPolicy;

/// Long-lived values by key: each built once (outside the lock, since building one may need
/// another cache), then shared. When two callers build the same key at once, the first stored
/// wins and the other's copy is dropped unused (building does no I/O).
struct Cache<K, V>(Mutex<HashMap<K, V>>);

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }

    fn get_or_build(&self, key: K, build: impl FnOnce() -> Result<V>) -> Result<V> {
        if let Some(v) = self.0.lock().expect("client cache lock").get(&key) {
            return Ok(v.clone());
        }
        let v = build()?;
        Ok(self.0.lock().expect("client cache lock").entry(key).or_insert(v).clone())
    }
}

/// A workspace client per URL, resource id (the id changes the headers it sends) and owner
/// (the target's `client_id`, or `None` for the service's own identity).
type WorkspaceKey = (String, Option<String>, Option<String>);
/// An app registration's token source per client id and exchange audience (contract §8).
type AppKey = (String, &'static str);
/// An OAuth-secret issuer per workspace client and application id (it remembers the
/// principal's SCIM id).
type SpKey = (WorkspaceKey, String);
/// Per vault, and once for all vaults together: the write budget and the budget of everything
/// else.
type VaultPacers = (Arc<RateLimiter>, Arc<RateLimiter>);

/// The clients of one engine.
pub struct Clients {
    settings: Settings,
    http: Http,
    retry: RetryPolicy,
    tokens: OnceLock<std::result::Result<Arc<TokenSource>, Error>>,
    apps: Cache<AppKey, Arc<TokenSource>>,
    workspaces: Cache<WorkspaceKey, Arc<DatabricksWorkspace>>,
    workspace_pacers: Cache<String, Arc<RateLimiter>>,
    vaults: Cache<String, Arc<KeyVaultStore>>,
    vault_pacers: Cache<String, VaultPacers>,
    /// All vaults together (contract §11): `PAT_KEYVAULT_FLEET_FACTOR` × the per-vault budgets.
    fleet_pacers: VaultPacers,
    sp_issuers: Cache<SpKey, Arc<OAuthSecretIssuer>>,
}

impl Clients {
    pub fn new(settings: Settings, http: Http, retry: RetryPolicy) -> Clients {
        let p = &settings.pacing;
        let fleet =
            |per_vault: u32| Arc::new(RateLimiter::new(per_vault.saturating_mul(p.kv_fleet_factor), p.kv_window));
        let fleet_pacers = (fleet(p.kv_writes_per_10s), fleet(p.kv_reads_per_10s));
        Clients {
            fleet_pacers,
            settings,
            http,
            retry,
            tokens: OnceLock::new(),
            apps: Cache::new(),
            workspaces: Cache::new(),
            workspace_pacers: Cache::new(),
            vaults: Cache::new(),
            vault_pacers: Cache::new(),
            sp_issuers: Cache::new(),
        }
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The service's own identity.
    pub fn tokens(&self) -> Result<Arc<TokenSource>> {
        self.tokens
            .get_or_init(|| {
                let factory = credential::credential_factory(&self.settings, &self.http)?;
                Ok(TokenSource::new(factory, self.settings.credential, self.retry.clone()))
            })
            .clone()
    }

    /// The token source of whoever owns the target's PATs: the service's own identity, or the
    /// app registration of its `client_id`, reached by federation from the service's identity.
    pub fn owner_tokens(&self, t: &Target) -> Result<Arc<TokenSource>> {
        let service = self.tokens()?;
        let Some(client_id) = t.client_id() else { return Ok(service) };
        let key = (client_id.to_string(), federation::exchange_scope(&t.workspace_url));
        self.apps.get_or_build(key.clone(), || {
            federation::app_token_source(&self.settings, &self.http, client_id, key.1, service, self.retry.clone())
        })
    }

    pub fn workspace(&self, t: &Target) -> Result<Arc<DatabricksWorkspace>> {
        let key = workspace_key(t);
        self.workspaces.get_or_build(key, || {
            let tokens = self.owner_tokens(t)?;
            let rps = self.settings.pacing.workspace_rps;
            // One pacer per workspace URL, shared by clients with and without a resource id.
            let pacer = match rps {
                0 => None,
                _ => Some(self.workspace_pacers.get_or_build(t.workspace_url.clone(), || {
                    Ok(Arc::new(RateLimiter::new(rps, Duration::from_secs(1))))
                })?),
            };
            Ok(Arc::new(DatabricksWorkspace::new(
                self.http.clone(),
                &t.workspace_url,
                t.workspace_resource_id.clone(),
                tokens,
                self.retry.clone(),
                pacer,
            )))
        })
    }

    /// The target's vault, always read and written with the service's own identity.
    pub fn vault(&self, t: &Target) -> Result<Arc<KeyVaultStore>> {
        let key = t.key_vault_url.to_ascii_lowercase();
        self.vaults.get_or_build(key.clone(), || {
            let tokens = self.tokens()?;
            let p = &self.settings.pacing;
            let (writes, reads) = self.vault_pacers.get_or_build(key, || {
                Ok((
                    Arc::new(RateLimiter::new(p.kv_writes_per_10s, p.kv_window)),
                    Arc::new(RateLimiter::new(p.kv_reads_per_10s, p.kv_window)),
                ))
            })?;
            let (fleet_writes, fleet_reads) = self.fleet_pacers.clone();
            Ok(Arc::new(KeyVaultStore::new(
                &t.key_vault_url,
                tokens,
                &self.http,
                self.retry.clone(),
                Pace::new(vec![writes, fleet_writes]),
                Pace::new(vec![reads, fleet_reads]),
            )?))
        })
    }

    /// The issuer of the target's credentials, on the workspace client of their owner. Each
    /// kind builds its own: there is no fallback from one kind to another.
    pub fn issuer(&self, t: &Target) -> Result<Arc<dyn Issuer>> {
        let ws = self.workspace(t)?;
        Ok(match &t.kind {
            Kind::Pat { scopes, autoscope, .. } => Arc::new(PatIssuer::new(
                ws,
                &t.name,
                pat::secret_key(&t.key_vault_url, &t.secret_name),
                scopes.clone(),
                *autoscope,
            )),
            Kind::SpOauthSecret { service_principal } => {
                self.sp_issuers.get_or_build((workspace_key(t), service_principal.clone()), || {
                    Ok(Arc::new(OAuthSecretIssuer::new(ws, service_principal)))
                })?
            }
        })
    }

    /// Starts every identity token this target will need at once, instead of one after the
    /// other as each client discovers it (Key Vault's challenge, the management header).
    ///
    /// For a target with `client_id` the workspace's scopes are the app's: each waits for the
    /// service's exchange-audience token (fetched alongside the vault token) and then for the
    /// exchange, so a cold start costs exactly one more sequential round trip.
    pub async fn prefetch(&self, t: &Target) {
        let (Ok(service), Ok(owner), Ok(ws)) = (self.tokens(), self.owner_tokens(t), self.workspace(t)) else {
            return;
        };
        let mut wanted: Vec<(Arc<TokenSource>, &'static str)> =
            ws.scopes().into_iter().map(|s| (owner.clone(), s)).collect();
        wanted.extend(credential::vault_scope(&t.key_vault_url).map(|s| (service.clone(), s)));
        futures::future::join_all(wanted.into_iter().map(|(tokens, s)| async move { tokens.prefetch(s).await })).await;
    }
}

fn workspace_key(t: &Target) -> WorkspaceKey {
    (t.workspace_url.clone(), t.workspace_resource_id.clone(), t.client_id().map(str::to_string))
}
