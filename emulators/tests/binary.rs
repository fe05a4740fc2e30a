//! The `pat-rotator-emulators` binary: ready line, written files, and shutdown on stdin EOF
//! and on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("emu-bin-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "binary did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn writes_files_prints_ready_and_exits_on_stdin_eof() {
    let dir = temp_dir("eof");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pat-rotator-emulators"))
        .args(["--dir", dir.to_str().unwrap(), "--workspaces", "2", "--vaults", "3", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "emulators ready\n");

    let env_sh = std::fs::read_to_string(dir.join("env.sh")).unwrap();
    for name in [
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "SSL_CERT_FILE",
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "DATABRICKS_HOST_0",
        "DATABRICKS_HOST_1",
        "DATABRICKS_WORKSPACE_RESOURCE_ID_1",
        "KEY_VAULT_URL_2",
        "EMULATOR_STATE_URL",
    ] {
        assert!(env_sh.contains(&format!("export {name}='")), "{name} missing from env.sh");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("emulators.json")).unwrap()).unwrap();
    assert_eq!(json["vaults"].as_array().unwrap().len(), 3);
    assert!(dir.join("ca.pem").exists());
    let state_url = json["state_url"].as_str().unwrap();
    let addr = state_url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_ok(), "servers listen");

    drop(child.stdin.take());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let header = json["env"]["IDENTITY_HEADER"].as_str().unwrap();
    assert!(!err.contains(header), "the identity header is never printed");
    assert!(std::net::TcpStream::connect(addr).is_err(), "servers stopped");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exits_on_sigterm() {
    let dir = temp_dir("term");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pat-rotator-emulators"))
        .args(["--dir", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "emulators ready\n");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rejects_bad_arguments_with_exit_2() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_pat-rotator-emulators")).args(["--workspaces", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn registers_oauth_service_principals_without_printing_secrets() {
    let dir = temp_dir("oauth");
    let app = "0b0b0b0b-1111-4111-8111-bbbbbbbbbbbb";
    let mut child = Command::new(env!("CARGO_BIN_EXE_pat-rotator-emulators"))
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--workspaces",
            "2",
            "--oauth-sp",
            &app.to_uppercase(),
            "--exit-on-stdin-eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "emulators ready\n");
    let env_sh = std::fs::read_to_string(dir.join("env.sh")).unwrap();
    assert!(env_sh.contains(&format!("export DATABRICKS_SP_APP_ID_0='{app}'")), "{env_sh}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("emulators.json")).unwrap()).unwrap();
    for ws in json["workspaces"].as_array().unwrap() {
        let sp = &ws["service_principals"][0];
        assert_eq!(sp["application_id"], app);
        assert_eq!(sp["kind"], "databricks_managed");
        assert!(sp["scim_id"].as_str().unwrap().parse::<i64>().is_ok());
    }
    drop(child.stdin.take());
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    std::fs::remove_dir_all(&dir).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_pat-rotator-emulators")).args(["--oauth-sp", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--oauth-sp"));
}
