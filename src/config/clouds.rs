//! The Azure clouds a workspace can live in, and the one place that tells them apart.
//!
//! Azure Databricks runs in the public cloud, Azure Government and Azure China (21Vianet), and
//! each has its own DNS suffixes and Entra ID audiences. A workspace's cloud is read from its
//! host name, as the Databricks SDKs do: nothing else in the configuration names the cloud, and
//! a second opinion (an `AZURE_ENVIRONMENT` setting, the vault's host) could contradict it.
//! Loopback hosts (the emulators) and anything unrecognised count as the public cloud.

use serde::Serialize;
use url::Url;

/// An Azure cloud, as far as pat-rotator needs to know one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    Public,
    UsGov,
    China,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [Cloud::Public, Cloud::UsGov, Cloud::China];

    /// The cloud of a workspace, from its URL or bare host (`adb-1.2.azuredatabricks.net`).
    pub fn of_workspace(url: &str) -> Cloud {
        let host = host_of(url);
        Cloud::ALL
            .into_iter()
            .find(|c| host.ends_with(c.databricks_host_suffix()) && host.len() > c.databricks_host_suffix().len())
            .unwrap_or(Cloud::Public)
    }

    /// The cloud whose Key Vault serves this host (`kv.vault.azure.net` → public), if any.
    pub fn of_vault_host(host: &str) -> Option<Cloud> {
        let host = host.to_ascii_lowercase();
        Cloud::ALL.into_iter().find(|c| {
            let suffix = c.vault_suffix();
            host.len() > suffix.len() + 1
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        })
    }

    /// For messages.
    pub const fn name(self) -> &'static str {
        match self {
            Cloud::Public => "Azure public cloud",
            Cloud::UsGov => "Azure Government",
            Cloud::China => "Azure China",
        }
    }

    /// The DNS suffix of workspace hosts, with its leading dot.
    pub const fn databricks_host_suffix(self) -> &'static str {
        match self {
            Cloud::Public => ".azuredatabricks.net",
            Cloud::UsGov => ".databricks.azure.us",
            Cloud::China => ".databricks.azure.cn",
        }
    }

    /// The DNS suffix of Key Vault hosts, without a leading dot: a vault named `v` is
    /// `https://v.{suffix}` (what `KEY_VAULT_NAME` expands to).
    pub const fn vault_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::UsGov => "vault.usgovcloudapi.net",
            Cloud::China => "vault.azure.cn",
        }
    }

    /// The DNS suffix of Storage endpoints, without a leading dot: account `a`'s blobs are at
    /// `https://a.blob.{suffix}` (`PAT_TARGETS_BLOB`).
    pub const fn storage_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "core.windows.net",
            Cloud::UsGov => "core.usgovcloudapi.net",
            Cloud::China => "core.chinacloudapi.cn",
        }
    }

    /// The audience (v1 resource) of Key Vault tokens; the scope is this plus `/.default`.
    pub const fn vault_audience(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net",
            Cloud::UsGov => "https://vault.usgovcloudapi.net",
            Cloud::China => "https://vault.azure.cn",
        }
    }

    /// The audience of the `X-Databricks-Azure-SP-Management-Token` header (the "service
    /// management" resource, with its trailing slash; the scope is this plus `/.default`, so the
    /// scope has a double slash, as the Databricks SDKs send it).
    pub const fn management_audience(self) -> &'static str {
        match self {
            Cloud::Public => "https://management.core.windows.net/",
            Cloud::UsGov => "https://management.core.usgovcloudapi.net/",
            Cloud::China => "https://management.core.chinacloudapi.cn/",
        }
    }

    /// The audience of the managed-identity token presented as a federated assertion
    /// (contract §8); Entra documents one per cloud.
    pub const fn token_exchange_audience(self) -> &'static str {
        match self {
            Cloud::Public => "api://AzureADTokenExchange",
            Cloud::UsGov => "api://AzureADTokenExchangeUSGov",
            Cloud::China => "api://AzureADTokenExchangeChina",
        }
    }
}

