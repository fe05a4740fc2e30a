//! Log setup (contract §2: `RUST_LOG`, `PAT_LOG_FORMAT`).
//!
//! - **Filter.** `RUST_LOG`, default `info`. A plain level (`info`, `debug`, … — no `=` and no
//!   `,`) applies to this program only: the Azure SDK, HTTP and server crates stay at `warn`,
//!   because their INFO and DEBUG lines (request URLs, "starting 2 workers", which identity a
//!   credential uses) would otherwise flood Application Insights. A full directive string
//!   (`info,azure_core=debug`) is taken as given; one that does not parse falls back to the
//!   default with a warning.
//! - **Format.** `PAT_LOG_FORMAT=json`: one JSON object per line with the contract's flat keys
//!   (see [`JsonLayer`]). Anything else is text (the configuration parser reports a value other
//!   than `text`/`json`; logging starts before it runs and does not fail).
//! - **Streams.** CLI commands log to stderr only; stdout carries the table or JSON document.
//!   `serve` logs to stdout, except warnings and errors to stderr: the Functions host records
//!   handler stdout as Information and stderr as Error (Warning when the line contains "warn"),
//!   in both formats.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates whose INFO and DEBUG lines are noise for an operator: the Azure SDK, the HTTP
/// client and server stacks, TLS. A plain `RUST_LOG` level keeps them at `warn`.
const QUIET_CRATES: &[&str] = &[
    "azure_core",
    "azure_identity",
    "azure_security_keyvault_secrets",
    "typespec",
    "typespec_client_core",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "rustls_platform_verifier",
    "actix_server",
    "actix_web",
    "actix_http",
    "actix_rt",
    "tokio",
    "mio",
];

/// The most characters of one string from outside (a caller, an event, the configuration)
/// that a log line or an error message quotes (contract §10).
pub const UNTRUSTED_MAX: usize = 256;

/// A string from a caller, an event or the configuration, as a log line may quote it: control
/// characters escaped (so it cannot end the line and forge another), cut to
/// [`UNTRUSTED_MAX`] characters (contract §10).
pub fn untrusted(s: &str) -> String {
    let mut out = String::new();
    for (kept, c) in s.chars().enumerate() {
        if kept == UNTRUSTED_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes every control character of one formatted text line but its final newline.
fn escape_line(line: &str) -> String {
    let (body, newline) = match line.strip_suffix('\n') {
        Some(b) => (b, "\n"),
        None => (line, ""),
    };
    let mut out = String::with_capacity(line.len());
    for c in body.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(newline);
    out
}

/// Text logging writes each event as one line, whatever the fields hold: tracing's formatter
/// hands a writer one event at a time (one buffer, one `write_all`), and this writer escapes
/// every control character in it but the final newline. (Strings from outside are also cut where
/// they are quoted, [`untrusted`]; this catches the rest.)
struct OneLine<M>(M);

struct OneLineWriter<W>(W);

impl<W: std::io::Write> std::io::Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = escape_line(&String::from_utf8_lossy(buf));
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        OneLineWriter(self.0.make_writer_for(meta))
    }
}

/// How log lines are written (`PAT_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// `json` (any case, surrounding blanks ignored) is JSON; everything else is text.
    pub fn from_setting(value: Option<&str>) -> Format {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

/// The filter directives for a `RUST_LOG` value: the default for none or blank, the level with
/// the quiet crates at `warn` (or quieter, when the level itself is) for a plain level, and
/// the value itself otherwise.
pub fn directives(rust_log: Option<&str>) -> String {
    let v = rust_log.map(str::trim).filter(|v| !v.is_empty()).unwrap_or("info");
    match plain_level(v) {
        Some(level) => {
            let quiet = level.min(LevelFilter::WARN);
            let mut d = level.to_string().to_ascii_lowercase();
            for c in QUIET_CRATES {
                let _ = write!(d, ",{c}={}", quiet.to_string().to_ascii_lowercase());
            }
            d
        }
        None => v.to_string(),
    }
}

/// A level name (`info`, `WARN`, `off`, …) with nothing else: no `=`, `,` or target.
fn plain_level(v: &str) -> Option<LevelFilter> {
    if v.contains(['=', ',', '[', '{']) {
        return None;
    }
    match v.to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::TRACE),
        "debug" => Some(LevelFilter::DEBUG),
        "info" => Some(LevelFilter::INFO),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "error" => Some(LevelFilter::ERROR),
        "off" => Some(LevelFilter::OFF),
        _ => None,
    }
}

