//! Spelling a `Command` out as a command line, in one of the many ways
//! the parser accepts: long, short or `--name=value` forms, leading zeros,
//! signal names, options at their default given or left out, `--`.

use std::ffi::OsString;

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::{Command, IdSpec, OPTIONS};
use crate::{Capture, CgroupConfig, DEFAULT_WINDOW, DELAY_TO_SIGKILL_MS, INFINITY};
use muontrap_wire::signals::SIGNALS;

/// How an option and its value are spelled.
#[derive(Debug, Clone, Copy)]
enum Form {
    Long,
    Short,
    Inline,
}

/// The spelling choices: a form per option, leading zeros, whether an
/// option at its default is given anyway, signals by name, `--`.
#[derive(Debug, Clone)]
pub(super) struct Style {
    forms: Vec<Form>,
    zeros: usize,
    explicit: bool,
    by_name: bool,
    dash_dash: bool,
}

pub(super) fn style() -> impl Strategy<Value = Style> {
    let form = prop_oneof![Just(Form::Long), Just(Form::Short), Just(Form::Inline)];
    let choices = (0..3usize, any::<[bool; 3]>());
    (vec(form, 24), choices).prop_map(|(forms, (zeros, [explicit, by_name, dash_dash]))| Style {
        forms,
        zeros,
        explicit,
        by_name,
        dash_dash,
    })
}

/// The words for option `long` with `value`; `Short` falls back to
/// `Long` where there is no short name, `Inline` where the value is not
/// UTF-8 (an `--x=v` word must be).
fn spell(long: &str, value: OsString, form: Form) -> Vec<OsString> {
    let short = OPTIONS
        .iter()
        .find(|(l, ..)| *l == long)
        .map(|(_, s, _)| *s);
    match (form, short, value.to_str()) {
        (Form::Inline, _, Some(v)) => vec![format!("{long}={v}").into()],
        (Form::Short, Some(s), _) if !s.is_empty() => vec![s.into(), value],
        _ => vec![long.into(), value],
    }
}

/// The options spelled so far, each as its words.
struct Words<'a> {
    style: &'a Style,
    next_form: usize,
    options: Vec<Vec<OsString>>,
}

impl Words<'_> {
    fn spelled(&mut self, long: &str, value: impl Into<OsString>) -> Vec<OsString> {
        let forms = &self.style.forms;
        self.next_form += 1;
        spell(long, value.into(), forms[self.next_form % forms.len()])
    }

    fn value(&mut self, long: &str, value: impl Into<OsString>) {
        let words = self.spelled(long, value);
        self.options.push(words);
    }

    fn flag(&mut self, name: &str) {
        self.options.push(vec![name.into()]);
    }

    /// A decimal with leading zeros, which the parser allows.
    fn decimal(&self, n: impl std::fmt::Display) -> String {
        format!("{}{n}", "0".repeat(self.style.zeros))
    }
}

fn id(i: &IdSpec) -> String {
    match i {
        IdSpec::Id(n) => n.to_string(),
        IdSpec::Name(s) => s.clone(),
    }
}

fn limit(v: u64) -> String {
    if v == INFINITY {
        "infinity".into()
    } else {
        v.to_string()
    }
}

/// Every option `c` needs, each as its words, in no particular order.
pub(super) fn options(c: &Command, style: &Style) -> Vec<Vec<OsString>> {
    let mut w = Words {
        style,
        next_form: 0,
        options: Vec::new(),
    };
    process_options(c, &mut w);
    attr_options(c, &mut w);
    flags(c, &mut w);
    if let Some(g) = c.cgroup() {
        w.options.push(cgroup_words(&g));
    }
    w.options
}

