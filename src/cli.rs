//! The command line: `serve`, `rotate`, `status`, `check-config` (contract §1).
//!
//! Exit codes: 0 every target ended well; 1 a target failed; 2 configuration or usage error
//! (nothing was changed). `--json` prints one JSON document on stdout; otherwise a table.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::engine::{Engine, RunOptions, StatusRow};
use crate::rotation::model::{Outcome, short_id};

#[derive(Debug, Parser)]
#[command(
    name = "pat-rotator",
    version,
    about = "Keeps Azure Databricks PATs provisioned and rotated in Azure Key Vault"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as the Azure Functions custom handler (HTTP server on 127.0.0.1).
    Serve {
        /// Port (default: FUNCTIONS_CUSTOMHANDLER_PORT, else 8080).
        #[arg(long)]
        port: Option<u16>,
    },
    /// One rotation pass over the configured targets (all, or those named).
    Rotate {
        /// Only this target (repeatable).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        /// Rotate even when the current token is fresh.
        #[arg(long)]
        force: bool,
        /// Decide and report, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON document (an array of result objects) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// For each target: secret version, token id, expiry, days left, whether the token exists.
    Status {
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Parse and validate the configuration and print the targets. No network.
    CheckConfig {
        #[arg(long)]
        json: bool,
    },
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

fn config_or_exit(json: bool) -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        report_config_error(&e, json);
        ExitCode::from(2)
    })
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

pub fn rotate(targets: &[String], force: bool, dry_run: bool, json: bool) -> ExitCode {
    let config = match config_or_exit(json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let budget = config.settings.timer_budget;
    let engine = Engine::new(config);
    let selected = match engine.select(targets) {
        Ok(s) => s,
        Err(e) => {
            if json {
                println!("{}", json!({ "error": { "code": e.code, "message": e.message } }));
            }
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let outcomes = runtime().block_on(engine.run(&selected, RunOptions { force, dry_run, budget }));
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes).expect("outcomes serialise"));
    } else {
        print!("{}", outcome_table(&outcomes));
    }
    if outcomes.iter().all(Outcome::ok) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub fn status(targets: &[String], json: bool) -> ExitCode {
    let config = match config_or_exit(json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let budget = config.settings.http_budget;
    let engine = Engine::new(config);
    let selected = match engine.select(targets) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rows = runtime().block_on(engine.status(&selected, budget));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialise"));
    } else {
        print!("{}", status_table(&rows));
    }
    if rows.iter().all(|r| r.error.is_none()) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub fn check_config(json: bool) -> ExitCode {
    let config = match config_or_exit(json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "targets": config.targets, "settings": config.settings }))
                .expect("config serialises")
        );
    } else {
        let rows: Vec<Vec<String>> = config
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.workspace_url.clone(),
                    t.owner(),
                    if t.workspace_resource_id.is_some() { "management-header".into() } else { "member".into() },
                    format!("{}/secrets/{}", t.key_vault_url, t.secret_name),
                    format!("{}d/{}d/{}h", t.lifetime_days, t.renew_before_days, t.revoke_grace_hours),
                ]
            })
            .collect();
        print!("{}", table(&["TARGET", "WORKSPACE", "OWNER", "ACCESS", "SECRET", "LIFETIME/RENEW/GRACE"], &rows));
        println!(
            "{} target(s); credential {}; concurrency {}",
            config.targets.len(),
            config.settings.credential.as_str(),
            config.settings.max_concurrency
        );
        // The quota is per principal and workspace: targets with their own client_id count
        // against their app's service principal, not the service identity.
        let mut per_owner: std::collections::BTreeMap<(&str, String), usize> = Default::default();
        for t in &config.targets {
            *per_owner.entry((t.workspace_url.as_str(), t.owner())).or_default() += 1;
        }
        for ((ws, owner), n) in per_owner {
            // Each target keeps up to two tokens (current and, within its grace, previous).
            if n * 2 > QUOTA_HEADROOM {
                println!(
                    "warning: {n} targets share workspace {ws} as {owner}; with a current and a previous token each they can exceed Databricks' quota of 600 tokens per identity and workspace"
                );
            }
        }
        for t in &config.targets {
            if let (Some(c), Some(_)) = (&t.client_id, &t.workspace_resource_id) {
                println!(
                    "warning: {}: has client_id {c} and workspace_resource_id; the management-token headers make app {c}'s service principal a workspace admin, which defeats a least-privilege principal (add it as a plain workspace member and drop workspace_resource_id)",
                    t.name
                );
            }
        }
        for t in &config.targets {
            let interval = t.lifetime_days - t.renew_before_days;
            if interval >= 90 {
                println!(
                    "warning: {}: tokens are replaced every {interval} days; Azure Databricks revokes PATs unused for 90 days (pat-rotator re-provisions them, but consumers see a revoked token in between)",
                    t.name
                );
            }
        }
    }
    ExitCode::SUCCESS
}

/// Tokens per identity and workspace that the targets may use before `check-config` warns
/// (Databricks' quota is 600; the rest is left for orphans and the identity's other tokens).
const QUOTA_HEADROOM: usize = 500;

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
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.owner.clone(),
                r.secret_version.as_deref().map(short_id).unwrap_or_else(|| "-".into()),
                r.token_id.as_deref().map(short_id).unwrap_or_else(|| "-".into()),
                r.expires_at.clone().unwrap_or_else(|| "-".into()),
                r.days_left.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                match r.token_exists {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "?".into(),
                },
                r.error.as_ref().map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["TARGET", "OWNER", "SECRET VERSION", "TOKEN", "EXPIRES", "DAYS LEFT", "IN WORKSPACE", "ERROR"], &rows)
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
