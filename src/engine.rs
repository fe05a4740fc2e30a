//! The engine: one pass of the rotation over the configured targets.
//!
//! It owns the long-lived pieces (the HTTP client, the token source, one client per workspace
//! and per vault with their pacers), runs targets with bounded concurrency, serialises work on
//! the same target inside the process, and bounds every target by the invocation's deadline.
//! Both the custom handler and the CLI drive the rotation only through [`Engine`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::azure::credential::{self, TokenSource};
use crate::azure::federation;
use crate::azure::keyvault::KeyVaultStore;
use crate::config::{Config, Target};
use crate::databricks::DatabricksWorkspace;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::rotation::model::{Outcome, SecretView, rfc3339};
use crate::rotation::ports::{SecretStore, SystemClock, Workspace};
use crate::rotation::rotate::{self, Ports, Request};
use crate::transport::pacing::RateLimiter;
use crate::transport::retry::{self, RetryPolicy};

/// What a pass was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub force: bool,
    pub dry_run: bool,
    /// The pass's time budget; every target's work ends by then (see [`crate::transport::retry`]).
    pub budget: Duration,
}

/// Extra time after the deadline before a target's work is abandoned outright (a backstop: the
/// retry layer already stops retrying at the deadline).
const BACKSTOP: Duration = Duration::from_secs(20);

