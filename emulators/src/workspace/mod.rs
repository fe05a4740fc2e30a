//! `FakeWorkspace`: an Azure Databricks workspace's token API, service principal OAuth
//! secrets and OIDC token endpoint, with real auth semantics.
//!
//! Served over plain HTTP at `http://127.0.0.1:PORT` (the program allows `http://` for
//! loopback workspace URLs only), through the loopback relay of [`crate::relay`] so that an
//! answer can go out without `Date`. Who may call and how is decided in `http.rs`: Entra ID
//! tokens from the shared [`crate::Directory`] (audience Azure Databricks, not expiring within
//! 30 s), live PATs of this workspace, or OAuth access tokens minted at `/oidc/v1/token`;
//! non-members only through the Azure management-token headers. The PATs live in `tokens.rs`;
//! service principals, their OAuth secrets and the minted access tokens in `sp.rs`.
//!
//! Op names for faults and the call log: `create`, `list`, `delete`, `tm_list`, `tm_get`,
//! `conf`, `me`, `scim_sp`, `sp_secret_list`, `sp_secret_create`, `sp_secret_delete`,
//! `oidc_token`, `discovery`, `other` (everything else).

mod http;
mod sp;
mod sp_http;
mod tokens;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub use sp::{OAuthToken, ServicePrincipal, SpKind, SpSecretInfo};
pub use tokens::TokenInfo;

pub(crate) use http::handle;

use crate::directory::{Directory, unix_millis};
use crate::encoding::rfc3339_millis;
use crate::faults::Faults;
use crate::ratelimit::TokenBucket;
use sp::ServicePrincipals;
use tokens::Tokens;

/// Token-bucket rate limit of a workspace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WsRateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Refill rate, requests per second.
    pub per_second: f64,
}

/// Options of every workspace fake.
#[derive(Clone, Debug)]
pub struct WorkspaceOptions {
    /// The identity fake's system-assigned principal starts as a workspace member.
    pub identity_is_member: bool,
    /// ... and as a workspace admin (may read workspace-conf). Ignored when
    /// `identity_is_member` is false, so that one switch starts a workspace with no members.
    pub identity_is_admin: bool,
    /// `maxTokenLifetimeDays`; 0 = no limit.
    pub max_token_lifetime_days: u32,
    /// Live tokens one principal may hold.
    pub token_quota: usize,
    /// Rate limit; `None` (default) = off.
    pub rate_limit: Option<WsRateLimit>,
    /// A non-member admitted through the management-token headers becomes a member and admin
    /// (as Microsoft's docs describe; unconfirmed). With `false` every request of such a
    /// principal needs the headers.
    pub auto_provision: bool,
    /// ARM resource ids by workspace index; missing entries get
    /// `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws<N>`.
    pub resource_ids: Vec<String>,
    /// Live OAuth secrets one service principal may hold (Databricks: five).
    pub sp_secret_limit: usize,
    /// Longest OAuth secret lifetime accepted, in days (Databricks: 730, also the default).
    pub sp_secret_max_lifetime_days: u32,
    /// Whether Microsoft Entra ID-managed service principals may hold Databricks OAuth secrets.
    /// Default `false`: the secrets API refuses them (see the README for the evidence).
    pub entra_sp_oauth_secrets: bool,
    /// Put the loopback relay of [`crate::relay`] in front of the workspace (default `true`).
    /// Without it [`FakeWorkspace::omit_date`] cannot work (actix always writes `Date`).
    pub date_relay: bool,
}

impl Default for WorkspaceOptions {
    fn default() -> Self {
        WorkspaceOptions {
            identity_is_member: true,
            identity_is_admin: true,
            max_token_lifetime_days: 0,
            token_quota: 600,
            rate_limit: None,
            auto_provision: true,
            resource_ids: Vec::new(),
            sp_secret_limit: 5,
            sp_secret_max_lifetime_days: 730,
            entra_sp_oauth_secrets: false,
            date_relay: true,
        }
    }
}

