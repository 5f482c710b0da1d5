//! Killing everything in a group and removing its directories: what the
//! port binary does when its program ends, and what the NIF does for a port
//! binary that died before it could. One policy serves both:
//!
//! - Every process of the group is in its tracking hierarchy's directory
//!   (the program joins that one first), so that is where it is killed:
//!   `cgroup.kill` on v2 (5.14+) is atomic against forks; on v1 the freezer
//!   group is frozen for the pass over `cgroup.procs`, so a fork bomb
//!   cannot outrun it, and thawed again for the killed tasks to die;
//!   without either, one unfrozen pass, repeated.
//! - Killed tasks leave asynchronously: wait for `cgroup.procs` to empty,
//!   then remove each directory, retrying `EBUSY`; each for at most
//!   [`RETRIES`] × [`RETRY_PAUSE`] (1 s), which a loaded board needs.
//! - The command may have made groups of its own beneath its group (a
//!   container runtime, a service manager): they are the command's too.
//!   Their processes are killed with the rest (v2's `cgroup.kill` and v1's
//!   freezer cover the subtree; the pass over `cgroup.procs` reads every
//!   group in it), and they are removed deepest first.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

pub const RETRY_PAUSE: Duration = Duration::from_millis(10);
pub const RETRIES: u32 = 100;

/// The group's directory in its tracking hierarchy, and how to kill
/// through it.
#[derive(Debug, Clone, Copy)]
pub struct Tracking<'a> {
    dir: &'a Path,
    /// v2: `cgroup.kill` may be there.
    v2: bool,
    /// A v1 freezer hierarchy.
    freezer: bool,
}

impl<'a> Tracking<'a> {
    /// `dir` in a hierarchy of `version` (1 or 2) whose v1 `controllers`
    /// are given (empty on v2).
    pub fn new(dir: &'a Path, version: u8, controllers: &[String]) -> Self {
        Tracking {
            dir,
            v2: version == 2,
            freezer: version == 1 && controllers.iter().any(|c| c == "freezer"),
        }
    }

    /// The pids in the group and the groups beneath it; none when it is
    /// gone or unreadable.
    pub fn procs(&self) -> Vec<i32> {
        subtree(self.dir).iter().flat_map(|d| procs(d)).collect()
    }

    /// SIGKILLs every process in the group once. True if that was atomic
    /// against forks (so it need not be repeated).
    pub fn kill_once(&self) -> bool {
        if self.v2 && write_file(&self.dir.join("cgroup.kill"), "1").is_ok() {
            return true;
        }
        let frozen = self.freezer && freeze(self.dir);
        for pid in self.procs() {
            // SAFETY: kill(2) takes plain integers. `procs` returns only
            // positive pids (never 0 or -1, the process group or every
            // process), each one of the group or already gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if self.freezer {
            // Thawed, the killed tasks die; frozen or not, always thaw.
            let _ = write_file(&self.dir.join("freezer.state"), "THAWED");
        }
        frozen
    }

    /// Kills everything in the group and waits (see the module docs) until
    /// it is empty. True if it is.
    pub fn kill_all(&self) -> bool {
        let atomic = self.kill_once();
        for _ in 0..RETRIES {
            if self.procs().is_empty() {
                return true;
            }
            if !atomic {
                // A forking process can outrun one unfrozen pass.
                self.kill_once();
            }
            sleep(RETRY_PAUSE);
        }
        self.procs().is_empty()
    }
}

/// The pids listed in `dir`'s `cgroup.procs`.
pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| parse_procs(&text))
        .unwrap_or_default()
}

/// `cgroup.procs` text: one pid a line. Anything but a positive pid is
/// dropped, so that no caller can signal 0 or -1 by mistake.
pub fn parse_procs(text: &str) -> Vec<i32> {
    text.split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&pid: &i32| pid > 0)
        .collect()
}

