//! `find_executable(name, path)`: OTP's `os:find_executable/2` on Unix,
//! in one call. The Erlang version asks `file:read_file_info/1` about
//! each `PATH` entry in turn, a round trip to a dirty IO scheduler each,
//! about 50 µs for a dozen entries and several times that on a busy BEAM;
//! a daemon's start and a `cmd/3` whose `PATH` has a relative entry wait
//! for it (docs/performance.md, round 16). Same answers, same strings
//! (test/muontrap/executable_test.exs compares them): a name that does
//! not start with "/" is joined (`filename:join/2`) to each entry in
//! order, an empty entry meaning "." and a quoted one its inside, and the
//! first that `stat(2)` finds a regular file with an execute bit (anyone's)
//! is it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use rustler::types::binary::NewBinary;
use rustler::{Binary, Encoder, Env, NifResult, Term};

/// The executable `name` resolves to with `path` (a `PATH` value), as
/// `os:find_executable/2` finds it.
pub fn find(name: &[u8], path: &[u8]) -> Option<Vec<u8>> {
    if name.first() == Some(&b'/') {
        return executable(name).then(|| name.to_vec());
    }
    path.split(|&b| b == b':')
        .map(|entry| join(unquote(entry), name))
        .find(|candidate| executable(candidate))
}

/// An entry as `os:find_executable/2` reads it: empty is ".", one quoted
/// at both ends is what is inside.
fn unquote(entry: &[u8]) -> &[u8] {
    match entry {
        [] => b".",
        [b'"', inside @ .., b'"'] => inside,
        _ => entry,
    }
}

/// `filename:join(dir, name)` for a relative `name`: repeated slashes are
/// one, a "." component after a slash goes, and no slash ends it.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + name.len() + 1);
    for &c in dir {
        push(&mut out, c);
    }
    if out.ends_with(b"/.") {
        out.pop();
    } else if !out.ends_with(b"/") {
        out.push(b'/');
    }
    for &c in name {
        push(&mut out, c);
    }
    if out.len() > 1 && out.ends_with(b"/") {
        out.pop();
    }
    out
}

fn push(out: &mut Vec<u8>, c: u8) {
    if c == b'/' {
        if out.ends_with(b"/.") {
            out.pop();
            return;
        }
        if out.ends_with(b"/") {
            return;
        }
    }
    out.push(c);
}

/// A regular file (symbolic links followed) with any execute bit set.
fn executable(file: &[u8]) -> bool {
    std::fs::metadata(OsStr::from_bytes(file))
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `find_executable(name, path) :: binary | nil`. On a dirty IO scheduler:
/// a `PATH` entry may be on a network file system.
#[rustler::nif(schedule = "DirtyIo")]
fn find_executable<'a>(env: Env<'a>, name: Binary<'a>, path: Binary<'a>) -> NifResult<Term<'a>> {
    Ok(match find(name.as_slice(), path.as_slice()) {
        Some(found) => {
            let mut bin = NewBinary::new(env, found.len());
            bin.as_mut_slice().copy_from_slice(&found);
            Binary::from(bin).encode(env)
        }
        None => rustler::types::atom::nil().encode(env),
    })
}

#[cfg(test)]
mod tests {
    use super::join;

    // filename:join/2's answers (OTP 25), taken from `erl`.
    #[test]
    fn join_is_filename_join() {
        let cases: [(&[u8], &[u8], &[u8]); 11] = [
            (b"/usr//bin", b"ls", b"/usr/bin/ls"),
            (b"a/./b", b"c", b"a/b/c"),
            (b"/", b"ls", b"/ls"),
            (b"bin/", b"./ls", b"bin/ls"),
            (b"//x", b"y", b"/x/y"),
            (b"a/../b", b"c", b"a/../b/c"),
            (b"bin", b".//ls", b"bin/ls"),
            (b".", b"ls", b"./ls"),
            (b"a", b".", b"a/."),
            (b"a/.", b"b", b"a/b"),
            (b"", b"ls", b"/ls"),
        ];
        for (dir, name, joined) in cases {
            assert_eq!(join(dir, name), joined, "{dir:?} {name:?}");
        }
    }
}