/// Handle to one fake workspace. Cheap to clone; all clones share the workspace.
#[derive(Clone)]
pub struct FakeWorkspace {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    resource_id: String,
    /// Numeric workspace id (`adb-<id>` on Azure), in `/.well-known/databricks-config`.
    workspace_id: String,
    /// Whether answers pass through the relay (so the `Date` header can be left out).
    date_relay: bool,
    identity_principal: String,
    directory: Arc<Directory>,
    faults: Faults,
    state: Mutex<State>,
    /// How far the workspace's clock is ahead of this machine's, in ms (outside `state`, so
    /// that code holding the state lock can read the clock).
    clock_ahead_ms: AtomicU64,
}

struct State {
    tokens: Tokens,
    members: HashSet<String>,
    admins: HashSet<String>,
    contributors: HashSet<String>,
    no_token_permission: HashSet<String>,
    max_lifetime_days: u32,
    quota: usize,
    auto_provision: bool,
    rate_limit: Option<WsRateLimit>,
    bucket: Option<TokenBucket>,
    throttled: u64,
    /// After the next request of this op is answered, the clock jumps ahead this much.
    clock_jump: Option<(String, Duration)>,
    /// Service principals, OAuth secrets, minted access tokens.
    sps: ServicePrincipals,
    sp_secret_limit: usize,
    sp_secret_max_lifetime: Duration,
    entra_sp_secrets: bool,
    /// Ops whose next answers go out without `Date`: `(op, remaining)`, consulted in order.
    omit_date: Vec<(String, usize)>,
}

impl State {
    /// A principal that exists in the workspace: a member, or a Contributor on the resource
    /// (who can always get in through the management headers).
    fn is_user(&self, principal: &str) -> bool {
        self.members.contains(principal) || self.contributors.contains(principal)
    }

    fn may_use_tokens(&self, principal: &str) -> bool {
        self.admins.contains(principal) || !self.no_token_permission.contains(principal)
    }
}

/// Azure Databricks account id every fake workspace reports (account ids are GUIDs).
pub const ACCOUNT_ID: &str = "5e1a7c3b-2d4f-4a6e-9b8c-0d1e2f3a4b5c";

/// Default ARM id of workspace `index`.
pub(crate) fn default_resource_id(index: usize) -> String {
    format!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/ws{index}"
    )
}

impl FakeWorkspace {
    #[allow(clippy::too_many_arguments, reason = "crate-internal constructor called from one place")]
    pub(crate) fn new(
        index: usize,
        url: String,
        resource_id: String,
        identity_principal: String,
        directory: Arc<Directory>,
        opts: &WorkspaceOptions,
        latency: Duration,
    ) -> Self {
        let mut members = HashSet::new();
        let mut admins = HashSet::new();
        if opts.identity_is_member {
            members.insert(identity_principal.clone());
            if opts.identity_is_admin {
                admins.insert(identity_principal.clone());
            }
        }
        let state = State {
            tokens: Tokens::default(),
            members,
            admins,
            contributors: HashSet::new(),
            no_token_permission: HashSet::new(),
            max_lifetime_days: opts.max_token_lifetime_days,
            quota: opts.token_quota,
            auto_provision: opts.auto_provision,
            rate_limit: opts.rate_limit,
            bucket: opts.rate_limit.map(|r| TokenBucket::new(r.burst, r.per_second)),
            throttled: 0,
            clock_jump: None,
            sps: ServicePrincipals::default(),
            sp_secret_limit: opts.sp_secret_limit,
            sp_secret_max_lifetime: Duration::from_secs(u64::from(opts.sp_secret_max_lifetime_days) * 86_400),
            entra_sp_secrets: opts.entra_sp_oauth_secrets,
            omit_date: Vec::new(),
        };
        FakeWorkspace {
            inner: Arc::new(Inner {
                url,
                resource_id,
                workspace_id: (7_300_000_000_000_000u64 + index as u64).to_string(),
                date_relay: opts.date_relay,
                identity_principal,
                directory,
                faults: Faults::with_latency(latency),
                state: Mutex::new(state),
                clock_ahead_ms: AtomicU64::new(0),
            }),
        }
    }