/// The filter, and a complaint to log once the subscriber is up when `RUST_LOG` was unusable.
fn filter() -> (EnvFilter, Option<String>) {
    let raw = std::env::var("RUST_LOG").ok();
    let wanted = directives(raw.as_deref());
    match EnvFilter::try_new(&wanted) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new(directives(None)),
            Some(format!("RUST_LOG is not a valid filter ({e}); logging at the default level info")),
        ),
    }
}

fn format() -> Format {
    Format::from_setting(std::env::var("PAT_LOG_FORMAT").ok().as_deref())
}

/// Logging of the CLI commands: everything to stderr.
pub fn init_cli() {
    init(Streams::AllToStderr)
}

/// Logging of `serve`: stdout, warnings and errors to stderr.
pub fn init_serve() {
    init(Streams::WarningsToStderr)
}

/// Which stream a line goes to.
#[derive(Debug, Clone, Copy)]
pub enum Streams {
    /// CLI commands: stdout is the command's output.
    AllToStderr,
    /// `serve`: the host maps stderr to Error/Warning and stdout to Information.
    WarningsToStderr,
}

impl Streams {
    fn stderr(self, level: &Level) -> bool {
        match self {
            Streams::AllToStderr => true,
            Streams::WarningsToStderr => *level <= Level::WARN,
        }
    }
}

fn init(streams: Streams) {
    let (filter, complaint) = filter();
    let installed = match format() {
        Format::Json => {
            let ok = tracing_subscriber::registry()
                .with(filter)
                .with(JsonLayer { out: StdStreams(streams) })
                .try_init()
                .is_ok();
            if ok {
                log_panics();
            }
            ok
        }
        Format::Text => {
            let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_target(false);
            match streams {
                Streams::AllToStderr => builder.with_writer(OneLine(std::io::stderr)).try_init().is_ok(),
                Streams::WarningsToStderr => builder
                    .with_writer(OneLine(std::io::stderr.with_max_level(Level::WARN).or_else(std::io::stdout)))
                    .try_init()
                    .is_ok(),
            }
        }
    };
    if let (true, Some(c)) = (installed, complaint) {
        tracing::warn!("{c}");
    }
}

/// In JSON mode a panic becomes one JSON error line too, so that every line the process
/// prints can be parsed (the default hook's text is not). Panic messages carry no secret:
/// credentials live in `Redacted`, whose `Debug` and `Display` hide the value.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!("panic{at}: {what}");
    }));
}

/// The contract's keys, in the order they are written after `timestamp` and `level`.
const KEYS: [&str; 7] = ["message", "target", "action", "reason", "code", "token_id_prefix", "invocation_id"];

/// The contract key a field of an event or span is written under: the code base names the
/// rotation target `target_name` (`target` is a keyword of the tracing macros) and a token id
/// prefix `token`.
fn contract_key(field: &str) -> Option<usize> {
    let key = match field {
        "target_name" => "target",
        "token" => "token_id_prefix",
        other => other,
    };
    KEYS.iter().position(|k| *k == key)
}

