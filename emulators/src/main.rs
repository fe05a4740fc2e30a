//! `pat-rotator-emulators`: runs every fake until told to stop, for demos and manual runs.
//!
//! Writes `DIR/ca.pem`, `DIR/env.sh` (`export` lines) and `DIR/emulators.json`, prints exactly
//! one line, `emulators ready`, on stdout once everything listens, and then runs until
//! SIGINT/SIGTERM (or stdin EOF with `--exit-on-stdin-eof`, so a parent process that dies
//! takes the emulators with it). Human-readable details go to stderr, never a secret.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pat_rotator_emulators::{EmulatorOptions, Emulators, VersionsOrder, WindowMode, WsRateLimit};

const USAGE: &str = "usage: pat-rotator-emulators [--dir DIR] [--workspaces N] [--vaults M] [--latency-ms D] \
[--no-kv-throttle] [--kv-window fixed|sliding] [--kv-subscription-factor N|off] [--kv-versions-seed N] \
[--ws-rate BURST/PER_SEC] [--max-lifetime-days N] [--service-principal CLIENT_ID:SECRET]... \
[--federated-app CLIENT_ID]... [--oauth-sp APP_ID]... [--exit-on-stdin-eof]";

struct Args {
    dir: Option<PathBuf>,
    /// `(client_id, secret)` pairs registered with the AAD fake (workspace members, vault officers).
    service_principals: Vec<(String, String)>,
    /// App registrations that trust the system-assigned managed identity through a federated
    /// identity credential (contract §8; workspace members).
    federated_apps: Vec<String>,
    /// Application ids of Databricks-managed service principals (OAuth secrets, contract §9)
    /// registered in every workspace.
    oauth_sps: Vec<String>,
    opts: EmulatorOptions,
    exit_on_stdin_eof: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        dir: None,
        service_principals: Vec::new(),
        federated_apps: Vec::new(),
        oauth_sps: Vec::new(),
        opts: EmulatorOptions::default(),
        exit_on_stdin_eof: false,
    };
    fn value(flag: &str, v: Option<String>) -> Result<String, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))
    }
    fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = value(flag, v)?;
        v.parse().map_err(|_| format!("{flag}: '{v}' is not a valid number"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => args.dir = Some(PathBuf::from(value(&a, it.next())?)),
            "--workspaces" => args.opts.workspaces = number(&a, it.next())?,
            "--vaults" => args.opts.vaults = number(&a, it.next())?,
            "--latency-ms" => args.opts.latency = Duration::from_millis(number(&a, it.next())?),
            "--no-kv-throttle" => args.opts.keyvault.throttle = None,
            "--kv-window" => {
                args.opts.keyvault.window_mode = match value(&a, it.next())?.as_str() {
                    "fixed" => WindowMode::Fixed,
                    "sliding" => WindowMode::Sliding,
                    other => return Err(format!("--kv-window: '{other}' is neither fixed nor sliding")),
                }
            }
            "--kv-subscription-factor" => {
                let v = value(&a, it.next())?;
                args.opts.keyvault.subscription_factor = match v.as_str() {
                    "off" => None,
                    n => {
                        Some(n.parse().map_err(|_| format!("--kv-subscription-factor: '{n}' is not a number or off"))?)
                    }
                }
            }
            "--kv-versions-seed" => {
                args.opts.keyvault.versions_order = VersionsOrder::Shuffled { seed: Some(number(&a, it.next())?) }
            }
            "--ws-rate" => {
                let v = value(&a, it.next())?;
                let (burst, rate) =
                    v.split_once('/').ok_or_else(|| format!("--ws-rate: '{v}' is not BURST/PER_SEC"))?;
                let burst: u32 = burst.parse().map_err(|_| format!("--ws-rate: bad burst '{burst}'"))?;
                let per_second: f64 = rate.parse().map_err(|_| format!("--ws-rate: bad rate '{rate}'"))?;
                args.opts.workspace.rate_limit = Some(WsRateLimit { burst, per_second });
            }
            "--max-lifetime-days" => args.opts.workspace.max_token_lifetime_days = number(&a, it.next())?,
            "--service-principal" => {
                let v = value(&a, it.next())?;
                let (id, secret) = v
                    .split_once(':')
                    .filter(|(i, s)| !i.is_empty() && !s.is_empty())
                    .ok_or_else(|| "--service-principal: expected CLIENT_ID:SECRET".to_string())?;
                args.service_principals.push((id.to_string(), secret.to_string()));
            }
            "--federated-app" => args.federated_apps.push(value(&a, it.next())?),
            "--oauth-sp" => {
                let v = value(&a, it.next())?;
                if !is_guid(&v) {
                    return Err(format!("--oauth-sp: '{v}' is not an application id (a GUID)"));
                }
                args.oauth_sps.push(v.to_ascii_lowercase());
            }
            "--exit-on-stdin-eof" => args.exit_on_stdin_eof = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(args)
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `export NAME='value'` with POSIX single-quote escaping.
fn export_line(name: &str, value: &str) -> String {
    format!("export {name}='{}'\n", value.replace('\'', r"'\''"))
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pat-rotator-emulators: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (dir, remove_dir) = match args.dir {
        Some(d) => (d, false),
        None => (std::env::temp_dir().join(format!("pat-rotator-emulators-{}", std::process::id())), true),
    };
    let mut opts = args.opts;
    opts.dir = Some(dir.clone());
    let emulators = match Emulators::try_start(opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pat-rotator-emulators: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };

    for (client_id, secret) in &args.service_principals {
        let object_id = emulators.aad().add_service_principal(client_id, secret);
        for ws in emulators.workspaces() {
            ws.add_member(&object_id);
        }
        eprintln!("  service principal  client id {client_id}, object id {object_id}");
    }
    for client_id in &args.federated_apps {
        let object_id = emulators.aad().trust_managed_identity(client_id, emulators.identity().principal());
        for ws in emulators.workspaces() {
            ws.add_member(&object_id);
        }
        eprintln!(
            "  federated app      client id {client_id}, object id {object_id}, trusts subject {}",
            emulators.identity().principal()
        );
    }

    for (k, app) in args.oauth_sps.iter().enumerate() {
        let sps = emulators.add_oauth_service_principal(app, &format!("oauth-sp-{k}"));
        let ids: Vec<&str> = sps.iter().map(|s| s.scim_id.as_str()).collect();
        eprintln!("  OAuth principal    application id {app}, SCIM id per workspace {}", ids.join(", "));
    }

    let env_sh: String = emulators.env_file_vars().iter().map(|(k, v)| export_line(k, v)).collect();
    let json = serde_json::to_string_pretty(&emulators.info_json()).unwrap_or_default();
    if let Err(e) =
        write_private(&dir.join("env.sh"), &env_sh).and_then(|()| write_private(&dir.join("emulators.json"), &json))
    {
        eprintln!("pat-rotator-emulators: could not write {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }

    eprintln!("pat-rotator-emulators: files in {}", dir.display());
    eprintln!("  identity endpoint  {}", emulators.identity().endpoint());
    eprintln!("  AAD authority      {}", emulators.aad().url());
    for (i, ws) in emulators.workspaces().iter().enumerate() {
        eprintln!("  workspace {i}        {}  ({})", ws.url(), ws.resource_id());
    }
    for (j, kv) in emulators.vaults().iter().enumerate() {
        eprintln!("  key vault {j}        {}", kv.url());
    }
    eprintln!("  state              {}", emulators.identity().state_url());
    let signals = match StopSignals::install(args.exit_on_stdin_eof) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pat-rotator-emulators: cannot watch signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("emulators ready");
    let _ = std::io::stdout().flush();

    signals.wait();
    eprintln!("pat-rotator-emulators: stopping");
    drop(emulators);
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    ExitCode::SUCCESS
}

/// Watches SIGINT, SIGTERM and (optionally) stdin EOF. Created *before* the ready line is
/// printed, so a signal sent right after it is never lost to the default action.
struct StopSignals {
    rt: tokio::runtime::Runtime,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    eof: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl StopSignals {
    fn install(exit_on_stdin_eof: bool) -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (int, term) = rt.block_on(async {
            Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
        })?;
        let eof = exit_on_stdin_eof.then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let mut sink = [0u8; 1024];
                let mut stdin = std::io::stdin();
                while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                let _ = tx.send(());
            });
            rx
        });
        Ok(StopSignals { rt, int, term, eof })
    }

    /// Blocks until one of the watched events happens.
    fn wait(mut self) {
        self.rt.block_on(async {
            let eof = async {
                match self.eof {
                    Some(rx) => {
                        let _ = rx.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = self.int.recv() => {}
                _ = self.term.recv() => {}
                _ = eof => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_flag() {
        let argv = "--dir /tmp/x --workspaces 3 --vaults 2 --latency-ms 15 --no-kv-throttle --kv-window sliding --kv-subscription-factor off --kv-versions-seed 42 --ws-rate 10/2.5 --max-lifetime-days 90 --service-principal app:s:x --federated-app 0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa --oauth-sp 0B0B0B0B-1111-4111-8111-BBBBBBBBBBBB --exit-on-stdin-eof";
        let a = parse_args(argv.split(' ').map(String::from)).unwrap();
        assert_eq!(a.dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!((a.opts.workspaces, a.opts.vaults), (3, 2));
        assert_eq!(a.opts.latency, Duration::from_millis(15));
        assert!(a.opts.keyvault.throttle.is_none());
        assert_eq!(a.opts.keyvault.window_mode, WindowMode::Sliding);
        assert_eq!(a.opts.keyvault.subscription_factor, None);
        assert_eq!(a.opts.keyvault.versions_order, VersionsOrder::Shuffled { seed: Some(42) });
        let d = parse_args(std::iter::empty()).unwrap();
        assert_eq!((d.opts.keyvault.window_mode, d.opts.keyvault.subscription_factor), (WindowMode::Fixed, Some(5)));
        let f = parse_args(["--kv-subscription-factor".to_string(), "3".to_string()].into_iter()).unwrap();
        assert_eq!(f.opts.keyvault.subscription_factor, Some(3));
        assert!(parse_args(["--kv-window".to_string(), "rolling".to_string()].into_iter()).is_err());
        assert_eq!(a.opts.workspace.rate_limit, Some(WsRateLimit { burst: 10, per_second: 2.5 }));
        assert_eq!(a.opts.workspace.max_token_lifetime_days, 90);
        assert!(a.exit_on_stdin_eof);
        assert_eq!(a.service_principals, vec![("app".to_string(), "s:x".to_string())]);
        assert_eq!(a.federated_apps, vec!["0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa".to_string()]);
        assert_eq!(a.oauth_sps, vec!["0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb".to_string()]);
        assert!(parse_args(["--oauth-sp".to_string(), "not-a-guid".to_string()].into_iter()).is_err());
        assert!(
            parse_args(["--oauth-sp".to_string(), "0b0b0b0b-1111-4111-8111-bbbbbbbbbbb".to_string()].into_iter())
                .is_err()
        );
        assert!(parse_args(["--ws-rate".to_string(), "10".to_string()].into_iter()).is_err());
        assert!(parse_args(["--bogus".to_string()].into_iter()).is_err());
    }

    #[test]
    fn export_lines_quote_safely() {
        assert_eq!(export_line("A", "x'y"), "export A='x'\\''y'\n");
    }
}
