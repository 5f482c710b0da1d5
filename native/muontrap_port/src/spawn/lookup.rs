//! The program's path, looked up in `PATH` once before the clone.
//!
//! `execvp` tries `execve` on each `PATH` entry in turn, and each failed
//! `execve` first copies every argument and environment string into a
//! new address space: with a BEAM's environment, eleven misses cost a
//! quarter of a millisecond. An `access(2)` per entry costs about a
//! microsecond. What is not found here is left to `execvp`, which then
//! reports the error it always has.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The first `dir/program` in `path` that is an executable regular file,
/// or `None` (a program with a `/`, no `PATH`, or nothing found).
pub fn resolve(program: &OsStr, path: Option<&OsStr>) -> Option<OsString> {
    let name = program.as_bytes();
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    path?
        .as_bytes()
        .split(|&b| b == b':')
        .map(|dir| candidate(dir, name))
        .find(|c| executable_file(c))
}

fn candidate(dir: &[u8], name: &[u8]) -> OsString {
    // An empty entry is the current directory, as for execvp.
    let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
    let mut c = dir.to_vec();
    if !c.ends_with(b"/") {
        c.push(b'/');
    }
    c.extend_from_slice(name);
    OsString::from_vec(c)
}

fn executable_file(path: &OsStr) -> bool {
    let Ok(c) = CString::new(path.as_bytes()) else {
        return false;
    };
    // SAFETY: stat(2) and access(2) on a NUL-terminated path, writing
    // into a zeroed stat buffer we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::stat(c.as_ptr(), &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && libc::access(c.as_ptr(), libc::X_OK) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_str(program: &str, path: &str) -> Option<String> {
        resolve(OsStr::new(program), Some(OsStr::new(path))).map(|p| p.into_string().unwrap())
    }

    #[test]
    fn finds_the_first_executable_in_path_order() {
        let dir = std::env::temp_dir().join(format!("mt_lookup_{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        // Not executable in a; a directory of the name in b first.
        std::fs::write(a.join("prog"), "").unwrap();
        std::fs::create_dir_all(b.join("prog")).unwrap();
        let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
        assert!(resolve_str("prog", &path).is_none());
        std::fs::set_permissions(
            a.join("prog"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(
            resolve_str("prog", &path),
            Some(format!("{}/prog", a.display()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leaves_paths_and_misses_to_execvp() {
        assert_eq!(resolve_str("./sh", "/bin"), None);
        assert_eq!(resolve_str("/bin/sh", "/bin"), None);
        assert_eq!(resolve_str("", "/bin"), None);
        assert_eq!(resolve_str("no-such-program-here", "/bin:/usr/bin"), None);
        assert_eq!(resolve(OsStr::new("sh"), None), None);
        assert!(resolve_str("sh", "/nonexistent::/bin").is_some());
    }
}