/// How deep beneath a group its subtree is walked: far beyond any real
/// nesting, and a bound on a hostile one.
const MAX_DEPTH: usize = 32;

/// `dir` and every group beneath it, deepest first (children before their
/// parent). A group's sub-groups are its only subdirectories (cgroupfs
/// has no symlinks, and `file_type` does not follow one).
pub fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out);
    out
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth < MAX_DEPTH {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), depth + 1, out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Removes an emptied group and the groups beneath it, deepest first
/// (`remove_dir` each); the first failure is returned.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    subtree(dir)
        .iter()
        .map(|d| remove_dir(d))
        .fold(Ok(()), Result::and)
}

/// Removes an emptied group directory; one already gone counts as removed.
/// `EBUSY` (its killed tasks still leaving) is retried.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    let mut attempt = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RETRIES => {
                attempt += 1;
                sleep(RETRY_PAUSE);
            }
            Err(e) => return Err(e),
        }
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    // cgroupfs takes one value per write(); never create files.
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Freezes a v1 freezer group and waits (briefly) until it is frozen.
fn freeze(dir: &Path) -> bool {
    let state = dir.join("freezer.state");
    if write_file(&state, "FROZEN").is_err() {
        return false;
    }
    for _ in 0..RETRIES {
        match fs::read_to_string(&state) {
            Ok(s) if s.trim() == "FROZEN" => return true,
            Ok(_) => sleep(Duration::from_millis(1)),
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "muontrap_cgroup_teardown_{name}_{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn procs_are_positive_pids_only() {
        assert_eq!(parse_procs("12\n345\n"), [12, 345]);
        assert_eq!(parse_procs(""), [0; 0]);
        assert_eq!(parse_procs("0\n-1\nx\n7\n 8 \n"), [7, 8]);
    }

    #[test]
    fn an_empty_group_is_killed_at_once_and_removed() {
        let dir = temp_dir("empty");
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        let tracking = Tracking::new(&dir, 1, &["freezer".to_string()]);
        // A plain directory cannot be frozen: the pass is not atomic.
        assert!(!tracking.kill_once());
        assert_eq!(fs::read_to_string(dir.join("freezer.state")).ok(), None);
        assert!(tracking.kill_all());
        fs::remove_file(dir.join("cgroup.procs")).unwrap();
        remove_dir(&dir).unwrap();
        assert!(!dir.exists());
        // Gone already: removed.
        remove_dir(&dir).unwrap();
    }

    #[test]
    fn a_missing_group_has_no_processes() {
        let tracking = Tracking::new(Path::new("/nonexistent/muontrap"), 2, &[]);
        assert_eq!(tracking.procs(), [0; 0]);
        assert!(tracking.kill_all());
    }

    #[test]
    fn a_subtree_is_walked_and_removed_deepest_first() {
        let dir = temp_dir("subtree");
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::create_dir_all(dir.join("c")).unwrap();
        fs::write(dir.join("a/b/cgroup.procs"), "41\n").unwrap();
        fs::write(dir.join("c/cgroup.procs"), "42\n").unwrap();
        fs::write(dir.join("cgroup.procs"), "43\n").unwrap();
        let groups = subtree(&dir);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups.last(), Some(&dir));
        let pos = |p: &Path| groups.iter().position(|g| g == p).unwrap();
        assert!(pos(&dir.join("a/b")) < pos(&dir.join("a")));
        let mut pids = Tracking::new(&dir, 2, &[]).procs();
        pids.sort();
        assert_eq!(pids, [41, 42, 43]);
        for f in ["a/b/cgroup.procs", "c/cgroup.procs", "cgroup.procs"] {
            fs::remove_file(dir.join(f)).unwrap();
        }
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        remove_tree(&dir).unwrap();
    }

    #[test]
    fn a_directory_in_use_is_an_error() {
        let dir = temp_dir("in_use");
        fs::write(dir.join("file"), "").unwrap();
        assert!(remove_dir(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
