//! Local fakes of the services pat-rotator talks to, for its tests, demo and benchmarks.
//!
//! Everything runs on loopback (`127.0.0.1`, port 0) and behaves like the real service as far
//! as a client can tell: same routes, same JSON shapes, same errors and quirks, real auth
//! decisions. The map:
//!
//! - [`identity`] — [`FakeIdentity`], the App Service / Functions managed-identity endpoint
//!   (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), plain HTTP. Also serves `/_emulator/state`
//!   (see `state`).
//! - [`aad`] — [`FakeAad`], Entra ID's token endpoint for service principals, HTTPS
//!   (`AZURE_AUTHORITY_HOST`): client secrets, and federated identity credentials that trust
//!   the managed-identity fake's tokens for `api://AzureADTokenExchange`.
//! - [`keyvault`] — [`FakeKeyVault`], the Key Vault secrets data plane, HTTPS: challenge,
//!   RBAC, versions (listed in no particular order), paging, soft delete, a clock that can be
//!   frozen, throttling per vault and per subscription ([`KvSubscription`], shared by all vault
//!   fakes of one `Emulators`), a 400 that quotes the submitted value.
//! - [`workspace`] — [`FakeWorkspace`], an Azure Databricks workspace, plain HTTP: the token
//!   API (Entra ID and PAT auth, membership and management-header mode, quota, lifetime cap,
//!   rate limit), the admins' Token Management API (with each PAT's last-use day), service
//!   principals with Databricks OAuth secrets (SCIM, the secrets API, the OIDC token endpoint
//!   and discovery documents, OAuth access tokens).
//! - `relay` — the loopback relay in front of each workspace that lets an answer go out
//!   without `Date` (actix always writes one).
//! - [`directory`] — [`Directory`], shared by all of them: the principals, and every bearer
//!   token the identity and AAD fakes issued, so the others can validate what they receive.
//! - [`faults`] — [`Faults`]/[`Fault`]: per-fake latency, injected failures (status, delay,
//!   hang, "performed but the answer was lost", "answered now, performed later") and the call
//!   log.
//! - [`tls`] — the CA and loopback certificate the HTTPS fakes present.
//! - `ratelimit`, `encoding`, `state` — small internals (throttling windows and bucket,
//!   identifier encodings and a seeded generator, the overview document).
//!
//! [`Emulators::start`] builds all of them at once and gives the environment a pat-rotator
//! process needs ([`Emulators::env`]). Every fake keeps its own loopback port, but all of them
//! are served by **one** actix server (one acceptor thread, [`SERVER_WORKERS`] worker
//! threads) that tells them apart by the local port a connection arrived on, so 100 vaults and
//! 50 workspaces cost a few threads and a few hundred file descriptors, not two threads and
//! seven descriptors each. A client sees exactly what it would see with one server per fake.
//! The server and the workspaces' relays run on one background thread (an actix system).
//! Dropping it stops everything. It is synchronous, so it works from a plain `#[test]` as well
//! as from `#[tokio::test]`.
//!
//! Invariant: no fake ever prints or logs a secret (PAT values, bearer tokens, the identity
//! header). Tests get them only through accessors such as [`FakeWorkspace::issued_values`].

// Handlers return `Result<_, HttpResponse>` where the error *is* the finished HTTP answer
// (401, 429, ...). It is built at most once per request, so its size does not matter, and
// boxing it would only add noise.
#![allow(clippy::result_large_err, reason = "the Err variant is a complete HTTP answer, once per request")]

pub mod aad;
pub mod directory;
mod encoding;
pub mod faults;
pub mod identity;
pub mod keyvault;
mod ratelimit;
mod relay;
mod state;
pub mod tls;
pub mod workspace;

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

pub use aad::{AadOptions, FakeAad, FederatedCredential};
pub use directory::{Directory, IssuedToken, Principal, PrincipalKind};
pub use faults::{BAD_GATEWAY_HTML, Call, Fault, Faults};
pub use identity::{FakeIdentity, IdentityOptions};
pub use keyvault::{FakeKeyVault, KeyVaultOptions, KvSubscription, KvThrottle, Role, StoredVersion, VersionsOrder};
pub use ratelimit::WindowMode;
pub use workspace::{
    FakeWorkspace, OAuthToken, ServicePrincipal, SpKind, SpSecretInfo, TokenInfo, WorkspaceOptions, WsRateLimit,
};

