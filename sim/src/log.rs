//! The event log: one line per effect, in the order the schedule made them, stamped with true
//! time since the schedule began. It is what a failing seed prints, so it is written to be read.

use time::Duration;

/// `+1d 03:12:05.250`: a moment of the schedule (true time since it began).
pub fn at(d: Duration) -> String {
    let neg = d.is_negative();
    let d = d.abs();
    let ms = d.whole_milliseconds() as i64;
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    format!(
        "{}{}d {:02}:{:02}:{:02}.{:03}",
        if neg { "-" } else { "+" },
        days,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// `3h`, `25m`, `1d 2h`: a length of time.
pub fn span(d: Duration) -> String {
    let s = d.whole_seconds();
    let sign = if s < 0 { "-" } else { "" };
    let s = s.abs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if mins > 0 {
        parts.push(format!("{mins}m"));
    }
    if secs > 0 || parts.is_empty() {
        parts.push(format!("{secs}s"));
    }
    format!("{sign}{}", parts.join(" "))
}

/// The log of one schedule. Lines are kept only when asked for (a replay, a failure): the
/// schedule is the same either way, since nothing it does depends on the log.
#[derive(Debug, Default)]
pub struct Log {
    pub keep: bool,
    pub lines: Vec<String>,
}

impl Log {
    pub fn push(&mut self, now: Duration, who: &str, what: impl FnOnce() -> String) {
        if self.keep {
            self.lines.push(format!("{}  {:<9} {}", at(now), who, what()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_spans_read_well() {
        assert_eq!(at(Duration::milliseconds(97_925_250)), "+1d 03:12:05.250");
        assert_eq!(at(Duration::seconds(-90)), "-0d 00:01:30.000");
        assert_eq!(span(Duration::hours(26)), "1d 2h");
        assert_eq!(span(Duration::ZERO), "0s");
        assert_eq!(span(Duration::seconds(-61)), "-1m 1s");
    }
}