/// A workspace client per URL, resource id (the id changes the headers it sends) and owner
/// (the target's `client_id`, or `None` for the service's own identity).
type WorkspaceKey = (String, Option<String>, Option<String>);
/// An app registration's token source per client id and exchange audience (contract §8).
type AppKey = (String, &'static str);
/// Per vault: the write budget and the budget of everything else.
type VaultPacers = (Arc<RateLimiter>, Arc<RateLimiter>);

pub struct Engine {
    config: Arc<Config>,
    http: reqwest::Client,
    retry: RetryPolicy,
    tokens: OnceLock<std::result::Result<Arc<TokenSource>, Error>>,
    apps: Mutex<HashMap<AppKey, Arc<TokenSource>>>,
    workspaces: Mutex<HashMap<WorkspaceKey, Arc<DatabricksWorkspace>>>,
    workspace_pacers: Mutex<HashMap<String, Arc<RateLimiter>>>,
    vaults: Mutex<HashMap<String, Arc<KeyVaultStore>>>,
    vault_pacers: Mutex<HashMap<String, VaultPacers>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Engine {
    /// Builds the engine. No I/O happens until the first pass.
    pub fn new(config: Config) -> Engine {
        let s = &config.settings;
        let retry = RetryPolicy {
            attempts: s.retry_attempts,
            base_delay: s.retry_base_delay,
            max_delay: Duration::from_secs(crate::config::MAX_RETRY_WAIT_SECS),
            call_timeout: s.call_timeout,
        };
        Engine {
            http: crate::transport::client::build(s.call_timeout),
            retry,
            config: Arc::new(config),
            tokens: OnceLock::new(),
            apps: Mutex::new(HashMap::new()),
            workspaces: Mutex::new(HashMap::new()),
            workspace_pacers: Mutex::new(HashMap::new()),
            vaults: Mutex::new(HashMap::new()),
            vault_pacers: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn tokens(&self) -> Result<Arc<TokenSource>> {
        self.tokens
            .get_or_init(|| {
                let s = &self.config.settings;
                let factory = credential::credential_factory(s, &self.http)?;
                Ok(TokenSource::new(factory, s.credential, self.retry.clone()))
            })
            .clone()
    }

    /// The token source of whoever owns the target's PATs: the service's own identity, or the
    /// app registration of its `client_id`, reached by federation from the service's identity.
    fn owner_tokens(&self, t: &Target) -> Result<Arc<TokenSource>> {
        let service = self.tokens()?;
        let Some(client_id) = &t.client_id else { return Ok(service) };
        let key = (client_id.clone(), federation::exchange_scope(&t.workspace_url));
        if let Some(s) = self.apps.lock().expect("engine lock").get(&key) {
            return Ok(s.clone());
        }
        let source = federation::app_token_source(
            &self.config.settings,
            &self.http,
            client_id,
            key.1,
            service,
            self.retry.clone(),
        )?;
        Ok(self.apps.lock().expect("engine lock").entry(key).or_insert(source).clone())
    }

    fn workspace(&self, t: &Target) -> Result<Arc<DatabricksWorkspace>> {
        let key = (t.workspace_url.clone(), t.workspace_resource_id.clone(), t.client_id.clone());
        if let Some(w) = self.workspaces.lock().expect("engine lock").get(&key) {
            return Ok(w.clone());
        }
        let tokens = self.owner_tokens(t)?;
        let rps = self.config.settings.pacing.workspace_rps;
        // One pacer per workspace URL, shared by clients with and without a resource id.
        let pacer = (rps > 0).then(|| {
            self.workspace_pacers
                .lock()
                .expect("engine lock")
                .entry(t.workspace_url.clone())
                .or_insert_with(|| Arc::new(RateLimiter::new(rps, Duration::from_secs(1))))
                .clone()
        });
        let w = Arc::new(DatabricksWorkspace::new(
            self.http.clone(),
            &t.workspace_url,
            t.workspace_resource_id.clone(),
            tokens,
            self.retry.clone(),
            pacer,
        ));
        Ok(self.workspaces.lock().expect("engine lock").entry(key).or_insert(w).clone())
    }

    fn vault(&self, t: &Target) -> Result<Arc<KeyVaultStore>> {
        let key = t.key_vault_url.to_ascii_lowercase();
        if let Some(v) = self.vaults.lock().expect("engine lock").get(&key) {
            return Ok(v.clone());
        }
        let tokens = self.tokens()?;
        let p = &self.config.settings.pacing;
        let (writes, reads) = self
            .vault_pacers
            .lock()
            .expect("engine lock")
            .entry(key.clone())
            .or_insert_with(|| {
                (
                    Arc::new(RateLimiter::new(p.kv_writes_per_10s, p.kv_window)),
                    Arc::new(RateLimiter::new(p.kv_reads_per_10s, p.kv_window)),
                )
            })
            .clone();
        let v = Arc::new(KeyVaultStore::new(
            &t.key_vault_url,
            tokens.as_credential(),
            &self.http,
            self.retry.clone(),
            writes,
            reads,
        )?);
        Ok(self.vaults.lock().expect("engine lock").entry(key).or_insert(v).clone())
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().expect("engine lock").entry(name.to_string()).or_default().clone()
    }

    /// Resolves target names; `None` or empty means all targets.
    pub fn select(&self, names: &[String]) -> std::result::Result<Vec<&Target>, Error> {
        if names.is_empty() {
            return Ok(self.config.targets.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.config
                    .target(n)
                    .ok_or_else(|| Error::new(Code::UnknownTarget, format!("\"{n}\" is not a configured target")))
            })
            .collect()
    }

    /// One pass over `targets`, at most `PAT_MAX_CONCURRENCY` at a time. A slot is given to the
    /// next target as soon as any target finishes (a hung workspace holds up only its own
    /// targets); the outcomes are reported in the order of `targets`.
    pub async fn run(&self, targets: &[&Target], opts: RunOptions) -> Vec<Outcome> {
        let deadline = Instant::now() + opts.budget;
        self.each_target(targets, |t| self.run_target(t, opts, deadline)).await
    }

    /// `work` for every target, at most `PAT_MAX_CONCURRENCY` at a time, a freed slot going to
    /// the next target at once; results in the order of `targets`.
    async fn each_target<'a, T, F, Fut>(&self, targets: &[&'a Target], work: F) -> Vec<T>
    where
        F: Fn(&'a Target) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut done: Vec<(usize, T)> = futures::stream::iter(targets.iter().copied().enumerate())
            .map(|(i, t)| {
                let fut = work(t);
                async move { (i, fut.await) }
            })
            .buffer_unordered(self.config.settings.max_concurrency)
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, o)| o).collect()
    }

    async fn run_target(&self, t: &Target, opts: RunOptions, deadline: Instant) -> Outcome {
        let work = async {
            let lock = self.lock_for(&t.name);
            let _guard = match tokio::time::timeout_at(deadline, lock.lock()).await {
                Ok(g) => g,
                Err(_) => {
                    return Outcome::failed(
                        &t.name,
                        None,
                        Error::new(
                            Code::Timeout,
                            "another rotation of this target was still running when the time budget ran out",
                        ),
                    );
                }
            };
            let (ws, store) = match (self.workspace(t), self.vault(t)) {
                (Ok(w), Ok(v)) => (w, v),
                (Err(e), _) | (_, Err(e)) => return Outcome::failed(&t.name, None, e),
            };
            let ports = Ports {
                workspace: ws.as_ref() as &dyn Workspace,
                store: store.as_ref() as &dyn SecretStore,
                clock: &SystemClock,
                retry: &self.retry,
            };
            let req = Request { target: t, force: opts.force, dry_run: opts.dry_run };
            let (_, outcome) = futures::join!(self.prefetch(t, &ws), rotate::rotate(req, &ports));
            outcome
        };
        let outcome = match tokio::time::timeout_at(deadline + BACKSTOP, retry::within(deadline, work)).await {
            Ok(o) => o,
            Err(_) => Outcome::failed(
                &t.name,
                None,
                Error::new(Code::Timeout, "the target's work did not finish within the time budget"),
            ),
        };
        match &outcome.error {
            None => tracing::info!("{}", outcome.log_line()),
            Some(_) => tracing::error!("{}", outcome.log_line()),
        }
        outcome
    }

    /// Starts every identity token this target will need at once, instead of one after the
    /// other as each client discovers it (Key Vault's challenge, the management header).
    ///
    /// For a target with `client_id` the workspace's scopes are the app's: each waits for the
    /// service's exchange-audience token (fetched alongside the vault token) and then for the
    /// exchange, so a cold start costs exactly one more sequential round trip.
    async fn prefetch(&self, t: &Target, ws: &DatabricksWorkspace) {
        let (Ok(service), Ok(owner)) = (self.tokens(), self.owner_tokens(t)) else { return };
        let mut wanted: Vec<(Arc<TokenSource>, &'static str)> =
            ws.scopes().into_iter().map(|s| (owner.clone(), s)).collect();
        wanted.extend(credential::vault_scope(&t.key_vault_url).map(|s| (service.clone(), s)));
        futures::future::join_all(wanted.into_iter().map(|(tokens, s)| async move { tokens.prefetch(s).await })).await;
    }

    /// Reads (only) what `status` reports for each target.
    pub async fn status(&self, targets: &[&Target], budget: Duration) -> Vec<StatusRow> {
        let deadline = Instant::now() + budget;
        self.each_target(targets, |t| retry::within(deadline, self.status_one(t))).await
    }

    async fn status_one(&self, t: &Target) -> StatusRow {
        let mut row = StatusRow {
            target: t.name.clone(),
            owner: t.owner(),
            secret_id: None,
            secret_version: None,
            managed: None,
            token_id: None,
            expires_at: None,
            days_left: None,
            token_exists: None,
            error: None,
        };
        let (ws, store) = match (self.workspace(t), self.vault(t)) {
            (Ok(w), Ok(v)) => (w, v),
            (Err(e), _) | (_, Err(e)) => {
                row.error = Some(ErrorBody::from(&e));
                return row;
            }
        };
        let (tokens, secret) = futures::join!(ws.list_tokens(), store.read_latest(&t.secret_name));
        let secret = match secret {
            Ok(s) => s.latest,
            Err(e) => {
                row.error = Some(ErrorBody::from(&e));
                None
            }
        };
        if let Some(s) = &secret {
            let v = SecretView::from_stored(s);
            row.secret_version = s.id.rsplit('/').next().map(str::to_string);
            row.secret_id = Some(s.id.clone());
            row.managed = Some(v.managed);
            row.token_id = v.token_id.clone();
            row.expires_at = v.token_expires_at.map(rfc3339);
            let now = OffsetDateTime::now_utc();
            row.days_left = v.token_expires_at.map(|e| (e - now).whole_days());
            match &tokens {
                Ok(list) => {
                    let found = v.token_id.as_ref().and_then(|id| list.tokens.iter().find(|tok| &tok.id == id));
                    row.token_exists = Some(found.is_some());
                    if let Some(tok) = found {
                        row.expires_at = tok.expires_at.map(rfc3339);
                        row.days_left = tok.expires_at.map(|e| (e - now).whole_days());
                    }
                }
                Err(e) => {
                    if row.error.is_none() {
                        row.error = Some(ErrorBody::from(e));
                    }
                }
            }
        } else if let Err(e) = &tokens
            && row.error.is_none()
        {
            row.error = Some(ErrorBody::from(e));
        }
        row
    }
}

/// One row of `pat-rotator status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub target: String,
    /// Who owns the target's tokens: `service identity` or `app <client_id>` (contract §8).
    pub owner: String,
    pub secret_id: Option<String>,
    pub secret_version: Option<String>,
    /// Whether the latest version was written by pat-rotator.
    pub managed: Option<bool>,
    pub token_id: Option<String>,
    pub expires_at: Option<String>,
    pub days_left: Option<i64>,
    /// Whether the token still exists in the workspace (`None` when it could not be checked).
    pub token_exists: Option<bool>,
    pub error: Option<ErrorBody>,
}