fn process_options(c: &Command, w: &mut Words<'_>) {
    if let Some(a) = &c.arg0 {
        w.value("--arg0", a.0.clone());
    }
    if c.delay_to_sigkill_ms != DELAY_TO_SIGKILL_MS || w.style.explicit {
        w.value("--delay-to-sigkill", w.decimal(c.delay_to_sigkill_ms));
    }
    if c.window != DEFAULT_WINDOW || w.style.explicit {
        w.value("--stdio-window", w.decimal(c.window));
    }
    if let Some(u) = &c.uid {
        w.value("--uid", id(u));
    }
    if let Some(g) = &c.gid {
        w.value("--gid", id(g));
    }
    if let Some(gs) = &c.supplementary_groups {
        let list: Vec<String> = gs.iter().map(id).collect();
        w.value("--groups", list.join(","));
    }
}

fn attr_options(c: &Command, w: &mut Words<'_>) {
    let stop = c.stop_signal.0;
    if stop != libc::SIGTERM || w.style.explicit {
        let name = SIGNALS.iter().find(|(_, n)| *n == stop);
        let s = match name.filter(|_| w.style.by_name) {
            Some((name, _)) => format!("sig{}", name.to_lowercase()),
            None => stop.to_string(),
        };
        w.value("--stop-signal", s);
    }
    if let Some(u) = c.umask {
        w.value(
            "--umask",
            format!("{u:0width$o}", width = 2 + w.style.zeros),
        );
    }
    if let Some(n) = c.nice {
        let sign = if n < 0 { "-" } else { "" };
        w.value("--nice", format!("{sign}{}", w.decimal(n.abs())));
    }
    // In the order given, which is the order they are applied in: one
    // unit, kept together when the options are shuffled.
    let rlimits: Vec<Vec<OsString>> = c
        .rlimits
        .0
        .iter()
        .map(|r| {
            let value = if r.soft == r.hard && w.style.explicit {
                limit(r.soft)
            } else {
                format!("{}:{}", limit(r.soft), limit(r.hard))
            };
            w.spelled("--rlimit", format!("{}={value}", r.resource.name()))
        })
        .collect();
    w.options.push(rlimits.concat());
    // The last of a NAME wins: in order too.
    let env: Vec<Vec<OsString>> = c
        .env
        .iter()
        .map(|(name, value)| match value {
            Some(v) => {
                let mut arg = name.0.clone();
                arg.push("=");
                arg.push(v);
                w.spelled("--setenv", arg)
            }
            None => w.spelled("--unsetenv", name.0.clone()),
        })
        .collect();
    w.options.push(env.concat());
}

fn flags(c: &Command, w: &mut Words<'_>) {
    match c.capture {
        Capture::None => {}
        Capture::Stdout => w.flag("--capture-output"),
        Capture::StdoutAndStderr => w.flag("--capture-stderr"),
        Capture::StderrOnly => w.flag("--capture-stderr-only"),
    }
    // --capture-stderr-only wins over the others.
    if c.capture == Capture::StderrOnly && w.style.explicit {
        w.flag("--capture-output");
    }
}

/// `-g`, then the controllers (or `--no-controllers`) before any `-s`:
/// one unit, kept together when the options are shuffled.
fn cgroup_words(g: &CgroupConfig) -> Vec<OsString> {
    let mut w: Vec<OsString> = vec!["-g".into(), g.path.into()];
    if g.controllers.is_empty() {
        w.push("--no-controllers".into());
    }
    for c in g.controllers {
        w.extend(["-c".into(), c.into()]);
    }
    for (f, v) in g.settings {
        w.extend(["-s".into(), format!("{f}={v}").into()]);
    }
    if g.beneath_own_cgroup {
        w.push("--beneath-own-cgroup".into());
    }
    w
}

/// The whole command line: the options in the order given, the program
/// (after `--` when it looks like an option, or by choice) and its args.
pub(super) fn argv(c: &Command, style: &Style, options: &[Vec<OsString>]) -> Vec<OsString> {
    let looks_like_option = c
        .program
        .to_str()
        .is_some_and(|s| s.starts_with('-') && s.len() > 1);
    let mut argv = options.concat();
    if style.dash_dash || looks_like_option {
        argv.push("--".into());
    }
    argv.push(c.program.0.clone());
    argv.extend(c.args.iter().map(|a| a.0.clone()));
    argv
}
