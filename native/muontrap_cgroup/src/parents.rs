//! The parent levels between a hierarchy's base and a group's leaf that
//! muontrap creates (`mkdir -p`), and removes again once empty: the port
//! binary when its program ends, the NIF for a port binary that died
//! before it could (docs/protocol.md, "Cgroup parents").
//!
//! A level muontrap creates carries [`MARK`], the sticky bit, so that
//! whichever port leaves it empty removes it, also one that found it
//! already there. A level without the mark is someone else's and is never
//! removed.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The mark: set on the parent levels muontrap creates, never on leaves.
pub const MARK: u32 = 0o1000;
/// The mode of a parent level muontrap creates.
pub const PARENT_MODE: u32 = 0o755 | MARK;
/// The mode of a leaf.
pub const LEAF_MODE: u32 = 0o755;

/// What happened to one level, deepest first; the walk stops after any
/// but `Removed` and `Gone`.
#[derive(Debug)]
pub enum Step<'a> {
    Removed(&'a Path),
    /// Another port that shared it got there first.
    Gone(&'a Path),
    /// Neither created by the caller nor marked: someone else's.
    NotOurs(&'a Path),
    /// It still holds a group: its last user removes it.
    InUse(&'a Path),
    Failed(&'a Path, io::Error),
}

/// Removes `parents` (shallowest first) from the deepest up while they
/// are muontrap's and empty: in `created` (made by the caller) or marked.
/// Stops at the first that is not, as everything above it is in use or
/// someone else's too. `report` hears of each level looked at.
pub fn remove(parents: &[PathBuf], created: &[PathBuf], report: &mut dyn FnMut(Step<'_>)) {
    for dir in parents.iter().rev() {
        if !created.contains(dir) && !marked_or_gone(dir) {
            return report(Step::NotOurs(dir));
        }
        match fs::remove_dir(dir) {
            Ok(()) => report(Step::Removed(dir)),
            Err(e) if e.kind() == ErrorKind::NotFound => report(Step::Gone(dir)),
            Err(e) if in_use(&e) => return report(Step::InUse(dir)),
            Err(e) => return report(Step::Failed(dir, e)),
        }
    }
}

/// The parent levels of `leaf`, a group `depth` components below its
/// hierarchy's base (shallowest first, without the base and the leaf).
pub fn of_leaf(leaf: &Path, depth: usize) -> Vec<PathBuf> {
    let mut parents: Vec<PathBuf> = leaf
        .ancestors()
        .skip(1)
        .take(depth.saturating_sub(1))
        .map(Path::to_path_buf)
        .collect();
    parents.reverse();
    parents
}

/// A gone level counts as marked: the one above may still be due.
fn marked_or_gone(dir: &Path) -> bool {
    match fs::symlink_metadata(dir) {
        Ok(meta) => meta.permissions().mode() & MARK != 0,
        Err(e) => e.kind() == ErrorKind::NotFound,
    }
}

/// rmdir(2) of a group with a child (EBUSY in cgroupfs, ENOTEMPTY or
/// EEXIST elsewhere).
fn in_use(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::ENOTEMPTY) | Some(libc::EEXIST)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::DirBuilderExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("muontrap-parents-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mkdir(dir: &Path, mode: u32) {
        fs::DirBuilder::new().mode(mode).create(dir).unwrap();
        // The umask may have cleared bits; the mark must be there.
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn parents_of_a_leaf() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(of_leaf(&p("/r/a/b/leaf"), 3), [p("/r/a"), p("/r/a/b")]);
        assert_eq!(of_leaf(&p("/r/leaf"), 1), Vec::<PathBuf>::new());
        assert_eq!(of_leaf(&p("/r/leaf"), 0), Vec::<PathBuf>::new());
    }

    #[test]
    fn removes_marked_levels_up_to_an_unmarked_one() {
        let root = scratch("marked");
        let (a, b, c) = (root.join("a"), root.join("a/b"), root.join("a/b/c"));
        mkdir(&a, LEAF_MODE);
        mkdir(&b, PARENT_MODE);
        mkdir(&c, PARENT_MODE);
        let mut steps = Vec::new();
        remove(&of_leaf(&c.join("leaf"), 4), &[], &mut |s| {
            steps.push(format!("{s:?}"))
        });
        assert!(!b.exists() && a.exists(), "{steps:?}");
        assert_eq!(steps.len(), 3, "{steps:?}");
        assert!(steps[2].starts_with("NotOurs"), "{steps:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn keeps_a_level_in_use_and_removes_what_it_created() {
        let root = scratch("in-use");
        let (a, b) = (root.join("a"), root.join("a/b"));
        mkdir(&a, LEAF_MODE);
        mkdir(&b, LEAF_MODE);
        fs::create_dir(b.join("other")).unwrap();
        let mut steps = Vec::new();
        remove(
            &[a.clone(), b.clone()],
            std::slice::from_ref(&b),
            &mut |s| steps.push(format!("{s:?}")),
        );
        assert!(b.exists() && steps[0].starts_with("InUse"), "{steps:?}");
        fs::remove_dir(b.join("other")).unwrap();
        steps.clear();
        remove(
            &[a.clone(), b.clone()],
            std::slice::from_ref(&b),
            &mut |s| steps.push(format!("{s:?}")),
        );
        assert!(!b.exists() && a.exists(), "{steps:?}");
        fs::remove_dir_all(&root).unwrap();
    }
}
