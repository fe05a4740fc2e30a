//! The shape the design promises (ARCHITECTURE.md): the rotation domain knows neither the
//! configuration nor the transport, and branches on stable codes, never on HTTP; the new target
//! fields are one row each of the configuration's table.

use std::path::Path;

/// Every `.rs` file under `dir`, with its text without comments (line comments and doc
/// comments; the domain has no block comments).
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).expect("read source");
            let code: String = text
                .lines()
                .map(|l| match l.find("//") {
                    // Keep `//` inside string literals such as "https://…".
                    Some(i) if !l[..i].contains('"') => &l[..i],
                    _ => l,
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.push((p.display().to_string(), code));
        }
    }
    out
}

fn domain() -> Vec<(String, String)> {
    let files = sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rotation"));
    assert!(files.len() >= 6, "src/rotation holds the domain: {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    files
}

#[test]
fn the_rotation_imports_neither_config_nor_transport() {
    for (path, code) in domain() {
        for banned in ["crate::config", "crate::transport", "super::super::config", "reqwest", "azure_core", "actix"] {
            assert!(!code.contains(banned), "{path} uses {banned}");
        }
    }
}

#[test]
fn the_rotation_holds_no_http_status() {
    // The statuses a client could branch on. (2xx and durations like 200 ms are not refusals.)
    let statuses = ["400", "401", "403", "404", "408", "409", "410", "412", "429", "500", "502", "503", "504"];
    for (path, code) in domain() {
        for word in ["StatusCode", ".status", "status:", "http::"] {
            assert!(!code.contains(word), "{path} looks at HTTP ({word})");
        }
        for (i, _) in code.match_indices(|c: char| c.is_ascii_digit()) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let literal: String = code[i..].chars().take_while(|c| c.is_ascii_digit() || *c == '_').collect();
            assert!(!statuses.contains(&literal.as_str()), "{path} holds the HTTP status literal {literal}");
        }
    }
}

/// The domain speaks of credentials and secrets, not of Databricks or Key Vault: no vendor
/// error code (an issuer's or a store's error keeps its own code), no Databricks tag name (a
/// kind's tags are its `Profile`'s, a target's are its `Spec`'s), and no import of the clients.
#[test]
fn the_rotation_knows_no_vendor() {
    let banned = [
        "Code::Databricks",
        "Code::Keyvault",
        "crate::azure",
        "crate::databricks",
        "super::super::azure",
        "super::super::databricks",
        "\"databricks-",
        "\"token-expires-at\"",
        "\"previous-token-id\"",
        "\"previous-secret-id\"",
    ];
    for (path, code) in domain() {
        for b in banned {
            assert!(!code.contains(b), "{path} names the vendor: {b}");
        }
    }
}

/// The engine builds each kind's issuer from the kind's own fields, with no fallback from one
/// kind to another (a new kind that forgot its wiring must not silently become a PAT).
#[test]
fn each_kind_owns_its_wiring() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/clients.rs");
    let code = std::fs::read_to_string(&path).expect("read clients.rs");
    let issuer = &code[code.find("pub fn issuer").expect("Clients::issuer")..];
    let body = &issuer[..issuer.find("\n    }\n").expect("end of issuer")];
    assert!(body.contains("Kind::Pat {") && body.contains("Kind::SpOauthSecret {"), "{body}");
    assert!(!body.contains("_ =>"), "Clients::issuer falls back: {body}");
}
