//! JSON shapes of the Token API, the secrets proxy API and SCIM, parsed leniently.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::rotation::model::{from_epoch_ms, parse_rfc3339};
use crate::secret::Redacted;

/// A PAT as the Token API lists it (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub comment: Option<String>,
    /// `None` when the workspace did not say (then no age is provable).
    pub created_at: Option<OffsetDateTime>,
    /// `None`: never expires.
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct WireTokenInfo {
    token_id: Option<Value>,
    comment: Option<String>,
    creation_time: Option<Value>,
    expiry_time: Option<Value>,
}

fn as_i64(v: &Option<Value>) -> Option<i64> {
    match v.as_ref()? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_id(v: &Option<Value>) -> Option<String> {
    match v.as_ref()? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl WireTokenInfo {
    fn into_info(self) -> Option<Token> {
        let id = as_id(&self.token_id)?;
        // A token without a creation time has no provable age: the orphan sweep never takes it.
        let created_at = as_i64(&self.creation_time).and_then(from_epoch_ms);
        let expires_at = match as_i64(&self.expiry_time) {
            Some(ms) => from_epoch_ms(ms),
            None => None,
        };
        Some(Token { id, comment: self.comment, created_at, expires_at })
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    token_infos: Option<Vec<WireTokenInfo>>,
}

pub fn parse_list(body: &[u8]) -> Result<Vec<Token>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let r: ListResponse = serde_json::from_slice(body).map_err(|e| format!("not a token list ({e})"))?;
    Ok(r.token_infos.unwrap_or_default().into_iter().filter_map(WireTokenInfo::into_info).collect())
}

#[derive(Deserialize)]
struct TokenManagementGet {
    token_info: Option<Map<String, Value>>,
}

/// The `last_used_day` of a Token Management API answer (`GET
/// /api/2.0/token-management/tokens/{id}` → `{"token_info": {…, "last_used_day": <epoch ms>}}`),
/// as the UTC day it falls on: "approximate timestamp for the day the token was last used,
/// accurate up to 1 day" (the Go SDK's `TokenInfo`). `Ok(None)`: the answer has no such field
/// (or a negative one). A number given as a string is read too.
pub fn parse_last_used_day(body: &[u8]) -> Result<Option<time::Date>, String> {
    let r: TokenManagementGet =
        serde_json::from_slice(body).map_err(|e| format!("not a token management answer ({})", e.classify_str()))?;
    let info = r.token_info.ok_or("no token_info")?;
    Ok(as_i64(&info.get("last_used_day").cloned()).and_then(from_epoch_ms).map(|t| t.date()))
}

#[derive(Deserialize)]
struct CreateResponse {
    token_value: Option<String>,
    token_info: Option<WireTokenInfo>,
}

pub fn parse_create(body: &[u8]) -> Result<(Redacted, Token), String> {
    let r: CreateResponse =
        serde_json::from_slice(body).map_err(|e| format!("not a token create answer ({})", e.classify_str()))?;
    let value = r.token_value.filter(|v| !v.is_empty()).ok_or("no token_value")?;
    let info = r.token_info.and_then(WireTokenInfo::into_info).ok_or("no token_info.token_id")?;
    Ok((Redacted::new(value), info))
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    /// The category only: serde's message can quote the input, which holds the token.
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected JSON shape",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

pub fn parse_max_lifetime(body: &[u8]) -> Option<u32> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match v.get("maxTokenLifetimeDays")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        _ => None,
    }
}

/// An OAuth secret of a service principal as the secrets proxy API lists it (`SecretInfo`;
/// never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpSecret {
    pub id: String,
    pub created_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    /// `ACTIVE`, `EXPIRED`, …
    pub status: Option<String>,
}

#[derive(Deserialize)]
struct WireSecretInfo {
    id: Option<Value>,
    create_time: Option<Value>,
    expire_time: Option<Value>,
    status: Option<String>,
}

/// A time the secrets API sends: RFC 3339 (its documented form), or epoch milliseconds.
fn as_time(v: &Option<Value>) -> Option<OffsetDateTime> {
    match v.as_ref()? {
        Value::String(s) => parse_rfc3339(s.trim()).or_else(|| s.trim().parse::<i64>().ok().and_then(from_epoch_ms)),
        Value::Number(n) => n.as_i64().and_then(from_epoch_ms),
        _ => None,
    }
}

impl WireSecretInfo {
    fn into_secret(self) -> Option<SpSecret> {
        Some(SpSecret {
            id: as_id(&self.id)?,
            created_at: as_time(&self.create_time),
            expires_at: as_time(&self.expire_time),
            status: self.status,
        })
    }
}

#[derive(Deserialize)]
struct SecretList {
    #[serde(default)]
    secrets: Option<Vec<WireSecretInfo>>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// One page of a principal's OAuth secrets, and the token of the next page.
pub fn parse_sp_secrets(body: &[u8]) -> Result<(Vec<SpSecret>, Option<String>), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Vec::new(), None));
    }
    let r: SecretList =
        serde_json::from_slice(body).map_err(|e| format!("not a secrets list ({})", e.classify_str()))?;
    let secrets = r.secrets.unwrap_or_default().into_iter().filter_map(WireSecretInfo::into_secret).collect();
    Ok((secrets, r.next_page_token.filter(|t| !t.is_empty())))
}

#[derive(Deserialize)]
struct CreatedSecret {
    secret: Option<String>,
    #[serde(flatten)]
    info: WireSecretInfo,
}