impl Cloud {
    /// The v2 scope of [`Cloud::vault_audience`].
    pub const fn vault_scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://vault.azure.net/.default",
            Cloud::UsGov => "https://vault.usgovcloudapi.net/.default",
            Cloud::China => "https://vault.azure.cn/.default",
        }
    }

    /// The v2 scope of [`Cloud::management_audience`] (double slash, as the SDKs send it).
    pub const fn management_scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://management.core.windows.net//.default",
            Cloud::UsGov => "https://management.core.usgovcloudapi.net//.default",
            Cloud::China => "https://management.core.chinacloudapi.cn//.default",
        }
    }

    /// The v2 scope of [`Cloud::token_exchange_audience`].
    pub const fn token_exchange_scope(self) -> &'static str {
        match self {
            Cloud::Public => "api://AzureADTokenExchange/.default",
            Cloud::UsGov => "api://AzureADTokenExchangeUSGov/.default",
            Cloud::China => "api://AzureADTokenExchangeChina/.default",
        }
    }
}

/// The DNS suffixes of Azure Databricks workspace hosts (public, US Government, China clouds).
/// Entra ID tokens for Azure Databricks are sent to the workspace, so nothing else may be one.
pub const DATABRICKS_HOST_SUFFIXES: &[&str] = &[
    Cloud::Public.databricks_host_suffix(),
    Cloud::UsGov.databricks_host_suffix(),
    Cloud::China.databricks_host_suffix(),
];

/// The lower-cased host of a URL or of a bare host; empty when there is none.
fn host_of(url: &str) -> String {
    let with_scheme = if url.contains("://") { url.to_string() } else { format!("https://{url}") };
    Url::parse(&with_scheme).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_is_its_audience_and_default() {
        for c in Cloud::ALL {
            assert_eq!(c.vault_scope(), format!("{}/.default", c.vault_audience()));
            assert_eq!(c.management_scope(), format!("{}/.default", c.management_audience()));
            assert_eq!(c.token_exchange_scope(), format!("{}/.default", c.token_exchange_audience()));
        }
    }

    #[test]
    fn workspace_host_picks_the_cloud() {
        for (url, cloud) in [
            ("https://adb-1.2.azuredatabricks.net", Cloud::Public),
            ("adb-1.2.azuredatabricks.net", Cloud::Public),
            ("https://ADB-1.2.AzureDatabricks.net:443", Cloud::Public),
            ("https://adb-1.2.databricks.azure.us", Cloud::UsGov),
            ("adb-1.2.databricks.azure.us", Cloud::UsGov),
            ("https://adb-1.2.databricks.azure.cn", Cloud::China),
            ("https://x.databricks.azure.cn:8443", Cloud::China),
            ("http://127.0.0.1:8080", Cloud::Public),
            ("https://databricks.azure.us", Cloud::Public),
            ("https://adb.databricks.azure.us.evil.com", Cloud::Public),
            ("", Cloud::Public),
        ] {
            assert_eq!(Cloud::of_workspace(url), cloud, "{url}");
        }
    }

    #[test]
    fn vault_hosts_by_cloud() {
        for (host, cloud) in [
            ("kv.vault.azure.net", Some(Cloud::Public)),
            ("KV.Vault.Azure.Net", Some(Cloud::Public)),
            ("kv.vault.usgovcloudapi.net", Some(Cloud::UsGov)),
            ("kv.vault.azure.cn", Some(Cloud::China)),
            ("vault.azure.net", None),
            ("kvvault.azure.net", None),
            ("kv.vault.azure.net.evil.com", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(Cloud::of_vault_host(host), cloud, "{host}");
        }
    }

    #[test]
    fn audiences_per_cloud() {
        let table: Vec<_> = Cloud::ALL
            .iter()
            .map(|c| (c.vault_suffix(), c.vault_audience(), c.management_audience(), c.token_exchange_audience()))
            .collect();
        assert_eq!(
            table,
            [
                (
                    "vault.azure.net",
                    "https://vault.azure.net",
                    "https://management.core.windows.net/",
                    "api://AzureADTokenExchange"
                ),
                (
                    "vault.usgovcloudapi.net",
                    "https://vault.usgovcloudapi.net",
                    "https://management.core.usgovcloudapi.net/",
                    "api://AzureADTokenExchangeUSGov"
                ),
                (
                    "vault.azure.cn",
                    "https://vault.azure.cn",
                    "https://management.core.chinacloudapi.cn/",
                    "api://AzureADTokenExchangeChina"
                ),
            ]
        );
        assert_eq!(DATABRICKS_HOST_SUFFIXES, [".azuredatabricks.net", ".databricks.azure.us", ".databricks.azure.cn"]);
    }
}
