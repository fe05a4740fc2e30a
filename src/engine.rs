//! The engine: one pass of the rotation over the configured targets.
//!
//! It owns the long-lived pieces (the HTTP client, the token source, one client per workspace
//! and per vault with their pacers), runs targets with bounded concurrency, serialises work on
//! the same target inside the process, and bounds every target by the invocation's deadline.
//! Both the custom handler and the CLI drive the rotation only through [`Engine`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::azure::credential::{self, TokenSource};
use crate::azure::federation;
use crate::azure::keyvault::KeyVaultStore;
use crate::config::{Config, Target, TargetKind};
use crate::databricks::DatabricksWorkspace;
use crate::databricks::oauth_secret::OAuthSecretIssuer;
use crate::databricks::pat::{self, PatIssuer};
use crate::error::{Code, Error, ErrorBody, Result};
use crate::rotation::model::{Outcome, Ownership, SecretView, rfc3339, tags};
use crate::rotation::ports::{Backoff, Issuer, SecretStore, SystemClock};
use crate::rotation::rotate::{self, Ports};
use crate::rotation::spec::{Force, Owner, Request, Spec};
use crate::transport::pacing::RateLimiter;
use crate::transport::retry::{self, RetryPolicy};

/// Who started a pass: it decides how `force` is honoured (contract §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `pat-rotator rotate`: `force` always holds.
    Cli,
    /// `ProvisionPat`: `force` is subject to the cooldown and the room below the cap.
    Provision,
    /// `RotatePat`: never forced.
    Timer,
}

/// What a pass was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub force: bool,
    pub dry_run: bool,
    /// Incident response (CLI only): revoke every other credential of the target once the new
    /// version is written.
    pub revoke_superseded: bool,
    pub caller: Caller,
    /// The pass's time budget; every target's work ends by then (see [`crate::transport::retry`]).
    pub budget: Duration,
}

/// The rotation's view of a configured target (contract §6 and §9 decide its tags).
pub fn spec(t: &Target) -> Spec {
    let mut tag_map = BTreeMap::new();
    tag_map.insert(tags::HOST.to_string(), t.workspace_host());
    let owner = match t.kind {
        TargetKind::Pat => {
            if let Some(c) = &t.client_id {
                tag_map.insert(tags::CLIENT_ID.to_string(), c.clone());
            }
            Some(Owner { client_id: t.client_id.clone() })
        }
        TargetKind::SpOauthSecret => {
            if let Some(sp) = &t.service_principal {
                tag_map.insert(tags::CLIENT_ID.to_string(), sp.clone());
            }
            None
        }
    };
    Spec {
        target: t.name.clone(),
        secret_name: t.secret_name.clone(),
        lifetime_days: t.lifetime_days,
        renew_before: time::Duration::days(t.renew_before_days as i64),
        grace: time::Duration::hours(t.revoke_grace_hours as i64),
        tags: tag_map,
        owner,
    }
}

/// The retry policy and the invocation's deadline, as the domain sees them.
struct PolicyBackoff<'a>(&'a RetryPolicy);

impl Backoff for PolicyBackoff<'_> {
    fn next_wait(&self, attempt: u32, err: &Error) -> Option<Duration> {
        self.0.next_wait(attempt, err).ok()
    }

    fn past_deadline(&self) -> bool {
        retry::deadline().is_some_and(|d| Instant::now() >= d)
    }
}

/// Extra time after the deadline before a target's work is abandoned outright (a backstop: the
/// retry layer already stops retrying at the deadline).
const BACKSTOP: Duration = Duration::from_secs(20);

