//! The levels between a hierarchy's base and the group's leaf: made as
//! `mkdir -p` would (boards running as root rely on that), and removed
//! again once empty, deepest first.
//!
//! Other ports may share those levels (one `cgroup_base` for many
//! commands), so both directions race with them. A level muontrap creates
//! carries the sticky bit: whichever port leaves it empty removes it, also
//! one that found it already there, so the last command out cleans up. A
//! level without the mark was made by someone else and is never removed.
//! An rmdir that finds a level still in use fails harmlessly; a mkdir that
//! finds a level gone (another port just removed it) makes the chain again.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;

use super::os_error;

pub(super) use muontrap_cgroup::parents::LEAF_MODE;
use muontrap_cgroup::parents::{self as shared, Step, PARENT_MODE};
/// Tries at making the chain: each retry follows a removal by another port
/// that raced us, which needs that port to empty the level in between.
const CHAIN_ATTEMPTS: u32 = 10;

/// mkdir(2) as `make_chain` calls it; tests pass one that races.
pub(super) type MkdirFn<'a> = dyn FnMut(&Path, u32) -> io::Result<()> + 'a;

/// mkdir(2) without std's recursive DirBuilder machinery (binary size).
pub(super) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    nix::unistd::mkdir(path, Mode::from_bits_truncate(mode as _)).map_err(io::Error::from)
}

/// Directories from `base` down to `base/path`: `(levels above the leaf,
/// `base` first, leaf)`.
pub(super) fn levels(base: &Path, path: &str) -> (Vec<PathBuf>, PathBuf) {
    let mut levels = vec![base.to_path_buf()];
    let parts: Vec<&str> = path.split('/').collect();
    for i in 1..parts.len() {
        levels.push(base.join(parts[..i].join("/")));
    }
    (levels, base.join(path))
}

/// Creates the missing levels below `levels[0]`, then the leaf. A level
/// that vanished under us (ENOENT: another port removed a parent it had
/// emptied) makes the whole chain again, a bounded number of times. Every
/// parent created goes into `created` at once, so that a later failure
/// still removes it.
pub(super) fn make_chain(
    levels: &[PathBuf],
    leaf: &Path,
    created: &mut Vec<PathBuf>,
    mkdir: &mut MkdirFn<'_>,
) -> Result<(), String> {
    let mut attempt = 1;
    loop {
        match make_once(levels, leaf, created, mkdir) {
            Ok(()) => {
                crate::log::debug!(path = %leaf.display(), "created cgroup");
                return Ok(());
            }
            Err((dir, e)) if e.kind() == ErrorKind::NotFound && attempt < CHAIN_ATTEMPTS => {
                crate::log::debug!(path = %dir.display(), attempt, "a parent cgroup vanished, retrying");
                attempt += 1;
            }
            Err((dir, e)) if dir == leaf && e.kind() == ErrorKind::AlreadyExists => {
                return Err(format!("cgroup {} already exists", leaf.display()))
            }
            Err((dir, e)) => return Err(create_error(&dir, &e)),
        }
    }
}

/// One pass of `make_chain`; on failure, the directory it failed at.
fn make_once(
    levels: &[PathBuf],
    leaf: &Path,
    created: &mut Vec<PathBuf>,
    mkdir: &mut MkdirFn<'_>,
) -> Result<(), (PathBuf, io::Error)> {
    for dir in levels.iter().skip(1) {
        match mkdir(dir, PARENT_MODE) {
            Ok(()) => {
                crate::log::debug!(path = %dir.display(), "created parent cgroup");
                if !created.contains(dir) {
                    created.push(dir.clone());
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err((dir.clone(), e)),
        }
    }
    mkdir(leaf, LEAF_MODE).map_err(|e| (leaf.to_path_buf(), e))
}

/// "cannot create cgroup DIR: Permission denied", with the command that
/// fixes a permission problem.
fn create_error(dir: &Path, e: &io::Error) -> String {
    let mut msg = format!("cannot create cgroup {}: {}", dir.display(), os_error(e));
    if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
        let base = dir.parent().unwrap_or(dir);
        msg.push_str(&format!(
            "; fix: sudo mkdir -p {0} && sudo chown -R {1} {0} (see mix muontrap.doctor)",
            base.display(),
            nix::unistd::geteuid()
        ));
    }
    msg
}

/// Removes `parents` (shallowest first, as `levels` lists them) from the
/// deepest up while they are muontrap's and empty: created by this port
/// (`created`) or marked by another (`muontrap_cgroup::parents`, which
/// the NIF's cleanup uses too).
pub(super) fn remove_parents(parents: &[PathBuf], created: &[PathBuf]) {
    shared::remove(parents, created, &mut |step| match step {
        Step::Removed(dir) => crate::log::debug!(path = %dir.display(), "removed parent cgroup"),
        Step::Gone(_) => {}
        Step::NotOurs(dir) => {
            crate::log::debug!(path = %dir.display(), "kept parent cgroup: not created by muontrap")
        }
        Step::InUse(dir) => {
            crate::log::debug!(path = %dir.display(), "kept parent cgroup: still in use")
        }
        Step::Failed(dir, e) => {
            crate::log::warn!(path = %dir.display(), error = %e, "could not remove parent cgroup")
        }
    });
}