/// The fields of one span or event: the contract's, and the others in the order recorded.
#[derive(Debug, Default, Clone)]
struct Fields {
    known: [Option<String>; KEYS.len()],
    other: Vec<(&'static str, String)>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match contract_key(field.name()) {
            Some(i) => self.known[i] = Some(value),
            None => match self.other.iter_mut().find(|(k, _)| *k == field.name()) {
                Some(slot) => slot.1 = value,
                None => self.other.push((field.name(), value)),
            },
        }
    }

    /// `inner`'s fields win over ours (an event's over its span's, a child span's over its
    /// parent's).
    fn overlay(&mut self, inner: &Fields) {
        for (i, v) in inner.known.iter().enumerate() {
            if v.is_some() {
                self.known[i] = v.clone();
            }
        }
        for (k, v) in &inner.other {
            match self.other.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => self.other.push((k, v.clone())),
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

/// Writes each event as one JSON object on one line:
///
/// ```json
/// {"timestamp":"2026-11-26T03:00:01.204311Z","level":"INFO","message":"secret written","target":"analytics","reason":"expiring","token_id_prefix":"3f2a9c4e1b7d…","invocation_id":"7b2f6c0e-1d9a-4c55-8f3e-0a6b9d4c2e11"}
/// ```
///
/// `timestamp` (RFC 3339, UTC, microseconds), `level` and `message` are always there; the
/// other contract keys (`target`, `action`, `reason`, `code`, `token_id_prefix`,
/// `invocation_id`) when the event or one of its spans has the field. Span fields are
/// flattened into every line of the span. Any other field is appended to `message` as
/// ` key=value` (the value quoted when it is empty or has blanks), so the keys stay the
/// contract's set. The
/// Rust module path is never written: `target` is the rotation target's name.
pub struct JsonLayer<O = StdStreams> {
    out: O,
}

/// Where a finished JSON line goes.
pub trait LineSink: Send + Sync + 'static {
    fn write_line(&self, level: &Level, line: &str);
}

/// The process's stdout and stderr, split by level as [`Streams`] says.
pub struct StdStreams(Streams);

impl LineSink for StdStreams {
    fn write_line(&self, level: &Level, line: &str) {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        // One write per line, so concurrent lines do not interleave.
        let _ = if self.0.stderr(level) {
            std::io::stderr().lock().write_all(buf.as_bytes())
        } else {
            std::io::stdout().lock().write_all(buf.as_bytes())
        };
    }
}

impl<S, O> tracing_subscriber::Layer<S> for JsonLayer<O>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    O: LineSink,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<Fields>() {
            Some(f) => values.record(f),
            None => {
                let mut f = Fields::default();
                values.record(&mut f);
                ext.insert(f);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<Fields>() {
                    fields.overlay(f);
                }
            }
        }
        let mut own = Fields::default();
        event.record(&mut own);
        fields.overlay(&own);
        let level = event.metadata().level();
        self.out.write_line(level, &json_line(&now_rfc3339(), level, &fields));
    }
}

fn json_line(timestamp: &str, level: &Level, fields: &Fields) -> String {
    let mut message = fields.known[0].clone().unwrap_or_default();
    for (k, v) in &fields.other {
        if v.is_empty() || v.contains(char::is_whitespace) {
            let _ = write!(message, " {k}={v:?}");
        } else {
            let _ = write!(message, " {k}={v}");
        }
    }
    let mut o = Map::new();
    o.insert("timestamp".into(), Value::String(timestamp.to_string()));
    o.insert("level".into(), Value::String(level.as_str().to_string()));
    o.insert("message".into(), Value::String(message));
    for (i, key) in KEYS.iter().enumerate().skip(1) {
        if let Some(v) = &fields.known[i] {
            o.insert((*key).into(), Value::String(v.clone()));
        }
    }
    Value::Object(o).to_string()
}

