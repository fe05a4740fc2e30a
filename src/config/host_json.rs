//! The Functions host's `functionTimeout`, which bounds `PAT_TIMER_BUDGET_SECONDS`.
//!
//! The host kills an invocation at `functionTimeout`, so a timer budget beyond it would never
//! run out: a rotation would be cut mid-way instead of stopping cleanly. The host reads the
//! value from host.json, or from the app setting [`FUNCTION_TIMEOUT_SETTING`], which wins (the
//! host maps `AzureFunctionsJobHost__*` settings onto host.json). `serve` runs in the host's
//! working directory, so it reads host.json there; the CLI sees only the setting.

use std::time::Duration;

use serde_json::Value;

/// The app setting that overrides host.json's `functionTimeout` (the host reads
/// `AzureFunctionsJobHost__*` as host.json values); `serve` also fills it from host.json.
pub const FUNCTION_TIMEOUT_SETTING: &str = "AzureFunctionsJobHost__functionTimeout";

/// host.json's `functionTimeout`, if the file is readable and has one.
pub fn host_json_function_timeout(path: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("functionTimeout")?.as_str().map(str::to_string)
}

/// A .NET time span as host.json writes it (`[d.]hh:mm:ss`); `Some(None)` for `-1` (no limit),
/// `None` when it is not a time span.
pub fn parse_timespan(s: &str) -> Option<Option<Duration>> {
    let s = s.trim();
    if s == "-1" {
        return Some(None);
    }
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse::<u64>().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = parts[..] else { return None };
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(Some(Duration::from_secs(((days * 24 + h) * 60 + m) * 60 + sec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        for (s, want) in [
            ("00:10:00", Some(Some(600))),
            ("00:05:30", Some(Some(330))),
            ("1.00:00:00", Some(Some(86_400))),
            ("-1", Some(None)),
            (" 00:00:01 ", Some(Some(1))),
            ("00:60:00", None),
            ("00:00:60", None),
            ("10:00", None),
            ("ten minutes", None),
            ("", None),
        ] {
            assert_eq!(parse_timespan(s).map(|o| o.map(|d| d.as_secs())), want, "{s:?}");
        }
    }

    #[test]
    fn reads_function_timeout_from_a_file() {
        let dir = std::env::temp_dir().join(format!("pat-rotator-host-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("host.json");
        std::fs::write(&path, r#"{"version":"2.0","functionTimeout":"00:07:00"}"#).unwrap();
        assert_eq!(host_json_function_timeout(&path).as_deref(), Some("00:07:00"));
        std::fs::write(&path, r#"{"version":"2.0"}"#).unwrap();
        assert_eq!(host_json_function_timeout(&path), None);
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(host_json_function_timeout(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(host_json_function_timeout(&path), None);
    }
}
