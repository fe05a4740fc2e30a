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

/// What a target keeps fresh, with the fields only that kind has: each kind owns its wiring
/// (the engine builds its issuer from this, with no fallback from one kind to the other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A personal access token of the calling identity, or of the `client_id` app's service
    /// principal (§8).
    Pat {
        scopes: Option<Vec<String>>,
        /// `autoscope_enabled` on token create; `None` sends nothing.
        autoscope: Option<bool>,
        /// The app registration whose service principal owns this target's PATs (contract §8),
        /// lower case; `None`: the service's own identity owns them.
        client_id: Option<String>,
        /// A superseded token still in use is kept past its grace (§10).
        keep_while_used: bool,
    },
    /// An OAuth secret of the Databricks service principal whose application id (lower case)
    /// this is (§9).
    SpOauthSecret { service_principal: String },
}

impl Default for Kind {
    fn default() -> Self {
        Kind::blank(TargetKind::Pat)
    }
}

impl Kind {
    /// A kind with none of its fields set yet (the field table fills them in).
    pub fn blank(k: TargetKind) -> Kind {
        match k {
            TargetKind::Pat => Kind::Pat { scopes: None, autoscope: None, client_id: None, keep_while_used: false },
            TargetKind::SpOauthSecret => Kind::SpOauthSecret { service_principal: String::new() },
        }
    }

    pub fn name(&self) -> TargetKind {
        match self {
            Kind::Pat { .. } => TargetKind::Pat,
            Kind::SpOauthSecret { .. } => TargetKind::SpOauthSecret,
        }
    }
}

/// `check-config --json` shows every field of every target, `null` where the kind has none.
impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use super::fields::{AUTOSCOPE, CLIENT_ID, KEEP_WHILE_USED, KIND, SCOPES, SERVICE_PRINCIPAL};
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry(KIND.key, &self.name())?;
        match self {
            Kind::Pat { scopes, autoscope, client_id, keep_while_used } => {
                m.serialize_entry(SCOPES.key, scopes)?;
                m.serialize_entry(AUTOSCOPE.key, autoscope)?;
                m.serialize_entry(CLIENT_ID.key, client_id)?;
                m.serialize_entry(KEEP_WHILE_USED.key, keep_while_used)?;
                m.serialize_entry(SERVICE_PRINCIPAL.key, &None::<String>)?;
            }
            Kind::SpOauthSecret { service_principal } => {
                m.serialize_entry(SCOPES.key, &None::<Vec<String>>)?;
                m.serialize_entry(AUTOSCOPE.key, &None::<bool>)?;
                m.serialize_entry(CLIENT_ID.key, &None::<String>)?;
                m.serialize_entry(KEEP_WHILE_USED.key, &None::<bool>)?;
                m.serialize_entry(SERVICE_PRINCIPAL.key, service_principal)?;
            }
        }
        m.end()
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
    /// A PAT (the default) or a service principal's OAuth secret (§9), with its own fields.
    #[serde(flatten)]
    pub kind: Kind,
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

    /// The app registration whose service principal owns a `pat` target's PATs (§8); `None`
    /// for the service's own identity and for every other kind (whose credentials the service
    /// identity manages).
    pub fn client_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pat { client_id, .. } => client_id.as_deref(),
            Kind::SpOauthSecret { .. } => None,
        }
    }

    /// The Databricks service principal of an `sp_oauth_secret` target.
    pub fn service_principal(&self) -> Option<&str> {
        match &self.kind {
            Kind::SpOauthSecret { service_principal } => Some(service_principal),
            Kind::Pat { .. } => None,
        }
    }

    /// Whose credentials the target holds, for tables and messages: the service's identity,
    /// an app registration's service principal (§8), or the service principal whose OAuth
    /// secrets it rotates (§9).
    pub fn owner(&self) -> String {
        match &self.kind {
            Kind::SpOauthSecret { service_principal } => format!("service principal {service_principal}"),
            Kind::Pat { client_id: Some(c), .. } => format!("app {c}"),
            Kind::Pat { client_id: None, .. } => "service identity".to_string(),
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
        t.kind = Kind::Pat {
            scopes: None,
            autoscope: None,
            client_id: Some("0a1b2c3d-0000-4000-8000-00000000abcd".into()),
            keep_while_used: false,
        };
        assert_eq!(t.owner(), "app 0a1b2c3d-0000-4000-8000-00000000abcd");
        assert_eq!(t.client_id(), Some("0a1b2c3d-0000-4000-8000-00000000abcd"));
        t.kind = Kind::SpOauthSecret { service_principal: "11111111-2222-4333-8444-555555555555".into() };
        assert_eq!(t.owner(), "service principal 11111111-2222-4333-8444-555555555555");
        assert_eq!(t.client_id(), None);
    }
}
