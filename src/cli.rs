//! The command line: `serve`, `rotate`, `status`, `check-config`, `tokens` (contract §1).
//!
//! Exit codes: 0 every target ended well (for `status`: is healthy); 1 a target failed (needs
//! attention); 2 configuration or usage error (nothing was changed). `--json` prints one JSON
//! document on stdout — also for a usage or configuration error, as
//! `{"error":{"code":…,"message":…}}`; otherwise a table. Each subcommand's `--help` lists the
//! settings it reads and the exit codes it uses.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, ConfigError, Kind, TargetKind};
use crate::engine::{Caller, Engine, RunOptions, StatusRow, TokensRow};
use crate::rotation::model::{Outcome, short_id};

/// The settings, in groups, for the `--help` of each subcommand.
const TARGETS_HELP: &str =
    "  PAT_TARGETS                JSON array of targets: name, workspace_url, key_vault_url, secret_name,
                             workspace_resource_id, lifetime_days (90), renew_before_days (30),
                             revoke_grace_hours (24), scopes, autoscope, client_id,
                             kind (pat | sp_oauth_secret), service_principal, keep_while_used
  PAT_TARGETS_FILE           a file holding that array (a fleet that does not fit one setting)
  PAT_TARGETS_BLOB           https:// URL of a blob holding it, read at every invocation (at most one
                             of the three); PAT_ALLOWED_VAULTS: the vault hosts targets may name
  without any of them        one target \"default\" from DATABRICKS_HOST, KEY_VAULT_URL or KEY_VAULT_NAME,
                             PAT_SECRET_NAME, DATABRICKS_WORKSPACE_RESOURCE_ID, PAT_LIFETIME_DAYS,
                             PAT_RENEW_BEFORE_DAYS, PAT_REVOKE_GRACE_HOURS, PAT_SCOPES, PAT_AUTOSCOPE,
                             PAT_CLIENT_ID, PAT_KIND, PAT_SERVICE_PRINCIPAL, PAT_KEEP_WHILE_USED";
const IDENTITY_HELP: &str =
    "  PAT_CREDENTIAL             auto | managed_identity | azure_cli | client_secret | workload_identity:
                             the identity the command acts as (Key Vault, and the PATs it owns)
  AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_FILE
  IDENTITY_ENDPOINT, IDENTITY_HEADER   the managed-identity endpoint (set by Azure Functions)";
const CALLS_HELP: &str =
    "  PAT_MAX_CONCURRENCY (8), PAT_KEYVAULT_FLEET_FACTOR (3), PAT_CALL_TIMEOUT_SECONDS (30), PAT_RETRY_ATTEMPTS (5), PAT_RETRY_BASE_DELAY_MS (500),
  PAT_KV_WRITES_PER_10S (300), PAT_KV_READS_PER_10S (4000), PAT_KV_WINDOW_MS (10000), PAT_WORKSPACE_RPS (30)
  RUST_LOG (info), PAT_LOG_FORMAT (text | json)";
const SERVICE_OBJECT_ID_HELP: &str =
    "  PAT_SERVICE_OBJECT_ID      the deployment identity's object id: rotated_by_another_identity is judged
                             against it (otherwise against the identity the command runs as)";
const SEE_ALSO: &str =
    "See README.md and docs/RUNBOOK.md (every error code and attention reason, its cause and its fix).";

/// `--help` text after the options: the settings a command reads and its exit codes.
fn after_help(settings: &[&str], exit_codes: &str) -> String {
    format!(
        "Settings (environment variables = Function App settings; contract §2):\n{}\n\nExit codes:\n{exit_codes}\n\n{SEE_ALSO}",
        settings.join("\n")
    )
}

fn top_help() -> String {
    after_help(
        &[
            TARGETS_HELP,
            IDENTITY_HELP,
            "  PAT_FORCE_COOLDOWN_MINUTES (15), PAT_TIMER_BUDGET_SECONDS (540), PAT_HTTP_BUDGET_SECONDS (200)",
            SERVICE_OBJECT_ID_HELP,
            CALLS_HELP,
        ],
        "  0  every target ended well (status: every target is healthy)\n  1  a target failed or needs attention (or, for tokens --revoke, an id was refused or not found)\n  2  configuration or usage error; nothing was changed\n\nEach command's --help lists the settings it reads and its exit codes.",
    )
}

