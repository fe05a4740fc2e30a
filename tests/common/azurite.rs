//! Azurite, the Azure Storage emulator (npm `azurite`, installed by `scripts/test.sh` into
//! `.venv-azurite`), started by the test itself: blob service only, HTTPS (OAuth needs it) with a
//! certificate made here, `--oauth basic`, in memory. Azurite's basic OAuth decodes the bearer
//! token without checking its signature and accepts it when `nbf`/`iat`/`exp` hold now, `iss`
//! starts with a known Entra issuer (`https://sts.windows.net/`, …) and `aud` is Storage
//! (`https://storage.azure.com`): exactly what the identity emulator issues for that resource.
//!
//! Its access log (stdout) is kept: one line per request with the status, so a test can tell a
//! read (`200`) from a revalidation (`304`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::free_port;

/// The account Azurite serves by default.
pub const ACCOUNT: &str = "devstoreaccount1";

pub fn main_js() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-azurite/node_modules/azurite/dist/src/blob/main.js"))
}

pub struct Azurite {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// The emulators' CA and Azurite's, for `SSL_CERT_FILE`.
    pub ca_bundle: PathBuf,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// A JWT-shaped Storage token Azurite's basic OAuth accepts (for the test's own writes).
fn writer_token() -> String {
    let b64 = |v: serde_json::Value| {
        use base64_url::encode;
        encode(v.to_string().as_bytes())
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(serde_json::json!({"typ": "JWT", "alg": "RS256"})),
        b64(serde_json::json!({"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/test-writer/",
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "oid": "test-writer"}))
    )
}

/// Base64url without padding (just what a JWT needs).
mod base64_url {
    pub fn encode(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..=c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

impl Azurite {
    /// Starts Azurite with a fresh certificate; `emulators_ca` is the PEM the emulators chain to.
    pub fn start(emulators_ca: &str) -> Azurite {
        let dir = std::env::temp_dir().join(format!("pat-rotator-azurite-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, cert_pem, key_pem) = pki();
        std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), key_pem).unwrap();
        let ca_bundle = dir.join("ca-bundle.pem");
        std::fs::write(&ca_bundle, format!("{emulators_ca}\n{ca_pem}")).unwrap();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        let port = free_port();
        let mut child = Command::new("node")
            .arg(main_js())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--oauth", "basic"])
            .arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"))
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start Azurite (node)");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let started = Instant::now();
        while !log.lock().unwrap().iter().any(|l| l.contains("successfully listens")) {
            assert!(started.elapsed() < Duration::from_secs(30), "Azurite did not start: {:?}", log.lock().unwrap());
            if let Ok(Some(status)) = child.try_wait() {
                panic!("Azurite exited ({status}): {:?}", log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder().no_proxy().add_root_certificate(ca).build().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Azurite { child, port, dir, log, ca_bundle, http, rt }
    }

    /// The path-style URL of a blob (what `PAT_TARGETS_BLOB` takes on loopback).
    pub fn url(&self, container: &str, blob: &str) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}/{container}/{blob}", self.port)
    }

    fn send(&self, req: reqwest::RequestBuilder) -> u16 {
        let req = req.header("x-ms-version", "2021-08-06").bearer_auth(writer_token());
        self.rt.block_on(async { req.send().await.expect("Azurite answered").status().as_u16() })
    }

    pub fn create_container(&self, container: &str) {
        let url = format!("https://127.0.0.1:{}/{ACCOUNT}/{container}?restype=container", self.port);
        assert_eq!(self.send(self.http.put(url)), 201);
    }

    /// Writes (or replaces) a block blob.
    pub fn put(&self, container: &str, blob: &str, body: &str) {
        let req = self.http.put(self.url(container, blob)).header("x-ms-blob-type", "BlockBlob").body(body.to_string());
        assert_eq!(self.send(req), 201);
    }

    pub fn delete(&self, container: &str, blob: &str) {
        assert_eq!(self.send(self.http.delete(self.url(container, blob))), 202);
    }

    /// The statuses of every `GET` of `blob` so far (from Azurite's access log, which it writes
    /// after answering: waits up to 3 s for at least `at_least` of them).
    pub fn gets_at_least(&self, container: &str, blob: &str, at_least: usize) -> Vec<u16> {
        let started = Instant::now();
        loop {
            let g = self.gets(container, blob);
            if g.len() >= at_least || started.elapsed() > Duration::from_secs(3) {
                return g;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The statuses of every `GET` of `blob` logged so far.
    pub fn gets(&self, container: &str, blob: &str) -> Vec<u16> {
        let needle = format!("\"GET /{ACCOUNT}/{container}/{blob} ");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.rsplit('"').next()?.split_whitespace().next()?.parse().ok())
            .collect()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and a loopback server certificate it signs: (CA PEM, leaf PEM, leaf key PEM).
fn pki() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "pat-rotator tests' Azurite CA");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem())
}
