//! Mapping caller-supplied cgroup paths and file names onto the cgroup2
//! filesystem, and the reads/writes themselves.
//!
//! This is the only place that touches the filesystem, so all validation
//! lives here: nothing outside the cgroup2 mount can be read or written.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use muontrap_cgroup::{mount, path as cgpath};

use crate::errno;

/// Why a request failed, mapped to `{:error, reason}` by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The daemon isn't running under a cgroup (path was `nil`).
    NoCgroup,
    /// A POSIX error atom name such as `"enoent"`.
    Posix(&'static str),
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Failure::Posix(errno::atom_name(&err))
    }
}

/// Whether the cgroup2 root itself (path `""`) may be addressed. Reading
/// root stats is harmless and useful; writing root knobs
/// (`cgroup.subtree_control`, `cgroup.procs`) is never what a daemon wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Allow,
    Deny,
}

/// Only successful lookups are cached so a cgroup2 mount that appears after
/// the first call is still found.
static MOUNT: OnceLock<PathBuf> = OnceLock::new();

fn cgroup2_mount() -> Result<&'static Path, Failure> {
    if let Some(p) = MOUNT.get() {
        return Ok(p);
    }
    let found = mount::cgroup2_mount()?;
    Ok(MOUNT.get_or_init(|| found))
}

/// Validates `cgroup` (relative to the mount) and returns it as a relative
/// path; `""` is the mount root when `root` allows it.
pub fn relative_dir(cgroup: &[u8], root: Root) -> Result<PathBuf, Failure> {
    const EINVAL: Failure = Failure::Posix("einval");
    // Non-UTF-8 names can't pass validation meaningfully; cgroup names
    // MuonTrap creates are always ASCII.
    let cgroup = std::str::from_utf8(cgroup).map_err(|_| EINVAL)?;
    if cgroup.is_empty() {
        return match root {
            Root::Allow => Ok(PathBuf::new()),
            Root::Deny => Err(EINVAL),
        };
    }
    cgpath::validate_cgroup_path(cgroup).map_err(|_| EINVAL)?;
    Ok(PathBuf::from(cgroup))
}

/// Validates a single interface file name.
pub fn file_name(file: &[u8]) -> Result<&str, Failure> {
    const EINVAL: Failure = Failure::Posix("einval");
    let file = std::str::from_utf8(file).map_err(|_| EINVAL)?;
    cgpath::validate_file_name(file).map_err(|_| EINVAL)?;
    Ok(file)
}

/// Absolute directory of a cgroup. `None` means the daemon has no cgroup.
pub fn cgroup_dir(cgroup: Option<&[u8]>, root: Root) -> Result<PathBuf, Failure> {
    let rel = relative_dir(cgroup.ok_or(Failure::NoCgroup)?, root)?;
    Ok(cgroup2_mount()?.join(rel))
}

/// Absolute path of an interface file. Everything is validated before the
/// mount lookup so bad input is always `einval`, whatever the host.
fn file_path(cgroup: Option<&[u8]>, file: &[u8], root: Root) -> Result<PathBuf, Failure> {
    let rel = relative_dir(cgroup.ok_or(Failure::NoCgroup)?, root)?;
    let file = file_name(file)?;
    Ok(cgroup2_mount()?.join(rel).join(file))
}

/// Reads one interface file.
pub fn read(cgroup: Option<&[u8]>, file: &[u8]) -> Result<Vec<u8>, Failure> {
    Ok(std::fs::read(file_path(cgroup, file, Root::Allow)?)?)
}

/// Writes one interface file. The value goes out in a single `write(2)`
/// because cgroup files parse each write as a whole command.
pub fn write(cgroup: Option<&[u8]>, file: &[u8], value: &[u8]) -> Result<(), Failure> {
    let path = file_path(cgroup, file, Root::Deny)?;
    // No create/truncate: only existing interface files may be written.
    let mut f = OpenOptions::new().write(true).open(path)?;
    let written = f.write(value)?;
    if written != value.len() {
        return Err(Failure::Posix("eio"));
    }
    Ok(())
}

/// Reads a file in an already validated cgroup directory as text. Any
/// failure means "omit this entry" to the table-driven callers.
pub fn read_text(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EINVAL: Failure = Failure::Posix("einval");

    #[test]
    fn relative_dirs() {
        assert_eq!(
            relative_dir(b"muontrap/a1", Root::Deny),
            Ok("muontrap/a1".into())
        );
        assert_eq!(relative_dir(b"", Root::Allow), Ok(PathBuf::new()));
        assert_eq!(relative_dir(b"", Root::Deny), Err(EINVAL));
        for bad in [
            &b".."[..],
            b".",
            b"/etc",
            b"a/../..",
            b"a//b",
            b"a\0",
            b"\xff",
        ] {
            assert_eq!(relative_dir(bad, Root::Allow), Err(EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(b"cgroup.procs"), Ok("cgroup.procs"));
        for bad in [
            &b""[..],
            b"..",
            b"../../etc/passwd",
            b"/etc/passwd",
            b"a\0",
            b"\xfe",
        ] {
            assert_eq!(file_name(bad), Err(EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn nil_cgroup() {
        assert_eq!(cgroup_dir(None, Root::Allow), Err(Failure::NoCgroup));
        assert_eq!(read(None, b"x"), Err(Failure::NoCgroup));
        assert_eq!(write(None, b"x", b"1"), Err(Failure::NoCgroup));
    }

    #[test]
    fn validates_before_touching_the_filesystem() {
        assert_eq!(read(Some(b".."), b"x"), Err(EINVAL));
        assert_eq!(read(Some(b""), b"../../etc/passwd"), Err(EINVAL));
        assert_eq!(write(Some(b"/tmp"), b"x", b"1"), Err(EINVAL));
    }
}
