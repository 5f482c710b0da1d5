//! Mapping caller-supplied cgroup paths and file names onto the host's
//! cgroup hierarchies (v2, or the v1 hierarchy of a file's controller), and
//! the reads/writes themselves.
//!
//! All validation lives here: the rest of the NIF reaches a group's files
//! only through a [`Resolved`] group made here, so nothing outside the
//! cgroup mounts can be read or written.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use muontrap_cgroup::layout::{Hierarchy, Kind, Layout};
use muontrap_cgroup::path as cgpath;
use muontrap_cgroup::teardown::{self, Tracking};

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

/// A group as the Elixir side names it: a path relative to each
/// hierarchy's root, or (`beneath_own_cgroup`) to the BEAM's own cgroup in it.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub path: &'a [u8],
    pub beneath_own_cgroup: bool,
}

/// The host's layout, the BEAM side's one cache of it (`MuonTrap.Cgroup`
/// keeps a copy of what `layout` returns from here). The BEAM runs for as
/// long as the system does, so a layout without any cgroup filesystem is
/// detected again on the next call: a mount that appears later (a board's
/// init mounting cgroup2 after the VM started) is then seen. Once found,
/// a layout is kept: hierarchies are not remounted elsewhere while the
/// system runs, and reading mountinfo for every daemon call would cost
/// more than the call itself.
static LAYOUT: OnceLock<Layout> = OnceLock::new();

/// The cached layout (see [`LAYOUT`]); `enoent` without cgroupfs.
pub fn layout() -> Result<&'static Layout, Failure> {
    if let Some(l) = LAYOUT.get() {
        return Ok(l);
    }
    let found = Layout::detect()?;
    if found.kind() == Kind::None {
        return Err(Failure::Posix("enoent"));
    }
    Ok(LAYOUT.get_or_init(|| found))
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

/// A validated group: the relative path and where it is anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    rel: String,
    beneath_own_cgroup: bool,
}

impl Resolved {
    /// The group's directory in `h` (`None` if the BEAM's own group in it
    /// is unknown).
    pub fn dir_in(&self, h: &Hierarchy) -> Option<PathBuf> {
        h.dir(&self.rel, self.beneath_own_cgroup)
    }

    /// The directory holding interface file `file`: the v1 hierarchy of its
    /// controller, else cgroup2.
    pub fn dir_for(&self, layout: &Layout, file: &str) -> Option<PathBuf> {
        self.dir_in(layout.hierarchy_for_file(file)?)
    }
}

pub fn resolve(group: Option<Group>, root: Root) -> Result<Resolved, Failure> {
    let group = group.ok_or(Failure::NoCgroup)?;
    let rel = relative_dir(group.path, root)?;
    Ok(Resolved {
        rel: rel.to_string_lossy().into_owned(),
        beneath_own_cgroup: group.beneath_own_cgroup,
    })
}

/// Absolute path of an interface file. Everything is validated before the
/// layout lookup so bad input is always `einval`, whatever the host.
fn file_path(group: Option<Group>, file: &[u8], root: Root) -> Result<PathBuf, Failure> {
    let resolved = resolve(group, root)?;
    let file = file_name(file)?;
    let dir = resolved
        .dir_for(layout()?, file)
        .ok_or(Failure::Posix("enoent"))?;
    Ok(dir.join(file))
}

/// Reads one interface file.
pub fn read(group: Option<Group>, file: &[u8]) -> Result<Vec<u8>, Failure> {
    Ok(std::fs::read(file_path(group, file, Root::Allow)?)?)
}

/// Writes one interface file. The value goes out in a single `write(2)`
/// because cgroup files parse each write as a whole command.
pub fn write(group: Option<Group>, file: &[u8], value: &[u8]) -> Result<(), Failure> {
    let path = file_path(group, file, Root::Deny)?;
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

/// Kills every process left in the group and removes its directories in
/// every hierarchy, as the port binary does at exit (`teardown`, the same
/// policy), for when it was killed before it could. Returns the
/// directories that remain.
pub fn kill_and_remove(group: Option<Group>) -> Result<Vec<PathBuf>, Failure> {
    let resolved = resolve(group, Root::Deny)?;
    let layout = layout()?;
    if let Some(h) = layout.tracking() {
        if let Some(dir) = resolved.dir_in(h) {
            // What is left in use fails to be removed and is returned.
            let _ = Tracking::new(&dir, h.version, &h.controllers).kill_all();
        }
    }
    let left = layout
        .v2
        .iter()
        .chain(layout.v1.iter())
        .filter_map(|h| resolved.dir_in(h))
        .filter(|dir| teardown::remove_dir(dir).is_err())
        .collect();
    Ok(left)
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

    fn g(path: &[u8]) -> Option<Group<'_>> {
        Some(Group {
            path,
            beneath_own_cgroup: false,
        })
    }

    #[test]
    fn nil_cgroup() {
        assert!(matches!(resolve(None, Root::Allow), Err(Failure::NoCgroup)));
        assert_eq!(kill_and_remove(None), Err(Failure::NoCgroup));
        assert_eq!(read(None, b"x"), Err(Failure::NoCgroup));
        assert_eq!(write(None, b"x", b"1"), Err(Failure::NoCgroup));
    }

    #[test]
    fn validates_before_touching_the_filesystem() {
        assert_eq!(read(g(b".."), b"x"), Err(EINVAL));
        assert_eq!(read(g(b""), b"../../etc/passwd"), Err(EINVAL));
        assert_eq!(write(g(b"/tmp"), b"x", b"1"), Err(EINVAL));
        assert_eq!(write(g(b""), b"cgroup.procs", b"1"), Err(EINVAL));
        assert_eq!(kill_and_remove(g(b"")), Err(EINVAL));
    }
}