fn serve_help() -> String {
    after_help(
        &[
            "  FUNCTIONS_CUSTOMHANDLER_PORT   the port (set by the Functions host; default 8080)",
            TARGETS_HELP,
            IDENTITY_HELP,
            "  PAT_TIMER_BUDGET_SECONDS (540)   RotatePat\n  PAT_HTTP_BUDGET_SECONDS (200)    ProvisionPat, Status (a target not read within 60 s is a timeout)\n  PAT_FORCE_COOLDOWN_MINUTES (15)  ProvisionPat's forced requests\n  ROTATION_SCHEDULE                RotatePat's NCRONTAB (read by the Functions host)",
            SERVICE_OBJECT_ID_HELP,
            CALLS_HELP,
        ],
        "  0  stopped by SIGTERM or SIGINT\n  1  could not listen on 127.0.0.1:PORT\n  2  the port setting is not a port number\n  (An invalid configuration does not stop serve: every invocation answers config_invalid.)",
    )
}

fn rotate_help() -> String {
    after_help(
        &[TARGETS_HELP, IDENTITY_HELP, "  PAT_TIMER_BUDGET_SECONDS (540)   the pass's time budget", CALLS_HELP],
        "  0  every target ended well\n  1  a target failed (its error code in the result, e.g. rotated_by_another_identity)\n  2  configuration or usage error; nothing was changed",
    )
}

fn status_help() -> String {
    after_help(
        &[
            TARGETS_HELP,
            IDENTITY_HELP,
            SERVICE_OBJECT_ID_HELP,
            "  PAT_HTTP_BUDGET_SECONDS (200)    the time budget; a target not read by then is a timeout",
            CALLS_HELP,
        ],
        "  0  every target is healthy\n  1  a target needs attention (the reasons in attention, the ids in details)\n  2  configuration or usage error",
    )
}

fn check_config_help() -> String {
    after_help(
        &[
            TARGETS_HELP,
            IDENTITY_HELP,
            "  PAT_FORCE_COOLDOWN_MINUTES (15), PAT_TIMER_BUDGET_SECONDS (540), PAT_HTTP_BUDGET_SECONDS (200)",
            SERVICE_OBJECT_ID_HELP,
            CALLS_HELP,
        ],
        "  0  the configuration is valid (warnings on stderr)\n  2  the configuration is invalid (every problem is listed)",
    )
}

