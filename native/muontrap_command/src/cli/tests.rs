//! `parse` over whole command lines, by topic; the helpers here serve
//! every test module under `args`.

use super::*;

mod cgroup;
mod parsing;

pub(super) fn argv(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// `a` as the command's arguments.
pub(super) fn bytes(a: &[&str]) -> Vec<crate::Bytes> {
    a.iter().map(|&s| crate::Bytes::from(s)).collect()
}

/// The configuration `a` parses into; panics if it is no run.
pub(super) fn run(a: &[&str]) -> Command {
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