    /// The workspace's clock: this machine's, plus whatever it was moved ahead. Every time the
    /// workspace states (creation, expiry, `Date`) and every liveness decision uses it.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.inner.clock_ahead_ms.load(Ordering::SeqCst))
    }

    /// Moves the workspace's clock ahead (as a run that stalled would see it).
    pub fn advance_clock(&self, by: Duration) {
        self.inner.clock_ahead_ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// After the next request of `op` is answered, moves the clock ahead by `by`: the world as
    /// a client that stalled right after that call finds it.
    pub fn advance_clock_after(&self, op: &str, by: Duration) {
        self.state().clock_jump = Some((op.to_string(), by));
    }

    pub(crate) fn after_request(&self, op: &str) {
        let jump = {
            let mut st = self.state();
            if st.clock_jump.as_ref().is_some_and(|(o, _)| o == op) { st.clock_jump.take() } else { None }
        };
        if let Some((_, by)) = jump {
            self.advance_clock(by);
        }
    }

    /// Workspace URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// ARM resource id expected in `X-Databricks-Azure-Workspace-Resource-Id`.
    pub fn resource_id(&self) -> &str {
        &self.inner.resource_id
    }

    /// Object id of the identity fake's system-assigned principal (the usual caller).
    pub fn principal(&self) -> &str {
        &self.inner.identity_principal
    }

    /// Fault injection and call log of this workspace.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Makes a principal a workspace member.
    pub fn add_member(&self, principal: &str) {
        self.state().members.insert(principal.to_string());
    }

    /// Removes a principal from the workspace (and from the admins); its PATs stop working.
    pub fn remove_member(&self, principal: &str) {
        let mut st = self.state();
        st.members.remove(principal);
        st.admins.remove(principal);
    }

    /// True when the principal is a member.
    pub fn is_member(&self, principal: &str) -> bool {
        self.state().members.contains(principal)
    }

    /// Makes a principal a member and workspace admin.
    pub fn add_admin(&self, principal: &str) {
        let mut st = self.state();
        st.members.insert(principal.to_string());
        st.admins.insert(principal.to_string());
    }

    /// Gives a principal Contributor on the workspace's Azure resource (management-header mode).
    pub fn grant_contributor(&self, principal: &str) {
        self.state().contributors.insert(principal.to_string());
    }

    /// Grants or withdraws the permission to use tokens (admins always have it).
    pub fn set_token_permission(&self, principal: &str, allowed: bool) {
        let mut st = self.state();
        if allowed {
            st.no_token_permission.remove(principal);
        } else {
            st.no_token_permission.insert(principal.to_string());
        }
    }

    /// Sets `maxTokenLifetimeDays` (0 = no limit); existing tokens are unaffected.
    pub fn set_max_lifetime_days(&self, days: u32) {
        self.state().max_lifetime_days = days;
    }

    /// Current `maxTokenLifetimeDays`.
    pub fn max_lifetime_days(&self) -> u32 {
        self.state().max_lifetime_days
    }

    /// Sets the per-principal live token quota.
    pub fn set_token_quota(&self, quota: usize) {
        self.state().quota = quota;
    }

    /// Replaces the rate limit (`None` = off), starting with a full bucket.
    pub fn set_rate_limit(&self, limit: Option<WsRateLimit>) {
        let mut st = self.state();
        st.rate_limit = limit;
        st.bucket = limit.map(|r| TokenBucket::new(r.burst, r.per_second));
    }

    /// Requests answered 429 by the rate limit so far.
    pub fn throttled_count(&self) -> u64 {
        self.state().throttled
    }

    /// Creates a token directly (no HTTP, no quota or lifetime checks).
    /// `lifetime: None` = never expires. Returns `(token_id, value)`.
    pub fn seed_token(
        &self,
        principal: &str,
        comment: &str,
        created_at: SystemTime,
        lifetime: Option<Duration>,
    ) -> (String, String) {
        let (id, value, _) = self.state().tokens.create(principal, comment, Vec::new(), created_at, lifetime);
        (id, value)
    }

    /// Live tokens of a principal, oldest first.
    pub fn tokens(&self, principal: &str) -> Vec<TokenInfo> {
        self.state().tokens.live_for(principal, self.now())
    }

    /// Every token ever issued here, including revoked and expired ones.
    pub fn all_tokens(&self) -> Vec<TokenInfo> {
        self.state().tokens.all()
    }

    /// One token by id (live or not).
    pub fn token(&self, token_id: &str) -> Option<TokenInfo> {
        self.state().tokens.get(token_id)
    }

    /// True when the token exists, is not revoked and not expired.
    pub fn is_live(&self, token_id: &str) -> bool {
        self.token(token_id).is_some_and(|t| t.is_live(self.now()))
    }

    /// Revokes a token out of band (like an admin in the UI). False if unknown or already revoked.
    pub fn revoke(&self, token_id: &str) -> bool {
        self.state().tokens.revoke(token_id)
    }

    /// Databricks' inactivity revocation: revokes every live token whose last use (or
    /// creation, if never used) is before `cutoff`. Returns the revoked ids.
    pub fn revoke_unused_since(&self, cutoff: SystemTime) -> Vec<String> {
        self.state().tokens.revoke_unused_since(cutoff, self.now())
    }

    /// Moves every token's creation, expiry and last use `by` into the past, as if the
    /// tokens had been created that much earlier.
    pub fn age_tokens(&self, by: Duration) {
        let mut st = self.state();
        for id in st.tokens.ids() {
            st.tokens.age(&id, by);
        }
    }

    /// Sets when a token was last used successfully (`None`: never), as if a consumer had
    /// authenticated with it then — e.g. yesterday, with a token that was superseded since. The
    /// Token Management API shows the UTC day of it as `last_used_day`. False if unknown.
    pub fn set_token_last_used(&self, token_id: &str, at: Option<SystemTime>) -> bool {
        self.state().tokens.set_last_used(token_id, at)
    }

    /// Like [`Self::age_tokens`] for one token. False if unknown.
    pub fn age_token(&self, token_id: &str, by: Duration) -> bool {
        self.state().tokens.age(token_id, by)
    }

    /// Every secret value ever issued here, for redaction tests: PATs, service principal OAuth
    /// secrets and the OAuth access tokens minted at `/oidc/v1/token`.
    pub fn issued_values(&self) -> Vec<String> {
        let st = self.state();
        let mut v = st.tokens.issued_values();
        v.extend(st.sps.issued_secrets());
        v.extend(st.sps.issued_tokens());
        v
    }

    /// Whether this value would authenticate now: a live token whose owner is still a
    /// workspace user (member, or Contributor on the resource). No side effects.
    pub fn authenticate_pat(&self, value: &str) -> bool {
        let st = self.state();
        st.tokens.by_value(value).is_some_and(|t| t.is_live(self.now()) && st.is_user(&t.principal))
    }

    /// Numeric workspace id (as in `adb-<id>.<n>.azuredatabricks.net`), reported by
    /// `/.well-known/databricks-config`.
    pub fn workspace_id(&self) -> &str {
        &self.inner.workspace_id
    }

    /// Registers a service principal in the workspace (a member, not an admin) and returns it;
    /// registering an application id again returns the existing principal. An Entra-managed
    /// principal whose application id the directory knows (e.g. from
    /// [`crate::FakeAad::add_service_principal`]) is the same workspace principal as its Entra
    /// ID tokens; any other is keyed by its application id.
    pub fn add_service_principal(&self, application_id: &str, display_name: &str, kind: SpKind) -> ServicePrincipal {
        let key = match kind {
            SpKind::EntraManaged => self
                .inner
                .directory
                .principal_by_client_id(application_id)
                .map(|p| p.object_id)
                .unwrap_or_else(|| application_id.to_ascii_lowercase()),
            SpKind::DatabricksManaged => application_id.to_ascii_lowercase(),
        };
        let mut st = self.state();
        let sp = st.sps.add(application_id, display_name, kind, &key);
        st.members.insert(sp.principal.clone());
        sp
    }

    /// Removes a registered service principal from the workspace (and from the admins): the
    /// secrets API answers 404 for it, its secrets and access tokens stop working. False if unknown.
    pub fn remove_service_principal(&self, application_id: &str) -> bool {
        let mut st = self.state();
        let Some(sp) = st.sps.by_app(application_id) else { return false };
        st.members.remove(&sp.principal);
        st.admins.remove(&sp.principal);
        true
    }

    /// The registered service principal with this application id (in the workspace or not).
    pub fn service_principal(&self, application_id: &str) -> Option<ServicePrincipal> {
        self.state().sps.by_app(application_id)
    }

    /// Every registered service principal, in registration order.
    pub fn service_principals(&self) -> Vec<ServicePrincipal> {
        self.state().sps.all().to_vec()
    }

    /// Creates an OAuth secret directly (no HTTP, no limit or lifetime checks), created at
    /// `created_at` (the workspace's clock). Returns the secret and its value.
    ///
    /// # Panics
    /// When no service principal with that application id is registered.
    pub fn seed_sp_secret(
        &self,
        application_id: &str,
        created_at: SystemTime,
        lifetime: Duration,
    ) -> (SpSecretInfo, String) {
        let mut st = self.state();
        let sp = st.sps.by_app(application_id).unwrap_or_else(|| panic!("no service principal {application_id}"));
        st.sps.create_secret(&sp.application_id, Vec::new(), created_at, lifetime)
    }

    /// Live (not deleted, not expired by the workspace's clock) OAuth secrets of a service
    /// principal, oldest first: what the secrets API lists.
    pub fn sp_secrets(&self, application_id: &str) -> Vec<SpSecretInfo> {
        self.state().sps.live_secrets(application_id, self.now())
    }

    /// Every OAuth secret ever issued here, including deleted and expired ones.
    pub fn all_sp_secrets(&self) -> Vec<SpSecretInfo> {
        self.state().sps.all_secrets()
    }

    /// One OAuth secret by id (live or not).
    pub fn sp_secret(&self, secret_id: &str) -> Option<SpSecretInfo> {
        self.state().sps.secret(secret_id)
    }

    /// Deletes an OAuth secret out of band (like an admin in the UI). False if unknown or
    /// already deleted. Access tokens minted with it keep working until they expire.
    pub fn delete_sp_secret(&self, secret_id: &str) -> bool {
        let now = self.now();
        self.state().sps.delete_secret(secret_id, now)
    }

    /// Moves every OAuth secret's creation, update and expiry `by` into the past.
    pub fn age_sp_secrets(&self, by: Duration) {
        let mut st = self.state();
        for id in st.sps.secret_ids() {
            st.sps.age_secret(&id, by);
        }
    }

    /// Like [`Self::age_sp_secrets`] for one secret. False if unknown.
    pub fn age_sp_secret(&self, secret_id: &str, by: Duration) -> bool {
        self.state().sps.age_secret(secret_id, by)
    }

    /// Whether `/oidc/v1/token` would issue a token now for this client id and secret. No side effects.
    pub fn sp_secret_works(&self, application_id: &str, secret: &str) -> bool {
        self.check_client(application_id, secret).is_ok()
    }

    /// Makes every OAuth access token minted here expire now (they otherwise live an hour of
    /// the workspace's clock, even after their secret is deleted).
    pub fn expire_oauth_tokens(&self) {
        let now = self.now();
        self.state().sps.expire_tokens(now);
    }

    /// Every OAuth secret value issued here (a subset of [`Self::issued_values`]).
    pub fn issued_sp_secrets(&self) -> Vec<String> {
        self.state().sps.issued_secrets()
    }

    /// Every OAuth access token minted here (a subset of [`Self::issued_values`]).
    pub fn issued_oauth_tokens(&self) -> Vec<String> {
        self.state().sps.issued_tokens()
    }

    /// Sets the number of live OAuth secrets one service principal may hold.
    pub fn set_sp_secret_limit(&self, limit: usize) {
        self.state().sp_secret_limit = limit;
    }

    /// Sets the longest OAuth secret lifetime accepted.
    pub fn set_sp_secret_max_lifetime_days(&self, days: u32) {
        self.state().sp_secret_max_lifetime = Duration::from_secs(u64::from(days) * 86_400);
    }

    /// Lets Entra-managed service principals hold Databricks OAuth secrets, or not (default).
    pub fn set_entra_sp_oauth_secrets(&self, allowed: bool) {
        self.state().entra_sp_secrets = allowed;
    }

    /// The next `times` answers of `op` (`"*"` = any op; `usize::MAX` = always) go out without
    /// a `Date` header — whatever they are, fault answers included. Rules are consulted in the
    /// order given.
    ///
    /// # Panics
    /// When the workspace runs without its relay (`WorkspaceOptions::date_relay = false`).
    pub fn omit_date(&self, op: &str, times: usize) {
        assert!(
            self.inner.date_relay,
            "omit_date needs the workspace's relay: WorkspaceOptions::date_relay is false (actix always writes Date)"
        );
        if times > 0 {
            self.state().omit_date.push((op.to_string(), times));
        }
    }

    /// Whether this answer of `op` is to go out without `Date` (consumes one use of a rule).
    pub(crate) fn take_omit_date(&self, op: &str) -> bool {
        let mut st = self.state();
        let Some(i) = st.omit_date.iter().position(|(o, _)| o == op || o == "*") else { return false };
        let remaining = &mut st.omit_date[i].1;
        if *remaining != usize::MAX {
            *remaining -= 1;
            if *remaining == 0 {
                st.omit_date.remove(i);
            }
        }
        true
    }

    /// Summary for the `/_emulator/state` endpoint: live tokens without values.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let now = self.now();
        let st = self.state();
        let tokens: Vec<_> = st
            .tokens
            .all()
            .into_iter()
            .filter(|t| t.is_live(now))
            .map(|t| {
                serde_json::json!({
                    "token_id": t.token_id, "principal": t.principal, "comment": t.comment,
                    "creation_time": unix_millis(t.created),
                    "expiry_time": t.expiry.map(unix_millis).unwrap_or(-1),
                    "last_used": t.last_used.map(unix_millis),
                })
            })
            .collect();
        let sps: Vec<_> = st
            .sps
            .all()
            .iter()
            .map(|sp| {
                let secrets: Vec<_> = st
                    .sps
                    .all_secrets()
                    .into_iter()
                    .filter(|s| s.application_id == sp.application_id)
                    .map(|s| {
                        serde_json::json!({
                            "id": s.id, "status": if s.deleted { "DELETED" } else if s.is_live(now) { "ACTIVE" } else { "EXPIRED" },
                            "create_time": rfc3339_millis(unix_millis(s.created)),
                            "expire_time": rfc3339_millis(unix_millis(s.expires)),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "scim_id": sp.scim_id, "application_id": sp.application_id, "display_name": sp.display_name,
                    "kind": sp.kind.as_str(), "in_workspace": st.members.contains(&sp.principal), "secrets": secrets,
                })
            })
            .collect();
        serde_json::json!({
            "url": self.inner.url, "resource_id": self.inner.resource_id, "workspace_id": self.inner.workspace_id,
            "max_token_lifetime_days": st.max_lifetime_days, "live_tokens": tokens, "throttled": st.throttled,
            "service_principals": sps,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