fn tokens_help() -> String {
    after_help(
        &[TARGETS_HELP, IDENTITY_HELP, "  PAT_HTTP_BUDGET_SECONDS (200)    the time budget", CALLS_HELP],
        "  0  every target was listed (with --revoke: every id revoked)\n  1  a target could not be listed, or an id was refused (the latest version of a configured secret names it) or found nowhere\n  2  configuration or usage error; nothing was changed",
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "pat-rotator",
    version,
    about = "Keeps Azure Databricks PATs and service-principal OAuth secrets provisioned and rotated in Azure Key Vault",
    after_help = top_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the Azure Functions custom handler (HTTP server on 127.0.0.1).
    #[command(after_help = serve_help())]
    Serve {
        /// Port to listen on (default: FUNCTIONS_CUSTOMHANDLER_PORT, else 8080).
        #[arg(long)]
        port: Option<u16>,
    },
    /// One rotation pass over the configured targets (all, or those named).
    #[command(after_help = rotate_help())]
    Rotate {
        /// Only this target (repeatable).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// Rotate even when the current credential is fresh.
        #[arg(long)]
        force: bool,
        /// Incident response for a leaked credential: once the new version is written, revoke
        /// every other credential of the target at once, inside its grace. Needs --force and
        /// at least one --target; refused when another identity wrote the latest version.
        #[arg(long)]
        revoke_superseded: bool,
        /// Write a new version although another identity (the service, say) wrote the latest
        /// one; without it such a target fails with rotated_by_another_identity. Needs at
        /// least one --target.
        #[arg(long)]
        take_ownership: bool,
        /// Decide and report; create, write and revoke nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON document (an array of result objects) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// A health check: for each target its secret, credential, expiry, next rotation, who wrote
    /// it, and what needs attention. Reads only.
    #[command(after_help = status_help())]
    Status {
        /// Only this target (repeatable).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// Print one JSON document (an array of status objects) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Parse and validate the configuration and print the targets. No network, except to read
    /// PAT_TARGETS_BLOB.
    #[command(after_help = check_config_help())]
    CheckConfig {
        /// Print the parsed configuration as one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Do not read PAT_TARGETS_BLOB (check the settings only).
        #[arg(long)]
        offline: bool,
    },
    /// The inventory: every token (or OAuth secret) each target's identity (or principal)
    /// holds, whether it is the target's and whether the vault names it; --revoke removes
    /// legacy or unrecorded ones by id. Says which identity it runs as.
    #[command(after_help = tokens_help())]
    Tokens {
        /// Only this target (repeatable).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// Print one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Revoke this id in every selected target's workspace that holds it (repeatable).
        /// Refused (nothing revoked, exit 1) when the latest version of a configured secret
        /// names one of the ids, or when a target holding one cannot prove which of its
        /// credentials consumers hold (its secret, or one that may name its credentials, reads
        /// as absent or could not be read).
        #[arg(long = "revoke", value_name = "ID")]
        revoke: Vec<String>,
    },
}

/// A command line clap could not parse: `--help` and `--version` as clap prints them; anything
/// else is a usage error, exit 2, and with `--json` among the arguments also one JSON document
/// on stdout (contract §1).
pub fn parse_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let json = std::env::args().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    let rendered = e.render().to_string();
    let first = rendered.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid command line");
    let message = first.strip_prefix("error: ").unwrap_or(first);
    if json {
        println!("{}", json!({ "error": { "code": "invalid_request", "message": message } }));
    }
    let _ = e.print();
    ExitCode::from(2)
}

pub fn port_from_env(flag: Option<u16>) -> Result<u16, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").or_else(|_| std::env::var("FUNCTIONS_HTTPWORKER_PORT")) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|_| format!("FUNCTIONS_CUSTOMHANDLER_PORT: \"{v}\" is not a port number"))
        }
        _ => Ok(8080),
    }
}

/// A usage or configuration error: on stdout as JSON with `--json` (contract §1), always on
/// stderr; exit 2.
fn usage_error(json: bool, code: &str, message: &str) -> ExitCode {
    if json {
        println!("{}", json!({ "error": { "code": code, "message": message } }));
    }
    eprintln!("{message}");
    ExitCode::from(2)
}

fn config_or_exit(json: bool) -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        report_config_error(&e, json);
        ExitCode::from(2)
    })
}

/// The configuration of a command that acts on it, its warnings on stderr.
fn config_warned(json: bool) -> Result<Config, ExitCode> {
    let config = config_or_exit(json)?;
    for w in config_warnings(&config) {
        eprintln!("warning: {w}");
    }
    Ok(config)
}

fn report_config_error(e: &ConfigError, json: bool) {
    if json {
        println!("{}", json!({ "error": { "code": "config_invalid", "message": e.to_string() }, "problems": e.0 }));
    }
    eprintln!("configuration invalid:");
    for p in &e.0 {
        eprintln!("  {p}");
    }
}

/// The command's one runtime (its HTTP connections live on it).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
    })
}

/// The engine over the targets this command reads: with `PAT_TARGETS_BLOB`, the blob is read
/// now, as the caller (contract §2); a read failure or an invalid copy is a configuration error
/// (already reported, exit 2).
fn loaded_engine(config: Config, json: bool) -> Result<Engine, ExitCode> {
    let engine = Engine::new(config);
    if engine.config().blob().is_none() {
        return Ok(engine);
    }
    match runtime().block_on(engine.for_invocation()) {
        Ok(e) => {
            for w in &e.config().warnings {
                eprintln!("warning: {w}");
            }
            Ok(e)
        }
        Err(e) => {
            report_config_error(&ConfigError(vec![e.message]), json);
            Err(ExitCode::from(2))
        }
    }
}

/// The engine for a command that acts on targets, and the names it selects resolved: or the
/// exit code of a configuration or usage error (already reported). `budget` picks the command's
/// time budget from the settings.
fn engine_for(
    json: bool,
    targets: &[String],
    budget: impl Fn(&crate::config::Settings) -> std::time::Duration,
) -> Result<(Engine, std::time::Duration), ExitCode> {
    let config = config_warned(json)?;
    let budget = budget(&config.settings);
    let engine = loaded_engine(config, json)?;
    if let Err(e) = engine.select(targets) {
        return Err(usage_error(json, e.code.as_str(), &e.to_string()));
    }
    Ok((engine, budget))
}

