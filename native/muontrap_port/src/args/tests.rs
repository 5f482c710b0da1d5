//! `parse` over whole command lines, by topic; the helpers here serve
//! every test module under `args`.

use super::*;

mod cgroup;
mod framed;
mod notify;
mod parsing;

pub(super) fn argv(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// The configuration `a` parses into; panics if it is no run.
pub(super) fn run(a: &[&str]) -> Config {
    match parse(&argv(a)) {
        Ok(Parsed::Run(c)) => *c,
        other => panic!("{a:?} -> {other:?}"),
    }
}

/// The error `a` is refused with; panics if it is not.
pub(super) fn err(a: &[&str]) -> ArgError {
    match parse(&argv(a)) {
        Err(e) => e,
        other => panic!("{a:?} should fail, got {other:?}"),
    }
}
