//! Opt-in diagnostics: one `muontrap[pid]: LEVEL message k=v` line per
//! event on stderr, only when `MUONTRAP_LOG` is set. An in-crate logger,
//! not `tracing`: its per-callsite metadata and dispatch cost the binary
//! several KB (docs/performance.md).
//!
//! Each macro checks a static level first, so a disabled event costs one
//! atomic load and its arguments are not evaluated. An enabled one becomes
//! one `format_args!` whose format string is built at compile time
//! (message first, then ` key=value` per field), written with one
//! write(2): no lock (std's stderr lock could be left held across a fork
//! in a threaded process) and no interleaving with other processes.
//!
//! Fields, as in `tracing`: `key = %value` (Display), `key = ?value`
//! (Debug), `key = value` and `key` (integers, bools and strings), then the
//! message, a string literal. Floats are never logged: their formatting
//! would pull float printing code into the binary (its size:
//! docs/performance.md); the `Plain` bound keeps them out of plain fields.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};

pub const ENV_VAR: &str = "MUONTRAP_LOG";

/// More verbose levels compare greater, as in `tracing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

/// The most verbose level logged; 0 (the default) logs nothing. Set once
/// at start, before any fork of the process that reads it.
static MAX: AtomicU8 = AtomicU8::new(0);

/// Maps `MUONTRAP_LOG` to a level; any unrecognised value means debug.
pub fn level_from(value: &str) -> Level {
    match value.trim().to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "trace" => Level::Trace,
        _ => Level::Debug,
    }
}

/// Turns logging on only when `MUONTRAP_LOG` is set.
pub fn init_from_env() {
    if let Some(v) = std::env::var_os(ENV_VAR) {
        MAX.store(level_from(&v.to_string_lossy()) as u8, Ordering::Relaxed);
    }
}

#[inline(always)]
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX.load(Ordering::Relaxed)
}

/// Values a plain `key = value` field may take: no floats (see above).
pub trait Plain: fmt::Display {}

macro_rules! plain {
    ($($t:ty),*) => { $(impl Plain for $t {})* };
}
plain!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, bool, str, &str);

#[inline(always)]
pub fn plain<T: Plain + ?Sized>(v: &T) -> &T {
    v
}

fn render(pid: u32, level: Level, args: fmt::Arguments<'_>) -> String {
    let mut line = String::new();
    let _ = writeln!(line, "muontrap[{pid}]: {} {args}", level.name());
    line
}