/// What `rotate` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct RotateArgs {
    pub force: bool,
    pub revoke_superseded: bool,
    pub take_ownership: bool,
    pub dry_run: bool,
    pub json: bool,
}

pub fn rotate(targets: &[String], a: RotateArgs) -> ExitCode {
    let json = a.json;
    if a.revoke_superseded && (!a.force || targets.is_empty()) {
        return usage_error(
            json,
            "invalid_request",
            "--revoke-superseded needs --force and at least one --target (it revokes every other credential of the named targets at once)",
        );
    }
    if a.take_ownership && targets.is_empty() {
        return usage_error(
            json,
            "invalid_request",
            "--take-ownership needs at least one --target (it writes over versions another identity wrote, so it names the targets it does that to)",
        );
    }
    let (engine, budget) = match engine_for(json, targets, |s| s.timer_budget) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let selected = engine.select(targets).expect("selection checked by engine_for");
    let opts = RunOptions {
        force: a.force,
        dry_run: a.dry_run,
        revoke_superseded: a.revoke_superseded,
        take_ownership: a.take_ownership,
        caller: Caller::Cli,
        budget,
    };
    let outcomes = runtime().block_on(engine.run(&selected, opts));
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes).expect("outcomes serialise"));
    } else {
        print!("{}", outcome_table(&outcomes));
    }
    if outcomes.iter().all(Outcome::ok) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub fn status(targets: &[String], json: bool) -> ExitCode {
    let (engine, budget) = match engine_for(json, targets, |s| s.http_budget) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let selected = engine.select(targets).expect("selection checked by engine_for");
    let rows = runtime().block_on(engine.status(&selected, budget));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialise"));
    } else {
        print!("{}", status_table(&rows));
    }
    if rows.iter().all(|r| r.healthy) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// `check-config`: the configuration, and with `PAT_TARGETS_BLOB` the blob's targets (its only
/// network call; `--offline` skips it and checks the settings alone).
pub fn check_config(json: bool, offline: bool) -> ExitCode {
    let mut config = match config_or_exit(json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.blob().is_some() && !offline {
        let base_warnings = config.warnings.clone();
        config = match loaded_engine(config, json) {
            Ok(e) => {
                let mut c = e.config().clone();
                // The blob's copy carries the same settings warnings; keep one of each.
                c.warnings.retain(|w| !base_warnings.contains(w));
                c.warnings.splice(0..0, base_warnings);
                c
            }
            Err(code) => return code,
        };
    }
    let warnings = config_warnings(&config);
    if json {
        let doc = json!({ "targets": config.targets, "settings": config.settings, "source": config.source, "warnings": warnings });
        println!("{}", serde_json::to_string_pretty(&doc).expect("config serialises"));
    } else {
        let rows: Vec<Vec<String>> = config
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.kind.name().as_str().to_string(),
                    t.workspace_url.clone(),
                    match t.service_principal() {
                        Some(sp) => format!("principal {sp}"),
                        None => t.owner(),
                    },
                    if t.workspace_resource_id.is_some() { "management-header".into() } else { "member".into() },
                    format!("{}/secrets/{}", t.key_vault_url, t.secret_name),
                    format!("{}d/{}d/{}h", t.lifetime_days, t.renew_before_days, t.revoke_grace_hours),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["TARGET", "KIND", "WORKSPACE", "OWNER", "ACCESS", "SECRET", "LIFETIME/RENEW/GRACE"], &rows)
        );
        let from = match &config.source {
            crate::config::TargetsSource::Flat => "the flat settings".to_string(),
            crate::config::TargetsSource::Setting => "PAT_TARGETS".to_string(),
            crate::config::TargetsSource::File { path } => format!("PAT_TARGETS_FILE {}", path.escape_debug()),
            crate::config::TargetsSource::Blob { url, read: true } => format!("PAT_TARGETS_BLOB {url}"),
            crate::config::TargetsSource::Blob { url, read: false } => {
                format!("PAT_TARGETS_BLOB {url} (not read: --offline)")
            }
        };
        println!(
            "{} target(s) from {from}; credential {}; concurrency {}",
            config.targets.len(),
            config.settings.credential.as_str(),
            config.settings.max_concurrency
        );
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    ExitCode::SUCCESS
}

