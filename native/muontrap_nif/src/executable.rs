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

use std::ffi::{CStr, OsStr};
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

/// `path_all_absolute() :: boolean`: whether the BEAM's `PATH` of the
/// moment (its own environment, which `System.put_env/2` changes) is set
/// and every entry starts with "/", so that a lookup finds the same file
/// from any directory (`MuonTrap.Options` then leaves it to the
/// supervisor). One `enif_getenv` instead of `System.get_env/1`'s list of
/// characters made a binary and split, at every `cmd/3`
/// (docs/performance.md, round 17).
#[rustler::nif]
fn path_all_absolute() -> bool {
    beam_getenv(c"PATH", all_absolute).unwrap_or(false)
}

fn all_absolute(path: &[u8]) -> bool {
    path.split(|&b| b == b':')
        .all(|entry| entry.first() == Some(&b'/'))
}

/// `f` of `name`'s value in the BEAM's environment (`enif_getenv`: the one
/// `os:getenv/1` reads, not the process's), raw bytes; `None` if unset or
/// longer than `execve` takes (`MAX_ARG_STRLEN`, 128 KiB).
fn beam_getenv<R>(name: &CStr, f: impl Fn(&[u8]) -> R) -> Option<R> {
    let mut small = [0u8; 1024];
    let mut big = Vec::new();
    loop {
        let buf: &mut [u8] = if big.is_empty() { &mut small } else { &mut big };
        let room = buf.len();
        let mut size = room;
        // SAFETY: `name` is NUL-terminated and `buf` writable for `size`
        // bytes; enif_getenv writes at most that, and sets `size` to the
        // value's length when it returns 0.
        match unsafe {
            rustler::sys::enif_getenv(name.as_ptr(), buf.as_mut_ptr().cast(), &mut size)
        } {
            0 => return Some(f(buf.get(..size).unwrap_or(buf))),
            // Too small: OTP 25 does not say how much is needed.
            1 if room < 128 * 1024 => big = vec![0; room * 2],
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{all_absolute, join};

    #[test]
    fn absolute_path_entries() {
        assert!(all_absolute(b"/usr/bin:/bin"));
        assert!(all_absolute(b"/"));
        for odd in [
            &b""[..],
            b":/bin",
            b"/bin:",
            b"/bin::/usr/bin",
            b"bin:/bin",
            b"/bin:./x",
        ] {
            assert!(!all_absolute(odd), "{odd:?}");
        }
    }

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