/// Writes one event. Not inlined into the callsites: they only build the
/// arguments.
#[inline(never)]
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    // Asked each time, not cached: right in a forked supervisor too.
    let line = render(std::process::id(), level, args);
    let mut rest = line.as_bytes();
    // A short write or a closed stderr must not take the port down.
    while !rest.is_empty() {
        match nix::unistd::write(std::io::stderr(), rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
}

/// The `format_args!` of one event: its format string built at compile
/// time (message, then ` key=value` per field). Accumulates the string's
/// pieces and the arguments (`@ [...] [...]`) field by field.
macro_rules! args {
    (@ [$($f:tt)*] [$($a:tt)*] $msg:literal) => {
        format_args!(concat!($msg, $($f)*), $($a)*)
    };
    (@ [$($f:tt)*] [$($a:tt)*] $k:ident = %$v:expr, $($rest:tt)+) => {
        $crate::log::args!(@ [$($f)* " ", stringify!($k), "={}",] [$($a)* $v,] $($rest)+)
    };
    (@ [$($f:tt)*] [$($a:tt)*] $k:ident = ?$v:expr, $($rest:tt)+) => {
        $crate::log::args!(@ [$($f)* " ", stringify!($k), "={:?}",] [$($a)* $v,] $($rest)+)
    };
    (@ [$($f:tt)*] [$($a:tt)*] $k:ident = $v:expr, $($rest:tt)+) => {
        $crate::log::args!(
            @ [$($f)* " ", stringify!($k), "={}",]
            [$($a)* $crate::log::plain(&$v),]
            $($rest)+
        )
    };
    (@ [$($f:tt)*] [$($a:tt)*] ?$k:ident, $($rest:tt)+) => {
        $crate::log::args!(@ [$($f)* " ", stringify!($k), "={:?}",] [$($a)* $k,] $($rest)+)
    };
    (@ [$($f:tt)*] [$($a:tt)*] $k:ident, $($rest:tt)+) => {
        $crate::log::args!(
            @ [$($f)* " ", stringify!($k), "={}",]
            [$($a)* $crate::log::plain(&$k),]
            $($rest)+
        )
    };
    (@ $($t:tt)*) => {
        compile_error!("log: fields (`k = %v`, `k = ?v`, `k = v`, `k`, `?k`), then a message literal")
    };
    ($($t:tt)+) => {
        $crate::log::args!(@ [] [] $($t)+)
    };
}

macro_rules! log_at {
    ($lvl:expr, $($t:tt)+) => {
        if $crate::log::enabled($lvl) {
            $crate::log::emit($lvl, $crate::log::args!($($t)+))
        }
    };
}

macro_rules! error {
    ($($t:tt)+) => { $crate::log::log_at!($crate::log::Level::Error, $($t)+) };
}
// Named apart: a bare `warn` in the `use` below would be ambiguous with
// the built-in `#[warn]` attribute.
macro_rules! warn_ {
    ($($t:tt)+) => { $crate::log::log_at!($crate::log::Level::Warn, $($t)+) };
}
#[allow(unused_macros)]
macro_rules! info {
    ($($t:tt)+) => { $crate::log::log_at!($crate::log::Level::Info, $($t)+) };
}
macro_rules! debug {
    ($($t:tt)+) => { $crate::log::log_at!($crate::log::Level::Debug, $($t)+) };
}
macro_rules! trace {
    ($($t:tt)+) => { $crate::log::log_at!($crate::log::Level::Trace, $($t)+) };
}

#[allow(unused_imports)]
pub(crate) use {args, debug, error, info, log_at, trace, warn_ as warn};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_from("error"), Level::Error);
        assert_eq!(level_from("WARN"), Level::Warn);
        assert_eq!(level_from(" info\n"), Level::Info);
        assert_eq!(level_from("debug"), Level::Debug);
        assert_eq!(level_from("trace"), Level::Trace);
        assert_eq!(level_from("1"), Level::Debug);
        assert_eq!(level_from(""), Level::Debug);
        assert!(Level::Error < Level::Warn && Level::Debug < Level::Trace);
    }

    #[test]
    fn renders_one_line() {
        let (pid, status) = (42, 0);
        assert_eq!(
            render(7, Level::Warn, args!(pid, status, "child exited")),
            "muontrap[7]: WARN child exited pid=42 status=0\n"
        );
        assert_eq!(
            render(1, Level::Trace, args!("no fields")),
            "muontrap[1]: TRACE no fields\n"
        );
    }

    #[test]
    fn renders_every_kind_of_field() {
        let path = std::path::Path::new("/sys/fs/cgroup/a b");
        let why = "gone";
        let verdict = Some(3u8);
        let line = render(
            9,
            Level::Debug,
            args!(
                path = %path.display(),
                error = %nix::errno::Errno::ENOENT,
                count = [1, 2].len(),
                why,
                ?verdict,
                reply = ?"x",
                "message"
            ),
        );
        assert_eq!(
            line,
            "muontrap[9]: DEBUG message path=/sys/fs/cgroup/a b \
             error=ENOENT: No such file or directory count=2 why=gone \
             verdict=Some(3) reply=\"x\"\n"
        );
    }

    #[test]
    fn off_until_set_and_arguments_unevaluated_when_off() {
        // The only test touching MAX: tests run in parallel.
        assert!(!enabled(Level::Error), "off by default");
        let evaluated = std::cell::Cell::new(false);
        let touch = || {
            evaluated.set(true);
            1
        };
        debug!(n = touch(), "not logged");
        assert!(!evaluated.get());
        MAX.store(Level::Info as u8, Ordering::Relaxed);
        assert!(enabled(Level::Error) && enabled(Level::Info));
        assert!(!enabled(Level::Debug));
        debug!(n = touch(), "not logged either");
        assert!(!evaluated.get());
        MAX.store(0, Ordering::Relaxed);
    }
}