fn now_rfc3339() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time::OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_is_one_line_of_at_most_256_characters() {
        assert_eq!(untrusted("plain"), "plain");
        assert_eq!(untrusted("x\nERROR forged\r\t\u{1b}[31m"), "x\\nERROR forged\\r\\t\\u{1b}[31m");
        let long = "é".repeat(1000);
        let cut = untrusted(&long);
        assert_eq!(cut.chars().count(), UNTRUSTED_MAX + 1, "256 characters and an ellipsis");
        assert!(cut.ends_with('…'));
        assert_eq!(untrusted(&"a".repeat(256)), "a".repeat(256), "exactly 256 is not cut");
    }

    #[test]
    fn a_text_line_keeps_only_its_final_newline() {
        assert_eq!(escape_line("2026 INFO a\nERROR forged\n"), "2026 INFO a\\nERROR forged\n");
        assert_eq!(escape_line("no newline\r"), "no newline\\r");
        use std::io::Write as _;
        let mut w = OneLineWriter(Vec::new());
        w.write_all(b"one\ntwo\n").unwrap();
        assert_eq!(String::from_utf8(w.0).unwrap(), "one\\ntwo\n");
    }

    #[test]
    fn a_plain_level_keeps_the_noisy_crates_at_warn() {
        for (given, level) in [(None, "info"), (Some(""), "info"), (Some(" info "), "info"), (Some("DEBUG"), "debug")] {
            let d = directives(given);
            assert!(d.starts_with(&format!("{level},")), "{given:?}: {d}");
            for c in ["azure_core", "azure_identity", "typespec_client_core", "reqwest", "hyper", "actix_server"] {
                assert!(d.contains(&format!(",{c}=warn")), "{given:?}: {c} not at warn in {d}");
            }
            EnvFilter::try_new(&d).expect("valid directives");
        }
        // A quieter level than warn applies to them too.
        let d = directives(Some("error"));
        assert!(d.starts_with("error,") && d.contains(",azure_core=error") && !d.contains("=warn"), "{d}");
        let d = directives(Some("off"));
        assert!(d.contains(",reqwest=off"), "{d}");
    }

    #[test]
    fn a_directive_string_is_taken_as_given() {
        for v in ["info,azure_core=debug", "pat_rotator=trace", "warn,pat_rotator::engine=debug", "my_target"] {
            assert_eq!(directives(Some(v)), v);
        }
    }

    #[test]
    fn log_format_setting() {
        assert_eq!(Format::from_setting(None), Format::Text);
        assert_eq!(Format::from_setting(Some("text")), Format::Text);
        assert_eq!(Format::from_setting(Some(" JSON ")), Format::Json);
        assert_eq!(Format::from_setting(Some("yaml")), Format::Text);
    }

    /// Runs `f` under the JSON layer, with its lines collected instead of printed; the
    /// timestamp is replaced by "T".
    fn capture(f: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        struct Lines(Arc<Mutex<Vec<String>>>);
        impl LineSink for Lines {
            fn write_line(&self, _: &Level, line: &str) {
                let mut v: Value = serde_json::from_str(line).expect("a JSON line");
                v["timestamp"] = Value::String("T".into());
                self.0.lock().unwrap().push(v.to_string());
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(JsonLayer { out: Lines(lines.clone()) });
        tracing::subscriber::with_default(subscriber, f);
        lines.lock().unwrap().clone()
    }

    #[test]
    fn json_lines_carry_the_contract_keys_and_flatten_spans() {
        let lines = capture(|| {
            let span = tracing::info_span!("RotatePat", invocation_id = %"inv-1");
            let _g = span.enter();
            tracing::info!(target_name = %"analytics", reason = "expiring", token = %"3f2a9c4e1b7d…", "secret written");
            tracing::warn!(target_name = %"analytics", why = "superseded", count = 3, error = %"keyvault_error: boom", "revocation failed");
            tracing::error!(code = %"keyvault_forbidden", action = "failed", "t: failed");
        });
        let v: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            v[0],
            serde_json::json!({"timestamp":"T","level":"INFO","message":"secret written","target":"analytics",
                "reason":"expiring","token_id_prefix":"3f2a9c4e1b7d…","invocation_id":"inv-1"})
        );
        let keys: Vec<&String> = v[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["timestamp", "level", "message", "target", "reason", "token_id_prefix", "invocation_id"]);
        assert_eq!(v[1]["level"], "WARN");
        assert_eq!(v[1]["message"], "revocation failed why=superseded count=3 error=\"keyvault_error: boom\"");
        assert_eq!(v[1]["invocation_id"], "inv-1");
        assert_eq!((v[2]["code"].as_str(), v[2]["action"].as_str()), (Some("keyvault_forbidden"), Some("failed")));
        for line in &lines {
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn an_event_field_wins_over_its_span_and_nothing_else_becomes_a_key() {
        let lines = capture(|| {
            let outer = tracing::info_span!("ProvisionPat", invocation_id = %"inv-2", target_name = %"outer");
            let _g = outer.enter();
            tracing::info!(target_name = %"inner", "one\ntwo");
        });
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((v["target"].as_str(), v["invocation_id"].as_str()), (Some("inner"), Some("inv-2")));
        assert_eq!(v["message"], "one\ntwo");
        let allowed =
            ["timestamp", "level", "message", "target", "action", "reason", "code", "token_id_prefix", "invocation_id"];
        assert!(v.as_object().unwrap().keys().all(|k| allowed.contains(&k.as_str())));
    }

    #[test]
    fn serve_sends_warnings_and_errors_to_stderr_only() {
        let serve = Streams::WarningsToStderr;
        assert!(serve.stderr(&Level::ERROR) && serve.stderr(&Level::WARN));
        assert!(!serve.stderr(&Level::INFO) && !serve.stderr(&Level::DEBUG) && !serve.stderr(&Level::TRACE));
        assert!([Level::ERROR, Level::INFO, Level::TRACE].iter().all(|l| Streams::AllToStderr.stderr(l)));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = now_rfc3339();
        let parsed = time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed.offset(), time::UtcOffset::UTC);
        assert!(t.ends_with('Z'), "{t}");
    }
}