/// What an operator should know about a valid configuration: settings that are ignored or
/// suspicious (from the parser), the token quota, least privilege, the 90-day inactivity rule.
/// Printed on stderr by every command that reads the configuration.
pub fn config_warnings(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = config.warnings.clone();
    // The PAT quota is per principal and workspace (contract §11): targets with their own
    // client_id count against their app's service principal, not the service identity. OAuth-secret
    // targets hold no PAT. More than PAT_TARGETS_PER_OWNER_REFUSED is a configuration error.
    let all: Vec<&crate::config::Target> = config.targets.iter().collect();
    for ((ws, owner), n) in crate::config::pat_targets_per_owner(&all) {
        if n > crate::config::PAT_TARGETS_PER_OWNER_WARNED {
            out.push(format!(
                "{n} pat targets share workspace {ws} as {owner}; with a current and a previous token each (up to 6 when rotations are forced) they approach Databricks' quota of 600 tokens per identity and workspace (more than {} is refused); give some of them their own client_id",
                crate::config::PAT_TARGETS_PER_OWNER_REFUSED
            ));
        }
    }
    for t in &config.targets {
        if let (Some(c), Some(_)) = (t.client_id(), &t.workspace_resource_id) {
            out.push(format!(
                "{}: has client_id {c} and workspace_resource_id; the management-token headers make app {c}'s service principal a workspace admin, which defeats a least-privilege principal (add it as a plain workspace member and drop workspace_resource_id)",
                t.name
            ));
        }
        match &t.kind {
            Kind::SpOauthSecret { service_principal } => out.push(format!(
                "{}: an OAuth-secret target needs the service's identity to be a workspace admin of {} (management-header mode with workspace_resource_id, or a member of the workspace's admins group) to manage principal {service_principal}'s secrets",
                t.name, t.workspace_url
            )),
            Kind::Pat { keep_while_used: true, .. } => out.push(format!(
                "{}: keep_while_used reads each superseded token's last use from the Token Management API, which needs workspace admin on {}; without it the target warns and falls back to the plain grace",
                t.name, t.workspace_url
            )),
            Kind::Pat { .. } => {}
        }
        if t.renew_before_days < EVENT_RENEW_DAYS {
            out.push(format!(
                "{}: renew_before_days is {}, less than {EVENT_RENEW_DAYS}: where Key Vault's events are delivered to SecretEvent, SecretNearExpiry ({EVENT_RENEW_DAYS} days before the secret's expiry) rotates the target then, earlier than renew_before_days says",
                t.name, t.renew_before_days
            ));
        }
        let interval = t.lifetime_days - t.renew_before_days;
        if t.kind.name() == TargetKind::Pat && interval >= 90 {
            out.push(format!(
                "{}: tokens are replaced every {interval} days; Azure Databricks revokes PATs unused for 90 days (pat-rotator re-provisions them, but consumers see a revoked token in between)",
                t.name
            ));
        }
    }
    // Contract §9: two targets may share a principal (three or more are refused); its limit of
    // five secrets is shared too.
    let mut by_principal: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for t in &config.targets {
        if let Some(sp) = t.service_principal() {
            by_principal.entry(sp).or_default().push(t.name.as_str());
        }
    }
    for (sp, names) in by_principal.into_iter().filter(|(_, n)| n.len() == 2) {
        out.push(format!(
            "{} and {} share service principal {sp}: its limit of five OAuth secrets is account-wide and shared, so each target has room for little more than its current and previous secret; a rotation that finds no room fails with databricks_quota_exceeded",
            names[0], names[1]
        ));
    }
    out
}

/// Days before a secret's expiry at which Key Vault raises `SecretNearExpiry`, and within which
/// an event-started run rotates (contract §10).
const EVENT_RENEW_DAYS: u32 = crate::rotation::rules::EVENT_EXPIRY_WINDOW.whole_days() as u32;

