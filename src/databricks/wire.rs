//! JSON shapes of the Token API, parsed leniently.

use serde::Deserialize;
use serde_json::Value;

use crate::rotation::model::{NewToken, TokenInfo, from_epoch_ms};
use crate::secret::Redacted;

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
    fn into_info(self) -> Option<TokenInfo> {
        let id = as_id(&self.token_id)?;
        // A token without a creation time is treated as brand new: the orphan sweep will not
        // touch it until a later run sees it again (the conservative reading).
        let created_at =
            as_i64(&self.creation_time).and_then(from_epoch_ms).unwrap_or_else(time::OffsetDateTime::now_utc);
        let expires_at = match as_i64(&self.expiry_time) {
            Some(ms) => from_epoch_ms(ms),
            None => None,
        };
        Some(TokenInfo { id, comment: self.comment, created_at, expires_at })
    }
}

#[derive(Deserialize)]
struct ListResponse {
    #[serde(default)]
    token_infos: Option<Vec<WireTokenInfo>>,
}

pub fn parse_list(body: &[u8]) -> Result<Vec<TokenInfo>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let r: ListResponse = serde_json::from_slice(body).map_err(|e| format!("not a token list ({e})"))?;
    Ok(r.token_infos.unwrap_or_default().into_iter().filter_map(WireTokenInfo::into_info).collect())
}

#[derive(Deserialize)]
struct CreateResponse {
    token_value: Option<String>,
    token_info: Option<WireTokenInfo>,
}

pub fn parse_create(body: &[u8]) -> Result<NewToken, String> {
    let r: CreateResponse =
        serde_json::from_slice(body).map_err(|e| format!("not a token create answer ({})", e.classify_str()))?;
    let value = r.token_value.filter(|v| !v.is_empty()).ok_or("no token_value")?;
    let info = r.token_info.and_then(WireTokenInfo::into_info).ok_or("no token_info.token_id")?;
    Ok(NewToken { value: Redacted::new(value), info })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(l[1].created_at.unix_timestamp(), 1700000000);
    }

    #[test]
    fn create_error_never_quotes_the_body() {
        let e = parse_create(br#"{"token_value":"dapiSECRET","token_info":{"token_id":5"#).err().unwrap();
        assert!(!e.contains("dapiSECRET"), "{e}");
        let t = parse_create(
            br#"{"token_value":"dapiSECRET","token_info":{"token_id":"x","creation_time":1,"expiry_time":2}}"#,
        )
        .unwrap();
        assert_eq!(format!("{:?}", t.value), "[redacted]");
    }

    #[test]
    fn max_lifetime() {
        assert_eq!(parse_max_lifetime(br#"{"maxTokenLifetimeDays":"90"}"#), Some(90));
        assert_eq!(parse_max_lifetime(br#"{"maxTokenLifetimeDays":null}"#), None);
    }
}
