//! Normalising and validating the two URLs of a target, and showing a URL in a message.
//!
//! Both URLs receive Entra ID tokens, so what may be one is narrow: `https://` (plain `http://`
//! only for a loopback workspace emulator), a host, an optional port, nothing else. A URL is
//! stored as `scheme://host[:port]`, so two spellings of one vault compare equal.
//!
//! Configuration errors end up in the log, in every HTTP 500 body and on the terminal. A URL
//! that carries userinfo (`https://user:password@host`), a query (`?sig=…`) or a fragment may
//! carry a credential, so such a URL is never echoed as written: [`shown`] keeps only its scheme
//! and host, and hides even the host when the input is too malformed to tell where the
//! credential ends.

use url::{Host, Url};

use super::clouds::{Cloud, DATABRICKS_HOST_SUFFIXES};

/// True for the hosts that only local emulators use: 127.0.0.0/8, ::1, localhost.
pub fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

pub fn url_is_loopback(url: &str) -> bool {
    Url::parse(url).ok().and_then(|u| u.host().map(|h| is_loopback_host(&h))).unwrap_or(false)
}

/// `scheme://host[:port]` of `input` (a URL or a bare host, which means https), or why not.
fn base_url(input: &str, allow_http_loopback: bool) -> Result<String, String> {
    let with_scheme = if input.contains("://") { input.to_string() } else { format!("https://{input}") };
    let url = Url::parse(&with_scheme).map_err(|e| format!("is not a valid URL ({e})"))?;
    let host = url.host().ok_or_else(|| "has no host".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http_loopback && is_loopback_host(&host) => {}
        "http" if allow_http_loopback => {
            return Err("must use https:// (http:// is only allowed for loopback emulators)".into());
        }
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password (shown here without them)".into());
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err("must not have a path".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment (shown here without it)".into());
    }
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    Ok(s)
}

pub fn normalize_workspace_url(input: &str) -> Result<String, String> {
    let url = base_url(input, true)?;
    let parsed = Url::parse(&url).map_err(|e| format!("is not a valid URL ({e})"))?;
    let loopback = parsed.host().is_some_and(|h| is_loopback_host(&h));
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let databricks = DATABRICKS_HOST_SUFFIXES.iter().any(|s| host.ends_with(s) && host.len() > s.len());
    if !loopback && !databricks {
        return Err(format!(
            "is not an Azure Databricks workspace host (one ending in {}, or loopback for emulators); Entra ID tokens are sent to it",
            DATABRICKS_HOST_SUFFIXES.join(", ")
        ));
    }
    Ok(url)
}

pub fn normalize_vault_url(input: &str) -> Result<String, String> {
    if input.starts_with("http://") {
        return Err("must be an https:// URL (Key Vault requires TLS, also for emulators)".into());
    }
    base_url(input, false)
}

/// `PAT_TARGETS_BLOB` (contract §2): `https://<account>.blob.<storage suffix of a cloud>/<container>/<blob>`,
/// or on a loopback host Azurite's path-style `https://127.0.0.1:PORT/<account>/<container>/<blob>`;
/// never userinfo, a query (a SAS) or a fragment, since a Storage token is sent to it.
/// Returns the URL as it will be requested.
pub fn normalize_blob_url(input: &str) -> Result<String, String> {
    if !input.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return Err("must be an https:// URL (a Storage token is sent to it)".into());
    }
    let url = Url::parse(input).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password (shown here without them)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment: no SAS, the blob is read with the service's identity (shown here without it)".into());
    }
    let host = url.host().ok_or_else(|| "has no host".to_string())?;
    let segments: Vec<&str> = url.path().trim_start_matches('/').splitn(3, '/').collect();
    let valid_account =
        |a: &str| (3..=24).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let (container, blob) = if is_loopback_host(&host) {
        match segments.as_slice() {
            [account, container, blob] if valid_account(account) => (*container, *blob),
            _ => {
                return Err(
                    "on a loopback host (Azurite) must be https://HOST:PORT/<account>/<container>/<blob>".into()
                );
            }
        }
    } else {
        let name = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let account = Cloud::ALL.iter().find_map(|c| name.strip_suffix(&format!(".blob.{}", c.storage_suffix())));
        if !account.is_some_and(valid_account) {
            let hosts: Vec<String> =
                Cloud::ALL.iter().map(|c| format!("<account>.blob.{}", c.storage_suffix())).collect();
            return Err(format!("is not a blob endpoint of Azure Storage ({}) or a loopback host", hosts.join(", ")));
        }
        if url.port().is_some() {
            return Err("must not name a port".into());
        }
        match segments.as_slice() {
            [container, rest @ ..] if !rest.is_empty() => (*container, &url.path()[container.len() + 2..]),
            _ => {
                return Err(
                    "must name a container and a blob: https://<account>.blob.<suffix>/<container>/<blob>".into()
                );
            }
        }
    };
    let valid_container = (3..=63).contains(&container.len())
        && container.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if !valid_container {
        return Err(format!(
            "container \"{}\" is not a container name (3-63 lower-case letters, digits and single hyphens)",
            container.escape_debug()
        ));
    }
    if blob.is_empty() || blob.ends_with('/') {
        return Err("must name a blob after the container".into());
    }
    Ok(url.to_string())
}

