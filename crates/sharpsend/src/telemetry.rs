//! Structured logs with `tracing`. Secrets never reach a log line: they are `SecretString`s whose
//! `Debug` is redacted, bearer tokens are never recorded, and request bodies are not logged.
//!
//! Nothing from the wire can forge a line: in text logs every field value, span field and message
//! has its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, …, and the Unicode line and
//! paragraph separators and bidi overrides), so a percent-decoded `%0A` in a path stays on its
//! line. JSON logs escape them by JSON's own rules.

use std::{fmt, io::IsTerminal as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    fmt::{FormatFields, MakeWriter, format::Writer},
    prelude::*,
};

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), `SHARPSEND_LOG_FORMAT=json`
/// switches from human-readable lines to JSON. Logs go to stderr; stdout is for command output.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("SHARPSEND_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        // Colours only on a terminal, so files and pipes get plain text.
        let ansi = std::io::stderr().is_terminal();
        registry.with(text_layer(ansi, std::io::stderr)).try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// The human-readable layer: the default format with [`EscapedFields`].
pub fn text_layer<S, W>(ansi: bool, writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .fmt_fields(EscapedFields)
        .with_writer(writer)
}

/// Formats fields like `tracing_subscriber`'s `DefaultFields` (`message` bare, strings quoted, `name=value`), with
/// every control character escaped, whatever the value's `Display` or `Debug` writes.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            self.writer.write_str(sep)
        } else {
            write!(self.writer, "{sep}{}=", Escaped(name))
        }
        .and_then(|()| fmt::write(&mut EscapeWriter(&mut self.writer), value));
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// A `fmt::Write` that escapes control characters on their way through.
struct EscapeWriter<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for EscapeWriter<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Control characters (C0, DEL, C1), the Unicode line/paragraph separators and the bidi
/// embedding/override/isolate controls: what could end a line or disguise one.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Any text, escaped as a log line would carry it.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Write::write_str(&mut EscapeWriter(f), self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn control_characters_never_leave_their_line() {
        let out = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(text_layer(false, out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let evil = "x\n2026-01-01T00:00:00Z  WARN forged: owned\r\u{1b}[31mred\u{2028}";
            let span = tracing::info_span!("request", route = %evil);
            let _g = span.enter();
            tracing::info!(path = %evil, quoted = evil, "rejected {evil}");
        });
        let bytes = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}') && !text.contains('\u{2028}'));
        assert!(text.contains("rejected x\\n2026"), "{text}");
        assert!(text.contains("route=x\\n2026"), "{text}");
        assert!(text.contains("path=x\\n2026"), "{text}");
        assert!(text.contains("\\u{1b}[31mred\\u{2028}"), "{text}");
        assert!(text.contains("quoted=\"x\\n"), "{text}");
    }
}