/// `pat-rotator tokens`: the inventory, or `--revoke`.
pub fn tokens(targets: &[String], json: bool, revoke: &[String]) -> ExitCode {
    let (engine, budget) = match engine_for(json, targets, |s| s.http_budget) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let selected = engine.select(targets).expect("selection checked by engine_for");
    if !revoke.is_empty() {
        let report = runtime().block_on(engine.revoke_ids(&selected, revoke, budget));
        if json {
            let revoked: Vec<_> = report.revoked.iter().map(|(id, t)| json!({ "token_id": id, "target": t })).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "revoked": revoked,
                    "errors": report.errors,
                    "consulted_secrets": report.consulted,
                }))
                .expect("serialises")
            );
        } else {
            for (id, t) in &report.revoked {
                println!("revoked {id} (target {t})");
            }
            println!(
                "checked against the latest versions of {} configured secret(s): an id one of them names is never revoked",
                report.consulted
            );
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let rt = runtime();
    // Contract §10: the tokens of a PAT target without client_id are the caller's, so say who
    // the caller is.
    let identity = selected.first().and_then(|t| rt.block_on(engine.identity(t)));
    let rows = rt.block_on(engine.inventory(&selected, budget));
    for note in rows.iter().flat_map(|r| &r.notes) {
        eprintln!("note: {note}");
    }
    if json {
        let mut doc = serde_json::to_value(&rows).expect("rows serialise");
        for row in doc.as_array_mut().into_iter().flatten() {
            row["identity"] = json!(identity);
        }
        println!("{}", serde_json::to_string_pretty(&doc).expect("rows serialise"));
    } else {
        println!(
            "identity: {} (a PAT target without client_id lists this identity's tokens)",
            identity.as_deref().unwrap_or("unknown (its object id could not be read)")
        );
        print!("{}", tokens_table(&rows));
    }
    if rows.iter().all(|r| r.error.is_none()) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub fn tokens_table(rows: &[TokensRow]) -> String {
    let mut out = Vec::new();
    for r in rows {
        for t in &r.tokens {
            out.push(vec![
                r.target.clone(),
                t.token_id.clone(),
                t.comment.clone().unwrap_or_else(|| "-".into()),
                t.created_at.clone().unwrap_or_else(|| "-".into()),
                t.expires_at.clone().unwrap_or_else(|| "never".into()),
                if t.managed { "yes".into() } else { "no".into() },
                if t.in_vault { "yes".into() } else { "no".into() },
                t.last_used_day.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        if let Some(e) = &r.error {
            out.push(vec![
                r.target.clone(),
                "-".into(),
                format!("error {}: {}", e.code, e.message),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    table(&["TARGET", "ID", "COMMENT", "CREATED", "EXPIRES", "MANAGED", "IN VAULT", "LAST USED"], &out)
}

pub fn outcome_table(outcomes: &[Outcome]) -> String {
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                o.target.clone(),
                o.action.as_str().to_string(),
                o.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
                o.token_id.as_deref().map(short_id).unwrap_or_default(),
                o.expires_at.clone().unwrap_or_default(),
                o.revoked_token_ids.len().to_string(),
                o.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["TARGET", "ACTION", "REASON", "TOKEN", "EXPIRES", "REVOKED", "ERROR"], &rows)
}

pub fn status_table(rows: &[StatusRow]) -> String {
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.owner.clone(),
                if r.healthy {
                    "ok".into()
                } else if r.attention.is_empty() {
                    "unhealthy".into()
                } else {
                    r.attention.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")
                },
                r.secret_version.as_deref().map(short_id).unwrap_or_else(dash),
                r.token_id.as_deref().map(short_id).unwrap_or_else(dash),
                r.expires_at.clone().unwrap_or_else(dash),
                r.days_left.map(|d| d.to_string()).unwrap_or_else(dash),
                r.next_rotation_at.clone().unwrap_or_else(dash),
                r.rotated_by.as_deref().map(short_id).unwrap_or_else(dash),
                match r.token_exists {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "?".into(),
                },
                if r.details.is_empty() {
                    dash()
                } else {
                    r.details.iter().map(|(k, ids)| format!("{k}: {}", ids.join(","))).collect::<Vec<_>>().join("; ")
                },
                r.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "TARGET",
            "OWNER",
            "HEALTH",
            "SECRET VERSION",
            "TOKEN",
            "EXPIRES",
            "DAYS LEFT",
            "NEXT ROTATION",
            "ROTATED BY",
            "IN WORKSPACE",
            "DETAILS",
            "ERROR",
        ],
        &rows,
    )
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