/// The answer to a secret create: the value (returned once) and the secret's info.
pub fn parse_sp_secret_create(body: &[u8]) -> Result<(Redacted, SpSecret), String> {
    let r: CreatedSecret =
        serde_json::from_slice(body).map_err(|e| format!("not a secret create answer ({})", e.classify_str()))?;
    let value = r.secret.filter(|v| !v.is_empty()).ok_or("no secret in the answer")?;
    let info = r.info.into_secret().ok_or("no id in the answer")?;
    Ok((Redacted::new(value), info))
}

#[derive(Deserialize)]
struct ScimList {
    #[serde(rename = "Resources", default)]
    resources: Option<Vec<ScimPrincipal>>,
}

#[derive(Deserialize)]
struct ScimPrincipal {
    id: Option<Value>,
    #[serde(rename = "applicationId")]
    application_id: Option<String>,
}

/// The SCIM id of the service principal with `application_id` in a SCIM list answer.
pub fn parse_scim_principal(body: &[u8], application_id: &str) -> Result<Option<String>, String> {
    let r: ScimList = serde_json::from_slice(body).map_err(|e| format!("not a SCIM list ({})", e.classify_str()))?;
    Ok(r.resources
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.application_id.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(application_id)))
        .and_then(|p| as_id(&p.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_used_day_of_a_token_management_answer() {
        use time::macros::date;
        // 2026-11-26T00:00:00Z in ms, as the Go SDK's TokenInfo.LastUsedDay (int64, epoch ms).
        let day = br#"{"token_info":{"token_id":"a","last_used_day":1795651200000,"owner_id":7}}"#;
        assert_eq!(parse_last_used_day(day).unwrap(), Some(date!(2026 - 11 - 26)));
        // A time inside the day reads as that UTC day; a string number too.
        let inside = br#"{"token_info":{"last_used_day":"1795737599999"}}"#;
        assert_eq!(parse_last_used_day(inside).unwrap(), Some(date!(2026 - 11 - 26)));
        assert_eq!(parse_last_used_day(br#"{"token_info":{"token_id":"a"}}"#).unwrap(), None, "never used");
        assert_eq!(parse_last_used_day(br#"{"token_info":{"last_used_day":-1}}"#).unwrap(), None);
        assert!(parse_last_used_day(br#"{}"#).is_err());
        assert!(parse_last_used_day(b"<html>").is_err());
    }

    #[test]
    fn empty_list_is_an_empty_object() {
        assert!(parse_list(b"{}").unwrap().is_empty());
        assert!(parse_list(b"").unwrap().is_empty());
        assert!(parse_list(br#"{"token_infos":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn list_parses_times_and_never() {
        let l = parse_list(
            br#"{"token_infos":[{"token_id":"a","creation_time":1700000000000,"expiry_time":-1,"comment":"c"},
                               {"token_id":"b","creation_time":"1700000000000","expiry_time":1707776000000,"extra":1}]}"#,
        )
        .unwrap();
        assert_eq!(l[0].expires_at, None);
        assert_eq!(l[1].expires_at.unwrap().unix_timestamp(), 1707776000);
        assert_eq!(l[1].created_at.unwrap().unix_timestamp(), 1700000000);
    }

    #[test]
    fn create_error_never_quotes_the_body() {
        let e = parse_create(br#"{"token_value":"dapiSECRET","token_info":{"token_id":5"#).err().unwrap();
        assert!(!e.contains("dapiSECRET"), "{e}");
        let t = parse_create(
            br#"{"token_value":"dapiSECRET","token_info":{"token_id":"x","creation_time":1,"expiry_time":2}}"#,
        )
        .unwrap();
        assert_eq!(format!("{:?}", t.0), "[redacted]");
    }

    #[test]
    fn max_lifetime() {
        assert_eq!(parse_max_lifetime(br#"{"maxTokenLifetimeDays":"90"}"#), Some(90));
        assert_eq!(parse_max_lifetime(br#"{"maxTokenLifetimeDays":null}"#), None);
    }

    #[test]
    fn sp_secrets_shapes() {
        let (l, next) = parse_sp_secrets(
            br#"{"secrets":[{"id":"7","create_time":"2026-01-01T00:00:00Z","expire_time":"2027-01-01T00:00:00.5Z","status":"ACTIVE","secret_hash":"h"}],"next_page_token":"p2"}"#,
        )
        .unwrap();
        assert_eq!(l[0].id, "7");
        assert_eq!(l[0].created_at.unwrap().unix_timestamp(), 1767225600);
        assert_eq!(next.as_deref(), Some("p2"));
        assert!(parse_sp_secrets(b"{}").unwrap().0.is_empty());
        let (v, s) =
            parse_sp_secret_create(br#"{"id":"9","secret":"doseSECRET","create_time":"2026-01-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!((format!("{v:?}"), s.id.as_str()), ("[redacted]".to_string(), "9"));
        let e = parse_sp_secret_create(br#"{"id":"9","secret":"doseSECRET""#).err().unwrap();
        assert!(!e.contains("doseSECRET"), "{e}");
        let scim = br#"{"Resources":[{"id":"123","applicationId":"AB-cd"}],"totalResults":1}"#;
        assert_eq!(parse_scim_principal(scim, "ab-CD").unwrap().as_deref(), Some("123"));
        assert_eq!(parse_scim_principal(br#"{"totalResults":0}"#, "x").unwrap(), None);
    }
}