/// What to start, and how the fakes behave initially (most settings can be changed later
/// through the fakes' handles).
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// Number of Databricks workspaces (index 0..n).
    pub workspaces: usize,
    /// Number of key vaults (index 0..m).
    pub vaults: usize,
    /// Latency added to every request of every fake (for benchmarks).
    pub latency: Duration,
    /// Tenant of every principal.
    pub tenant_id: String,
    /// Where to write `ca.pem`; `None` = a fresh temporary directory removed on drop.
    /// A given directory is created if needed and left in place.
    pub dir: Option<PathBuf>,
    /// Managed-identity fake.
    pub identity: IdentityOptions,
    /// AAD fake.
    pub aad: AadOptions,
    /// Every Key Vault fake.
    pub keyvault: KeyVaultOptions,
    /// Every workspace fake.
    pub workspace: WorkspaceOptions,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            workspaces: 1,
            vaults: 1,
            latency: Duration::ZERO,
            tenant_id: directory::DEFAULT_TENANT_ID.to_string(),
            dir: None,
            identity: IdentityOptions::default(),
            aad: AadOptions::default(),
            keyvault: KeyVaultOptions::default(),
            workspace: WorkspaceOptions::default(),
        }
    }
}

/// All fakes, running. Drop to stop them.
pub struct Emulators {
    identity: FakeIdentity,
    aad: FakeAad,
    workspaces: Vec<FakeWorkspace>,
    vaults: Vec<FakeKeyVault>,
    kv_subscription: KvSubscription,
    /// Where the fixed throttling windows start.
    kv_origin: Instant,
    directory: Arc<Directory>,
    ca_pem: String,
    ca_pem_path: PathBuf,
    dir: PathBuf,
    owns_dir: bool,
    /// Application ids registered with [`Emulators::add_oauth_service_principal`], in order.
    oauth_sps: Mutex<Vec<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Worker threads of the one server behind every fake (the machines this runs on have two
/// cores; handlers are async, so latency and hangs do not occupy a worker).
pub const SERVER_WORKERS: usize = 2;

/// A fake behind the shared server.
#[derive(Clone)]
enum Fake {
    Identity(FakeIdentity),
    Aad(FakeAad),
    Vault(FakeKeyVault),
    Workspace(FakeWorkspace),
}

/// Which fake serves which local port.
type Routes = HashMap<u16, Fake>;

/// One listener of the shared server: plain or TLS.
struct Listener {
    socket: TcpListener,
    tls: bool,
}

/// Everything the background thread serves.
struct Plan {
    listeners: Vec<Listener>,
    routes: Routes,
    tls: rustls::ServerConfig,
    /// Relays: the listener clients connect to, and the workspace listener behind it.
    relays: Vec<(TcpListener, std::net::SocketAddr)>,
}

fn loopback_listener() -> io::Result<(TcpListener, u16)> {
    let l = TcpListener::bind(("127.0.0.1", 0))?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

impl Emulators {
    /// Starts every fake.
    ///
    /// # Panics
    /// When a listener cannot be bound or the CA cannot be written (see [`Emulators::try_start`]).
    pub fn start(opts: EmulatorOptions) -> Emulators {
        Self::try_start(opts).unwrap_or_else(|e| panic!("starting the emulators failed: {e}"))
    }

    /// Starts every fake, reporting failures instead of panicking.
    pub fn try_start(opts: EmulatorOptions) -> io::Result<Emulators> {
        let pki = tls::generate().map_err(io::Error::other)?;
        let (dir, owns_dir) = match &opts.dir {
            Some(d) => (d.clone(), false),
            None => (std::env::temp_dir().join(format!("pat-rotator-emulators-{}", encoding::random_hex(12))), true),
        };
        std::fs::create_dir_all(&dir)?;
        let ca_pem_path = dir.join("ca.pem");
        std::fs::write(&ca_pem_path, &pki.ca_pem)?;

        let directory = Directory::new(&opts.tenant_id);
        let mut plan =
            Plan { listeners: Vec::new(), routes: HashMap::new(), tls: pki.server_config, relays: Vec::new() };
        let mut serve = |socket: TcpListener, port: u16, tls: bool, fake: Fake| {
            plan.listeners.push(Listener { socket, tls });
            plan.routes.insert(port, fake);
        };

        let (l, port) = loopback_listener()?;
        let identity =
            FakeIdentity::new(format!("http://127.0.0.1:{port}"), directory.clone(), &opts.identity, opts.latency);
        serve(l, port, false, Fake::Identity(identity.clone()));

        let (l, port) = loopback_listener()?;
        let aad = FakeAad::new(format!("https://127.0.0.1:{port}"), directory.clone(), &opts.aad, opts.latency);
        serve(l, port, true, Fake::Aad(aad.clone()));

        // One clock origin for every fixed throttling window: the vaults and their subscription
        // cross each boundary together.
        let origin = Instant::now();
        let kv_subscription =
            KvSubscription::new(opts.keyvault.subscription_throttle(), opts.keyvault.window_mode, origin);
        let mut vaults = Vec::new();
        for index in 0..opts.vaults {
            let (l, port) = loopback_listener()?;
            let at = keyvault::Placement {
                url: format!("https://127.0.0.1:{port}"),
                index,
                directory: directory.clone(),
                subscription: kv_subscription.clone(),
                origin,
            };
            let kv = FakeKeyVault::new(at, &opts.keyvault, opts.latency);
            serve(l, port, true, Fake::Vault(kv.clone()));
            vaults.push(kv);
        }

        let mut workspaces = Vec::new();
        let mut relays = Vec::new();
        for i in 0..opts.workspaces {
            let (l, backend_port) = loopback_listener()?;
            let port = if opts.workspace.date_relay {
                let (r, p) = loopback_listener()?;
                relays.push((r, l.local_addr()?));
                p
            } else {
                backend_port
            };
            let resource_id =
                opts.workspace.resource_ids.get(i).cloned().unwrap_or_else(|| workspace::default_resource_id(i));
            let ws = FakeWorkspace::new(
                i,
                format!("http://127.0.0.1:{port}"),
                resource_id,
                identity.principal().to_string(),
                directory.clone(),
                &opts.workspace,
                opts.latency,
            );
            serve(l, backend_port, false, Fake::Workspace(ws.clone()));
            workspaces.push(ws);
        }
        plan.relays = relays;

        {
            let (principal, ws, kv) = (identity.principal().to_string(), workspaces.clone(), vaults.clone());
            identity.set_state_source(Box::new(move || state::snapshot(&principal, &ws, &kv)));
        }

        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("pat-rotator-emulators".into())
            .spawn(move || run_server(plan, ready_tx, stop_rx))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("the emulator thread died while starting")),
        }

        Ok(Emulators {
            identity,
            aad,
            workspaces,
            vaults,
            kv_subscription,
            kv_origin: origin,
            directory,
            ca_pem: pki.ca_pem,
            ca_pem_path,
            dir,
            owns_dir,
            oauth_sps: Mutex::new(Vec::new()),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The managed-identity fake.
    pub fn identity(&self) -> &FakeIdentity {
        &self.identity
    }

    /// The AAD fake.
    pub fn aad(&self) -> &FakeAad {
        &self.aad
    }

    /// All workspace fakes, by index.
    pub fn workspaces(&self) -> &[FakeWorkspace] {
        &self.workspaces
    }

    /// All Key Vault fakes, by index.
    pub fn vaults(&self) -> &[FakeKeyVault] {
        &self.vaults
    }

    /// Workspace `i`. Panics when out of range.
    pub fn workspace(&self, i: usize) -> &FakeWorkspace {
        &self.workspaces[i]
    }

    /// Vault `i`. Panics when out of range.
    pub fn vault(&self, i: usize) -> &FakeKeyVault {
        &self.vaults[i]
    }

    /// The subscription-wide Key Vault budget every vault fake counts against.
    pub fn kv_subscription(&self) -> &KvSubscription {
        &self.kv_subscription
    }

    /// Where Key Vault's fixed throttling windows start: window `k` of every vault and of the
    /// subscription is `[origin + k·window, origin + (k+1)·window)` (with
    /// [`WindowMode::Fixed`]).
    pub fn kv_window_origin(&self) -> Instant {
        self.kv_origin
    }

    /// 429s answered by Key Vault throttling, all vaults together (a benchmark's "no 429").
    pub fn kv_throttled_total(&self) -> u64 {
        self.vaults.iter().map(FakeKeyVault::throttled_count).sum()
    }

    /// The shared directory of principals and issued tokens.
    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Tenant id.
    pub fn tenant_id(&self) -> &str {
        self.directory.tenant_id()
    }

    /// PEM of the CA the HTTPS fakes chain to.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of `ca.pem` (the value of `SSL_CERT_FILE`).
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// Directory holding `ca.pem`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers a Databricks-managed service principal that can hold OAuth secrets in every
    /// workspace (a member, not an admin) and lists it in [`Self::env_file_vars`] as
    /// `DATABRICKS_SP_APP_ID_<k>`. Returns it as each workspace knows it (SCIM ids differ).
    pub fn add_oauth_service_principal(&self, application_id: &str, display_name: &str) -> Vec<ServicePrincipal> {
        let sps: Vec<ServicePrincipal> = self
            .workspaces
            .iter()
            .map(|w| w.add_service_principal(application_id, display_name, SpKind::DatabricksManaged))
            .collect();
        let mut known = self.oauth_sps.lock().unwrap_or_else(|e| e.into_inner());
        let app = application_id.to_ascii_lowercase();
        if !known.contains(&app) {
            known.push(app);
        }
        sps
    }

    /// Sets the added latency of every fake.
    pub fn set_latency(&self, latency: Duration) {
        for f in self.all_faults() {
            f.set_latency(latency);
        }
    }

    /// Every fake's [`Faults`]: identity, AAD, vaults, workspaces.
    pub fn all_faults(&self) -> Vec<&Faults> {
        let mut v = vec![self.identity.faults(), self.aad.faults()];
        v.extend(self.vaults.iter().map(FakeKeyVault::faults));
        v.extend(self.workspaces.iter().map(FakeWorkspace::faults));
        v
    }

    /// Environment for a pat-rotator process: `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`,
    /// `SSL_CERT_FILE`, `AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("IDENTITY_ENDPOINT".into(), self.identity.endpoint()),
            ("IDENTITY_HEADER".into(), self.identity.header_value().to_string()),
            ("SSL_CERT_FILE".into(), self.ca_pem_path.display().to_string()),
            ("AZURE_AUTHORITY_HOST".into(), self.aad.url().to_string()),
            ("AZURE_TENANT_ID".into(), self.tenant_id().to_string()),
        ]
    }

    /// [`Self::env`] plus what a demo needs to address the fakes: `REQUESTS_CA_BUNDLE`
    /// (Python clients), `DATABRICKS_HOST_<i>`, `DATABRICKS_WORKSPACE_RESOURCE_ID_<i>`,
    /// `KEY_VAULT_URL_<j>`, `DATABRICKS_SP_APP_ID_<k>` (the principals of
    /// [`Self::add_oauth_service_principal`]; no secrets) and `EMULATOR_STATE_URL`.
    pub fn env_file_vars(&self) -> Vec<(String, String)> {
        let mut v = self.env();
        v.push(("REQUESTS_CA_BUNDLE".into(), self.ca_pem_path.display().to_string()));
        for (i, ws) in self.workspaces.iter().enumerate() {
            v.push((format!("DATABRICKS_HOST_{i}"), ws.url().to_string()));
            v.push((format!("DATABRICKS_WORKSPACE_RESOURCE_ID_{i}"), ws.resource_id().to_string()));
        }
        for (j, kv) in self.vaults.iter().enumerate() {
            v.push((format!("KEY_VAULT_URL_{j}"), kv.url().to_string()));
        }
        for (k, app) in self.oauth_sps.lock().unwrap_or_else(|e| e.into_inner()).iter().enumerate() {
            v.push((format!("DATABRICKS_SP_APP_ID_{k}"), app.clone()));
        }
        v.push(("EMULATOR_STATE_URL".into(), self.identity.state_url()));
        v
    }

    /// Everything about the running fakes as one JSON document (`emulators.json`). Contains
    /// the identity header (inside `env`), so treat it like `env.sh`.
    pub fn info_json(&self) -> serde_json::Value {
        let env: serde_json::Map<String, serde_json::Value> =
            self.env_file_vars().into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        serde_json::json!({
            "env": env,
            "ca_pem": self.ca_pem_path.display().to_string(),
            "tenant_id": self.tenant_id(),
            "identity": {
                "endpoint": self.identity.endpoint(),
                "object_id": self.identity.system_principal().object_id,
                "client_id": self.identity.system_principal().client_id,
            },
            "aad": {"authority_host": self.aad.url(), "token_endpoint": self.aad.token_endpoint()},
            "workspaces": self.workspaces.iter().map(|w| serde_json::json!({
                "url": w.url(), "resource_id": w.resource_id(), "workspace_id": w.workspace_id(),
                "service_principals": w.service_principals().iter().map(|sp| serde_json::json!({
                    "application_id": sp.application_id, "scim_id": sp.scim_id,
                    "display_name": sp.display_name, "kind": sp.kind.as_str(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "vaults": self.vaults.iter().map(|k| serde_json::json!({"url": k.url(), "name": k.name()})).collect::<Vec<_>>(),
            "state_url": self.identity.state_url(),
        })
    }
}

impl Drop for Emulators {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Routes a request to the fake behind the port it arrived on.
async fn dispatch(req: HttpRequest, payload: web::Payload, routes: web::Data<Routes>) -> HttpResponse {
    match routes.get(&req.app_config().local_addr().port()).cloned() {
        Some(Fake::Identity(f)) => identity::handle(req, f).await,
        Some(Fake::Aad(f)) => aad::handle(req, payload, f).await,
        Some(Fake::Vault(f)) => keyvault::handle(req, payload, f).await,
        Some(Fake::Workspace(f)) => workspace::handle(req, payload, f).await,
        None => HttpResponse::InternalServerError().body("no emulator behind this port"),
    }
}

/// Body of the background thread: run the server and the relays until told to stop.
///
/// Server settings: no signal handling (the host process owns signals), no graceful-shutdown
/// wait, `TCP_NODELAY` (without it a small response after a TLS handshake can wait for the
/// client's delayed ACK, adding a whole latency step to some requests), keep-alive long enough
/// that pooled client connections are not closed under a client's feet between test steps,
/// and room for as many concurrent TLS handshakes per worker as a 10,000-target pass opens.
fn run_server(plan: Plan, ready: mpsc::Sender<io::Result<()>>, stop: tokio::sync::oneshot::Receiver<()>) {
    actix_web::rt::System::new().block_on(async move {
        let Plan { listeners, routes, tls, relays } = plan;
        let routes = web::Data::new(routes);
        let mut server =
            HttpServer::new(move || App::new().app_data(routes.clone()).default_service(web::to(dispatch)))
                .workers(SERVER_WORKERS)
                .disable_signals()
                .shutdown_timeout(0)
                .tcp_nodelay(true)
                .keep_alive(Duration::from_secs(120))
                .max_connection_rate(4096);
        for l in listeners {
            let bound = if l.tls { server.listen_rustls_0_23(l.socket, tls.clone()) } else { server.listen(l.socket) };
            server = match bound {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
        }
        for (relay, backend) in relays {
            let listening = relay.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(relay));
            match listening {
                Ok(relay) => {
                    actix_web::rt::spawn(relay::serve(relay, backend));
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
        let running = server.run();
        let handle = running.handle();
        actix_web::rt::spawn(running);
        let _ = ready.send(Ok(()));
        let _ = stop.await;
        handle.stop(false).await;
    });
}