/// What stands for the host when it cannot be told apart from a credential.
const HIDDEN_HOST: &str = "[host not shown]";

/// How a URL from the configuration may appear in a message: as written when it has no `@`,
/// `?` or `#` (control characters escaped); otherwise only `scheme://host`. The host is the
/// part after the last `@` of the authority, which is where every URL parser looks for it; when
/// an `@` comes after the authority ends (a password containing `/`, `?` or `#`, or an `@` in a
/// query) the host is hidden too, since what a parser takes for the host might then be a piece
/// of the credential.
pub fn shown(input: &str) -> String {
    if !input.contains(['@', '?', '#']) {
        return input.escape_debug().to_string();
    }
    let (scheme, rest) = match input.split_once("://") {
        // Only the two schemes a target URL can have are echoed; anything else might be a
        // credential pasted in front of "://".
        Some((s, r)) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("http") => {
            (s.to_ascii_lowercase(), r)
        }
        Some((_, r)) => ("[scheme not shown]".to_string(), r),
        None => ("https".to_string(), input),
    };
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if rest[end..].contains('@') {
        return format!("{scheme}://{HIDDEN_HOST}");
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| format!("[{h}]")).unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default().to_string(),
    };
    let plausible = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
    if plausible { format!("{scheme}://{host}") } else { format!("{scheme}://{HIDDEN_HOST}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_http_workspace_except_loopback() {
        assert!(normalize_workspace_url("http://adb.example.net").is_err());
        assert_eq!(normalize_workspace_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert!(normalize_vault_url("http://127.0.0.1:8443").is_err());
        assert_eq!(normalize_vault_url("https://127.0.0.1:8443").unwrap(), "https://127.0.0.1:8443");
        assert!(normalize_workspace_url("https://host/path").is_err());
        assert!(normalize_workspace_url("https://user:pw@host").is_err());
    }

    #[test]
    fn normalises_to_scheme_host_port() {
        for (input, want) in [
            ("adb-1.2.azuredatabricks.net", "https://adb-1.2.azuredatabricks.net"),
            ("https://ADB-1.2.azuredatabricks.net/", "https://adb-1.2.azuredatabricks.net"),
            ("https://adb-1.2.azuredatabricks.net:443", "https://adb-1.2.azuredatabricks.net"),
            ("https://adb-1.2.azuredatabricks.net:8443", "https://adb-1.2.azuredatabricks.net:8443"),
            ("http://localhost:1", "http://localhost:1"),
            ("http://[::1]:9", "http://[::1]:9"),
        ] {
            assert_eq!(normalize_workspace_url(input).as_deref(), Ok(want), "{input}");
        }
        assert_eq!(normalize_vault_url("kv.vault.azure.net").as_deref(), Ok("https://kv.vault.azure.net"));
    }

    #[test]
    fn workspace_hosts_are_azure_databricks_or_loopback() {
        for ok in [
            "adb-1.2.azuredatabricks.net",
            "https://x.databricks.azure.us",
            "x.databricks.azure.cn",
            "http://127.0.0.1:8080",
            "http://localhost:1",
        ] {
            assert!(normalize_workspace_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example.com",
            "https://azuredatabricks.net",
            "https://adb.azuredatabricks.net.evil.com",
            "https://10.0.0.1",
        ] {
            let e = normalize_workspace_url(bad).unwrap_err();
            assert!(e.contains("not an Azure Databricks workspace host"), "{bad}: {e}");
        }
    }

    /// Contract §2: a blob of a cloud's Storage, or Azurite's path style on loopback; no SAS,
    /// userinfo or fragment; https only.
    #[test]
    fn blob_urls() {
        for ok in [
            "https://acct1.blob.core.windows.net/targets/fleet.json",
            "https://acct1.blob.core.windows.net/targets/dir/fleet.json",
            "https://ACCT1.blob.core.usgovcloudapi.net/targets/fleet.json",
            "https://acct1.blob.core.chinacloudapi.cn/targets/fleet.json",
            "https://127.0.0.1:10000/devstoreaccount1/targets/fleet.json",
            "https://localhost:10000/devstoreaccount1/targets/a/b.json",
        ] {
            assert!(normalize_blob_url(ok).is_ok(), "{ok}: {:?}", normalize_blob_url(ok));
        }
        assert_eq!(
            normalize_blob_url("https://ACCT1.blob.core.windows.net/targets/fleet.json").unwrap(),
            "https://acct1.blob.core.windows.net/targets/fleet.json"
        );
        for (bad, why) in [
            ("http://acct1.blob.core.windows.net/c1c/b", "https://"),
            ("acct1.blob.core.windows.net/c1c/b", "https://"),
            ("https://acct1.blob.core.windows.net/c1c/b?sv=2020&sig=abc", "no SAS"),
            ("https://acct1.blob.core.windows.net/c1c/b?", "no SAS"),
            ("https://acct1.blob.core.windows.net/c1c/b#x", "fragment"),
            ("https://u:p@acct1.blob.core.windows.net/c1c/b", "user name"),
            ("https://acct1.blob.core.windows.net.evil.com/c1c/b", "not a blob endpoint"),
            ("https://acct1.file.core.windows.net/c1c/b", "not a blob endpoint"),
            ("https://evil.example.com/c1c/b", "not a blob endpoint"),
            ("https://a.blob.core.windows.net/c1c/b", "not a blob endpoint"),
            ("https://acct1.blob.core.windows.net:8443/c1c/b", "port"),
            ("https://acct1.blob.core.windows.net/c1c", "container and a blob"),
            ("https://acct1.blob.core.windows.net/c1c/", "blob after"),
            ("https://acct1.blob.core.windows.net/C1C/b", "container"),
            ("https://acct1.blob.core.windows.net/c--c/b", "container"),
            ("https://127.0.0.1:10000/targets/fleet.json", "loopback"),
            ("https://127.0.0.1:10000/devstoreaccount1/targets/", "blob after"),
        ] {
            let e = normalize_blob_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("sig=abc") && !e.contains("u:p"), "{bad}: {e}");
        }
    }

    #[test]
    fn userinfo_query_and_fragment_are_refused() {
        for bad in [
            "https://user:pw@kv.vault.azure.net",
            "https://user@kv.vault.azure.net",
            "https://:pw@kv.vault.azure.net",
            "https://kv.vault.azure.net?sig=x",
            "https://kv.vault.azure.net/?sig=x",
            "https://kv.vault.azure.net#x",
            "https://kv.vault.azure.net?",
        ] {
            assert!(normalize_vault_url(bad).is_err(), "{bad}");
            let ws = bad.replace("kv.vault.azure.net", "adb-1.2.azuredatabricks.net");
            assert!(normalize_workspace_url(&ws).is_err(), "{ws}");
        }
    }

    /// What a message may show of a URL: never a credential, as much of the host as is safe.
    #[test]
    fn shown_keeps_only_scheme_and_host() {
        for (input, want) in [
            ("https://kv.vault.azure.net", "https://kv.vault.azure.net"),
            ("not a url at all", "not a url at all"),
            ("https://ex\nample", "https://ex\\nample"),
            ("https://user:s3cret@kv.vault.azure.net", "https://kv.vault.azure.net"),
            ("https://user:s3cret@kv.vault.azure.net:8443/x?y#z", "https://kv.vault.azure.net"),
            ("HTTPS://a@b@kv.vault.azure.net", "https://kv.vault.azure.net"),
            ("user:s3cret@kv.vault.azure.net", "https://kv.vault.azure.net"),
            ("https://kv.vault.azure.net?sig=s3cret", "https://kv.vault.azure.net"),
            ("https://kv.vault.azure.net/?sig=s3cret", "https://kv.vault.azure.net"),
            ("https://kv.vault.azure.net#s3cret", "https://kv.vault.azure.net"),
            ("https://user:s3cret@[::1]:8443", "https://[::1]"),
            // A password holding '/', '?' or '#': the authority ends inside it.
            ("https://user:s3/cret@kv.vault.azure.net", "https://[host not shown]"),
            ("https://s3cr#et@kv.vault.azure.net", "https://[host not shown]"),
            ("https://user:s3?cret@kv.vault.azure.net", "https://[host not shown]"),
            ("https://kv.vault.azure.net/?sig=s3@cret", "https://[host not shown]"),
            ("ht@tp://s3cret", "[scheme not shown]://s3cret"),
            ("s3cret://kv.vault.azure.net?x", "[scheme not shown]://kv.vault.azure.net"),
            ("https://us er:s3cret@k v", "https://[host not shown]"),
            ("https://user:s3cret@", "https://[host not shown]"),
        ] {
            assert_eq!(shown(input), want, "{input:?}");
        }
    }

    /// Whatever the input, a message never holds the text that follows the host: fuzz the
    /// credential's position and characters.
    #[test]
    fn shown_never_leaks_a_credential() {
        let secret = "Zq8vS3cret";
        let seps = ["", "/", "?", "#", ":", "@", "\\", " "];
        for a in seps {
            for b in seps {
                for input in [
                    format!("https://user:{a}{secret}{b}@kv.vault.azure.net"),
                    format!("https://{a}{secret}{b}@kv.vault.azure.net"),
                    format!("https://kv.vault.azure.net/?sig={a}{secret}{b}"),
                    format!("https://kv.vault.azure.net#{a}{secret}{b}"),
                    format!("{a}{secret}{b}@kv.vault.azure.net"),
                    format!("{a}{secret}{b}://kv.vault.azure.net?x"),
                ] {
                    let s = shown(&input);
                    assert!(!s.contains("S3cret"), "{input:?} shown as {s:?}");
                    if let Err(why) = normalize_vault_url(&input) {
                        assert!(!why.contains("S3cret"), "{input:?}: {why}");
                    }
                }
            }
        }
    }
}
