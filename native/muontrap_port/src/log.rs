//! A minimal `tracing` subscriber: one `muontrap[pid]: LEVEL message k=v`
//! line per event on stderr. tracing-subscriber would dwarf the binary.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

pub const ENV_VAR: &str = "MUONTRAP_LOG";

/// Maps `MUONTRAP_LOG` to a level; any unrecognised value means debug.
pub fn level_from(value: &str) -> Level {
    match value.trim().to_ascii_lowercase().as_str() {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "info" => Level::INFO,
        "trace" => Level::TRACE,
        _ => Level::DEBUG,
    }
}

/// Installs the subscriber only when `MUONTRAP_LOG` is set, so by default
/// every `tracing` macro is a cheap disabled-callsite check.
pub fn init_from_env() {
    if let Some(v) = std::env::var_os(ENV_VAR) {
        let sub = StderrSubscriber {
            max: level_from(&v.to_string_lossy()),
            pid: std::process::id(),
        };
        // Fails only if a subscriber is already set; nothing to do then.
        let _ = tracing::subscriber::set_global_default(sub);
    }
}

struct StderrSubscriber {
    max: Level,
    pid: u32,
}

/// Collects the `message` field first and the rest as ` key=value`.
struct Line {
    message: String,
    fields: String,
}

// Floats and 128-bit integers are never logged; their default formatting
// would pull float printing code into the binary (its size:
// docs/performance.md).
impl Visit for Line {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record_i64(field, value as i64)
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.record_i64(field, value as i64)
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.record_u64(field, value as u64)
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

fn render(pid: u32, level: &Level, line: &Line) -> String {
    format!("muontrap[{pid}]: {level} {}{}\n", line.message, line.fields)
}

impl Subscriber for StderrSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // In tracing, more verbose levels compare greater.
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    // Spans are not used; hand out a dummy id.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut line);
        let text = render(self.pid, event.metadata().level(), &line);
        // One write so lines from concurrent processes do not interleave;
        // a closed stderr must not take the port down.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_from("error"), Level::ERROR);
        assert_eq!(level_from("WARN"), Level::WARN);
        assert_eq!(level_from("info"), Level::INFO);
        assert_eq!(level_from("debug"), Level::DEBUG);
        assert_eq!(level_from("trace"), Level::TRACE);
        assert_eq!(level_from("1"), Level::DEBUG);
        assert_eq!(level_from(""), Level::DEBUG);
    }

    #[test]
    fn renders_one_line() {
        let line = Line {
            message: "child exited".into(),
            fields: " pid=42 status=0".into(),
        };
        assert_eq!(
            render(7, &Level::WARN, &line),
            "muontrap[7]: WARN child exited pid=42 status=0\n"
        );
        let sub = StderrSubscriber {
            max: Level::INFO,
            pid: 1,
        };
        assert_eq!(sub.max_level_hint(), Some(LevelFilter::INFO));
    }
}
