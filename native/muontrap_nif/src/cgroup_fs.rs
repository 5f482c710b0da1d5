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
use muontrap_cgroup::v1::{self, SetError};

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

/// Hands the port binary the host's layout with a command that has a
/// cgroup (nothing is looked up otherwise), so it does not read
/// mountinfo and `/proc/self/cgroup` again per start: `layout` is
/// [`layout`] in the NIF. Without a layout (no cgroupfs found) the field
/// stays empty and the port detects, and reports, as it always did.
///
/// The layout's `own` groups are the BEAM's, and they are the port's
/// too, which `beneath_own_cgroup` needs: the port is a child of the BEAM
/// (through `erl_child_setup`, forked from it) and starts in its cgroups,
/// as a forked process does. And the NIF's own calls (`cgget`, `cleanup`)
/// anchor `beneath_own_cgroup` on this same cached `own`, so the port
/// creates a group exactly where they look for it.
pub fn hand_layout(
    cmd: &mut muontrap_command::Command,
    layout: impl FnOnce() -> Result<&'static Layout, Failure>,
) {
    if cmd.cgroup_path.is_some() {
        cmd.cgroup_layout = layout().ok().cloned();
    }
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

/// A validated group and file name, and the layout. Everything is
/// validated before the layout lookup so bad input is always `einval`,
/// whatever the host.
fn target<'f>(
    group: Option<Group>,
    file: &'f [u8],
    root: Root,
) -> Result<(Resolved, &'f str, &'static Layout), Failure> {
    let resolved = resolve(group, root)?;
    let file = file_name(file)?;
    Ok((resolved, file, layout()?))
}

impl Resolved {
    /// Absolute path of interface file `file`.
    fn path_of(&self, layout: &Layout, file: &str) -> Result<PathBuf, Failure> {
        let dir = self.dir_for(layout, file).ok_or(Failure::Posix("enoent"))?;
        Ok(dir.join(file))
    }

    /// Reads v1 file `file` (from its controller's hierarchy) as text.
    fn read_v1(&self, layout: &Layout, file: &str) -> Option<String> {
        read_text(&self.dir_for(layout, file)?, file)
    }
}

/// Whether `file` is a v2 name that `muontrap_cgroup` maps to v1 files,
/// and its controller is bound to v1 here.
fn mapped_to_v1(layout: &Layout, file: &str) -> bool {
    v1::mapped_controller(file).is_some_and(|c| layout.v1_for(c).is_some())
}

/// Reads one interface file: a v2 name mapped to v1 files (see
/// `muontrap_cgroup::v1::read_v2_text`) as the v2 file would read, any
/// other name as it is. A mapped name whose v1 files cannot be read is
/// read as named too, so a missing group or file is still `enoent`.
pub fn read(group: Option<Group>, file: &[u8]) -> Result<Vec<u8>, Failure> {
    let (resolved, file, layout) = target(group, file, Root::Allow)?;
    if mapped_to_v1(layout, file) {
        let read = |f: &str| resolved.read_v1(layout, f);
        if let Some(text) = v1::read_v2_text(file, &read) {
            return Ok(text.into_bytes());
        }
    }
    Ok(std::fs::read(resolved.path_of(layout, file)?)?)
}

/// Writes one interface file: a v2 setting mapped to v1 files (see
/// `muontrap_cgroup::v1::v2_writes`) to those files, converted, any other
/// name as it is. A value the mapping refuses is `einval`.
pub fn write(group: Option<Group>, file: &[u8], value: &[u8]) -> Result<(), Failure> {
    const EINVAL: Failure = Failure::Posix("einval");
    let (resolved, file, layout) = target(group, file, Root::Deny)?;
    if mapped_to_v1(layout, file) {
        let text = std::str::from_utf8(value).map_err(|_| EINVAL)?;
        let read = |f: &str| resolved.read_v1(layout, f);
        match v1::v2_writes(file, text, &read) {
            Ok(writes) => return write_in_order(&resolved, layout, &writes),
            Err(SetError::Invalid) => return Err(EINVAL),
            Err(SetError::NotMapped) => {}
        }
    }
    write_file(&resolved.path_of(layout, file)?, value)
}

/// Makes `writes` one after the other. v2 sets a value in one write, so
/// when a later one fails the earlier ones are undone (`cpu.max`'s quota
/// when its period is refused): the group is left as it was.
fn write_in_order(
    resolved: &Resolved,
    layout: &Layout,
    writes: &[(&str, String)],
) -> Result<(), Failure> {
    let mut done: Vec<(PathBuf, String)> = Vec::new();
    for (file, text) in writes {
        let path = resolved.path_of(layout, file)?;
        let old = std::fs::read_to_string(&path);
        if let Err(failure) = write_file(&path, text.as_bytes()) {
            for (path, old) in done.iter().rev() {
                // Best effort: the old value was in force a moment ago.
                let _ = write_file(path, old.trim().as_bytes());
            }
            return Err(failure);
        }
        if let Ok(old) = old {
            done.push((path, old));
        }
    }
    Ok(())
}

/// Writes an existing interface file. The value goes out in a single
/// `write(2)` because cgroup files parse each write as a whole command.
fn write_file(path: &Path, value: &[u8]) -> Result<(), Failure> {
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
        .filter(|dir| teardown::remove_tree(dir).is_err())
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

    #[test]
    fn hands_the_layout_only_with_a_cgroup() {
        static FOUND: OnceLock<Layout> = OnceLock::new();
        let found = FOUND.get_or_init(|| Layout {
            v2: Some(Hierarchy {
                version: 2,
                mount_point: "/sys/fs/cgroup".into(),
                controllers: vec![],
                own: Some("beam.slice".into()),
            }),
            v1: vec![],
        });
        let mut plain = muontrap_command::Command::default();
        hand_layout(&mut plain, || panic!("looked up without a cgroup"));
        assert_eq!(plain.cgroup_layout, None);

        let mut with = muontrap_command::Command {
            cgroup_path: Some("a/b".into()),
            ..Default::default()
        };
        hand_layout(&mut with, || Err(Failure::Posix("enoent")));
        assert_eq!(with.cgroup_layout, None, "no cgroupfs: the port detects");
        hand_layout(&mut with, || Ok(found));
        assert_eq!(with.cgroup_layout.as_ref(), Some(found));
    }
}
