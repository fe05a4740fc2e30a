//! A target as the rest of the program sees it: validated, normalised, with every default
//! applied. How each field is read and checked lives in [`super::fields`], one row per field.

use serde::Serialize;
use url::Url;

/// What a target keeps fresh in its secret (contract §2 `kind`, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A personal access token of the calling identity (or of the `client_id` app's service
    /// principal, §8).
    #[default]
    Pat,
    /// An OAuth secret of the Databricks service principal `service_principal` (§9).
    SpOauthSecret,
}

impl TargetKind {
    pub const ALL: [TargetKind; 2] = [TargetKind::Pat, TargetKind::SpOauthSecret];

    /// The name in `kind` / `PAT_KIND`, in messages and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Pat => "pat",
            TargetKind::SpOauthSecret => "sp_oauth_secret",
        }
    }

    pub fn from_name(s: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One workspace → vault pairing whose credential this program keeps fresh.
///
/// `Default` is the blank the field table fills in; it is not a usable target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Target {
    pub name: String,
    /// Normalised `scheme://host[:port]`, no trailing slash.
    pub workspace_url: String,
    pub workspace_resource_id: Option<String>,
    /// Normalised `https://host[:port]`, no trailing slash.
    pub key_vault_url: String,
    pub secret_name: String,
    pub lifetime_days: u32,
    pub renew_before_days: u32,
    pub revoke_grace_hours: u32,
    pub scopes: Option<Vec<String>>,
    /// `autoscope_enabled` on token create; `None` sends nothing.
    pub autoscope: Option<bool>,
    /// The app registration whose service principal owns this target's PATs (contract §8),
    /// lower case; `None`: the service's own identity owns them.
    pub client_id: Option<String>,
    /// A PAT (the default) or a service principal's OAuth secret (§9).
    pub kind: TargetKind,
    /// For [`TargetKind::SpOauthSecret`]: the application id of the Databricks service
    /// principal whose OAuth secret the target holds, lower case. `None` for PATs.
    pub service_principal: Option<String>,
}

impl Target {
    /// `scheme://host` of the workspace, without port, as written into the `databricks-host` tag.
    pub fn workspace_host(&self) -> String {
        Url::parse(&self.workspace_url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
    }

    /// Every token this program creates for the target has a comment starting with this.
    pub fn comment_prefix(&self) -> String {
        format!("pat-rotator/{}/", self.name)
    }

    /// Whose credentials the target holds, for tables and messages: the service's identity,
    /// an app registration's service principal (§8), or the service principal whose OAuth
    /// secrets it rotates (§9).
    pub fn owner(&self) -> String {
        match (self.kind, &self.client_id, &self.service_principal) {
            (TargetKind::SpOauthSecret, _, Some(sp)) => format!("service principal {sp}"),
            (_, Some(c), _) => format!("app {c}"),
            _ => "service identity".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_serialise_snake_case() {
        for k in TargetKind::ALL {
            assert_eq!(TargetKind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(TargetKind::from_name("PAT"), None);
        assert_eq!(TargetKind::default(), TargetKind::Pat);
    }

    #[test]
    fn owner_host_and_prefix() {
        let mut t = Target {
            name: "a".into(),
            workspace_url: "https://adb-1.2.azuredatabricks.net:8443".into(),
            ..Target::default()
        };
        assert_eq!(t.workspace_host(), "adb-1.2.azuredatabricks.net");
        assert_eq!(t.comment_prefix(), "pat-rotator/a/");
        assert_eq!(t.owner(), "service identity");
        t.client_id = Some("0a1b2c3d-0000-4000-8000-00000000abcd".into());
        assert_eq!(t.owner(), "app 0a1b2c3d-0000-4000-8000-00000000abcd");
        t.client_id = None;
        t.kind = TargetKind::SpOauthSecret;
        t.service_principal = Some("11111111-2222-4333-8444-555555555555".into());
        assert_eq!(t.owner(), "service principal 11111111-2222-4333-8444-555555555555");
    }
}