/// A workspace client per URL, resource id (the id changes the headers it sends) and owner
/// (the target's `client_id`, or `None` for the service's own identity).
type WorkspaceKey = (String, Option<String>, Option<String>);
/// An app registration's token source per client id and exchange audience (contract §8).
type AppKey = (String, &'static str);
/// An OAuth-secret issuer per workspace client and application id (it remembers the
/// principal's SCIM id).
type SpKey = (WorkspaceKey, String);
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
    sp_issuers: Mutex<HashMap<SpKey, Arc<OAuthSecretIssuer>>>,
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
            sp_issuers: Mutex::new(HashMap::new()),
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

    /// The issuer of the target's credentials, on the workspace client of their owner.
    fn issuer(&self, t: &Target, ws: &Arc<DatabricksWorkspace>) -> Arc<dyn Issuer> {
        match (t.kind, &t.service_principal) {
            (TargetKind::SpOauthSecret, Some(sp)) => {
                let key = ((t.workspace_url.clone(), t.workspace_resource_id.clone(), t.client_id.clone()), sp.clone());
                self.sp_issuers
                    .lock()
                    .expect("engine lock")
                    .entry(key)
                    .or_insert_with(|| Arc::new(OAuthSecretIssuer::new(ws.clone(), sp)))
                    .clone()
            }
            _ => Arc::new(PatIssuer::new(
                ws.clone(),
                &t.name,
                pat::secret_key(&t.key_vault_url, &t.secret_name),
                t.scopes.clone(),
                t.autoscope,
            )),
        }
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
            let issuer = self.issuer(t, &ws);
            let backoff = PolicyBackoff(&self.retry);
            let ports = Ports {
                issuer: issuer.as_ref(),
                store: store.as_ref() as &dyn SecretStore,
                clock: &SystemClock,
                backoff: &backoff,
            };
            let force = match (opts.force, opts.caller) {
                (false, _) | (true, Caller::Timer) => Force::No,
                (true, Caller::Cli) => Force::Cli,
                (true, Caller::Provision) => Force::Provision {
                    cooldown: time::Duration::try_from(self.config.settings.force_cooldown)
                        .unwrap_or(time::Duration::ZERO),
                },
            };
            let req = Request {
                force,
                dry_run: opts.dry_run,
                revoke_superseded: opts.revoke_superseded && opts.caller == Caller::Cli,
            };
            let spec = spec(t);
            let (_, outcome) = futures::join!(self.prefetch(t, &ws), rotate::rotate(&spec, req, &ports));
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
        let (action, reason) = (outcome.action.as_str(), outcome.reason.map(|r| r.as_str()).unwrap_or(""));
        match &outcome.error {
            None => tracing::info!(target_name = %t.name, action, reason, "{}", outcome.log_line()),
            Some(e) => {
                tracing::error!(target_name = %t.name, action, reason, code = e.code.as_str(), "{}", outcome.log_line())
            }
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

    /// The target's issuer and vault, or the error that stops building them.
    fn clients(&self, t: &Target) -> Result<(Arc<dyn Issuer>, Arc<KeyVaultStore>)> {
        let ws = self.workspace(t)?;
        let store = self.vault(t)?;
        Ok((self.issuer(t, &ws), store))
    }

    async fn status_one(&self, t: &Target) -> StatusRow {
        let mut row = StatusRow {
            target: t.name.clone(),
            kind: t.kind.as_str().to_string(),
            owner: t.owner(),
            secret_id: None,
            secret_version: None,
            managed: None,
            token_id: None,
            expires_at: None,
            days_left: None,
            token_exists: None,
            unrecorded: Vec::new(),
            error: None,
        };
        let inv = match self.inventory_one(t).await {
            Ok(inv) => inv,
            Err(e) => {
                row.error = Some(ErrorBody::from(&e));
                return row;
            }
        };
        let now = OffsetDateTime::now_utc();
        if let Some(s) = &inv.latest {
            let v = SecretView::of(s, inv.profile);
            row.secret_version = Some(s.version().to_string());
            row.secret_id = Some(s.id.clone());
            row.managed = Some(v.managed);
            row.token_id = v.credential_id.clone();
            row.expires_at = v.expires_at.map(rfc3339);
            row.days_left = v.expires_at.map(|e| (e - now).whole_days());
        }
        match &inv.listed {
            Ok(creds) => {
                if let Some(id) = &row.token_id {
                    let found = creds.iter().find(|c| &c.id == id);
                    row.token_exists = Some(found.is_some());
                    if let Some(c) = found {
                        row.expires_at = c.expires_at.map(rfc3339);
                        row.days_left = c.expires_at.map(|e| (e - now).whole_days());
                    }
                }
                if inv.profile.reports_unrecorded && inv.settled {
                    row.unrecorded = creds
                        .iter()
                        .filter(|c| c.ownership == Ownership::IfRecorded && !inv.named.contains(&c.id))
                        .map(|c| c.id.clone())
                        .collect();
                }
            }
            Err(e) => row.error = Some(ErrorBody::from(e)),
        }
        if let Err(e) = &inv.read {
            row.error = Some(ErrorBody::from(e));
        }
        row
    }

    /// What one target's issuer holds and what its secret's versions record: reads only.
    async fn inventory_one(&self, t: &Target) -> Result<Inventory> {
        let (issuer, store) = self.clients(t)?;
        let profile = issuer.profile();
        let (listed, read) = futures::join!(issuer.list(), store.read_latest(&t.secret_name));
        let latest = read.as_ref().ok().and_then(|r| r.latest.clone());
        let (named, unsettled) = match &listed {
            Ok(l) => rotate::records(store.as_ref(), &t.secret_name, profile, latest.as_ref(), &l.credentials).await,
            Err(_) => (BTreeSet::new(), None),
        };
        let settled = unsettled.is_none();
        let listed = listed.map(|l| l.credentials);
        Ok(Inventory { profile, listed, read: read.map(|_| ()), latest, named, settled })
    }

    /// `pat-rotator tokens`: every credential each target's issuer holds, and whose it is.
    pub async fn inventory(&self, targets: &[&Target], budget: Duration) -> Vec<TokensRow> {
        let deadline = Instant::now() + budget;
        self.each_target(targets, |t| {
            retry::within(deadline, async move {
                let mut row = TokensRow { target: t.name.clone(), tokens: Vec::new(), error: None };
                let inv = match self.inventory_one(t).await {
                    Ok(i) => i,
                    Err(e) => {
                        row.error = Some(ErrorBody::from(&e));
                        return row;
                    }
                };
                if let Err(e) = &inv.read {
                    row.error = Some(ErrorBody::from(e));
                }
                let in_vault = inv.latest.as_ref().and_then(|s| s.names(inv.profile).0);
                match inv.listed {
                    Ok(creds) => {
                        let resolved = crate::rotation::rules::resolve(&creds, &inv.named);
                        row.tokens = resolved
                            .into_iter()
                            .map(|c| TokenRow {
                                in_vault: in_vault.as_deref() == Some(c.id.as_str()),
                                managed: c.ownership == Ownership::Ours,
                                token_id: c.id,
                                comment: c.comment,
                                created_at: c.created_at.map(rfc3339),
                                expires_at: c.expires_at.map(rfc3339),
                            })
                            .collect();
                    }
                    Err(e) => row.error = Some(ErrorBody::from(&e)),
                }
                row
            })
        })
        .await
    }

    /// `pat-rotator tokens --revoke ID…`: revokes each id in every selected target's issuer that
    /// holds it — unless the latest version of any configured secret names one of them, then
    /// nothing at all. Ids found nowhere are reported.
    pub async fn revoke_ids(&self, targets: &[&Target], ids: &[String], budget: Duration) -> RevokeReport {
        let deadline = Instant::now() + budget;
        retry::within(deadline, self.revoke_ids_inner(targets, ids)).await
    }

    async fn revoke_ids_inner(&self, targets: &[&Target], ids: &[String]) -> RevokeReport {
        let mut report = RevokeReport::default();
        // Every configured secret, not only the selected targets': a token one of them names
        // is what consumers read.
        let all: Vec<&Target> = self.config.targets.iter().collect();
        let named = self
            .each_target(&all, |t| async move {
                let (issuer, store) = self.clients(t)?;
                let read = store.read_latest(&t.secret_name).await?;
                Ok::<_, Error>(read.latest.and_then(|s| s.names(issuer.profile()).0).map(|id| (id, t.name.clone())))
            })
            .await;
        let mut protected = BTreeMap::new();
        for (t, r) in all.iter().zip(named) {
            match r {
                Ok(Some((id, name))) => {
                    protected.insert(id, name);
                }
                Ok(None) => {}
                Err(e) => {
                    report.errors.push(format!(
                        "{}: reading its secret failed ({e}); nothing was revoked, since an id it names cannot be ruled out",
                        t.name
                    ));
                }
            }
        }
        if !report.errors.is_empty() {
            return report;
        }
        let refused: Vec<String> = ids
            .iter()
            .filter_map(|id| {
                protected
                    .get(id)
                    .map(|t| format!("{id} is the credential the latest version of target {t}'s secret names"))
            })
            .collect();
        if !refused.is_empty() {
            report.errors.extend(refused);
            report.errors.push(
                "nothing was revoked; rotate that target first (pat-rotator rotate --target NAME --force)".into(),
            );
            return report;
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        for t in targets {
            let (issuer, _) = match self.clients(t) {
                Ok(c) => c,
                Err(e) => {
                    report.errors.push(format!("{}: {e}", t.name));
                    continue;
                }
            };
            let listed = match issuer.list().await {
                Ok(l) => l.credentials,
                Err(e) => {
                    report.errors.push(format!("{}: listing failed ({e})", t.name));
                    continue;
                }
            };
            for id in ids {
                if !listed.iter().any(|c| &c.id == id) {
                    continue;
                }
                found.insert(id.clone());
                if report.revoked.iter().any(|(r, _)| r == id) {
                    continue;
                }
                match issuer.revoke(id).await {
                    Ok(()) => {
                        tracing::warn!(target_name = %t.name, token = %crate::rotation::model::short_id(id), "revoked by tokens --revoke");
                        report.revoked.push((id.clone(), t.name.clone()));
                    }
                    Err(e) => report.errors.push(format!("{}: revoking {id} failed ({e})", t.name)),
                }
            }
        }
        for id in ids {
            if !found.contains(id) {
                report.errors.push(format!("{id} was found in no selected target's workspace"));
            }
        }
        report
    }
}

/// What one target's issuer holds and what its secret records.
struct Inventory {
    profile: &'static crate::rotation::Profile,
    listed: Result<Vec<crate::rotation::model::Credential>>,
    read: Result<()>,
    latest: Option<crate::rotation::model::StoredSecret>,
    /// Ids some version names.
    named: BTreeSet<String>,
    /// Whether every credential that only a record could attribute was looked up.
    settled: bool,
}

/// One row of `pat-rotator status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub target: String,
    /// `pat` or `sp_oauth_secret`.
    pub kind: String,
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
    /// OAuth secrets of the principal that no version records (contract §9): left by a run
    /// that stopped between create and write, or someone else's. Never deleted by a rotation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unrecorded: Vec<String>,
    pub error: Option<ErrorBody>,
}

/// One target of `pat-rotator tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct TokensRow {
    pub target: String,
    pub tokens: Vec<TokenRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// One credential in `pat-rotator tokens` (contract §1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub token_id: String,
    pub comment: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    /// The target's by contract §6 / §9.
    pub managed: bool,
    /// The latest version of the target's secret names it.
    pub in_vault: bool,
}

/// What `tokens --revoke` did.
#[derive(Debug, Clone, Default)]
pub struct RevokeReport {
    /// (id, target whose workspace held it).
    pub revoked: Vec<(String, String)>,
    pub errors: Vec<String>,
}
