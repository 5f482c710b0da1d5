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

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::Path;
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

    /// The pids in the group; none when it is gone or unreadable.
    pub fn procs(&self) -> Vec<i32> {
        procs(self.dir)
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
    fn a_directory_in_use_is_an_error() {
        let dir = temp_dir("in_use");
        fs::write(dir.join("file"), "").unwrap();
        assert!(remove_dir(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
