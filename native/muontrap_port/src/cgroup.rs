//! The program's cgroup (v2): create, enable controllers, apply settings,
//! kill everything in it and remove it. Only the leaf is ever removed; the
//! parents may be shared with other programs.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::args::CgroupConfig;

const RETRY_PAUSE: Duration = Duration::from_millis(10);
const RETRIES: u32 = 100;

pub struct Cgroup {
    leaf: PathBuf,
    removed: bool,
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    // cgroupfs takes one value per write(); never create files.
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

fn controllers_in(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|s| s.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// mkdir(2) without std's recursive DirBuilder machinery (binary size).
fn mkdir(path: &Path) -> io::Result<()> {
    nix::unistd::mkdir(path, Mode::from_bits_truncate(0o755)).map_err(io::Error::from)
}

fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

impl Cgroup {
    /// Creates `mount/cfg.path` ready for the program to join. Any failure
    /// after the leaf exists removes it again (via `Drop`).
    pub fn create(mount: &Path, cfg: &CgroupConfig) -> Result<Cgroup, String> {
        let leaf = mount.join(&cfg.path);
        // Levels from the mount down to the leaf's parent.
        let mut levels = vec![mount.to_path_buf()];
        let parts: Vec<&str> = cfg.path.split('/').collect();
        for i in 1..parts.len() {
            levels.push(mount.join(parts[..i].join("/")));
        }
        for dir in &levels[1..] {
            match mkdir(dir) {
                Ok(()) => tracing::debug!(path = %dir.display(), "created parent cgroup"),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(format!(
                        "cannot create cgroup {}: {}",
                        dir.display(),
                        os_error(&e)
                    ))
                }
            }
        }
        match mkdir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(format!("cgroup {} already exists", leaf.display()))
            }
            Err(e) => {
                return Err(format!(
                    "cannot create cgroup {}: {}",
                    leaf.display(),
                    os_error(&e)
                ))
            }
        }
        let group = Cgroup {
            leaf,
            removed: false,
        };
        tracing::debug!(path = %group.leaf.display(), "created cgroup");

        // Best effort: a level may already delegate the controller, or may
        // not allow it (then the check below explains what to do).
        for dir in &levels {
            for c in &cfg.controllers {
                let r = write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
                if let Err(e) = r {
                    tracing::debug!(path = %dir.display(), controller = %c, error = %e, "could not enable controller");
                }
            }
        }

        let available = controllers_in(&group.leaf.join("cgroup.controllers"));
        for c in &cfg.controllers {
            if !available.contains(c) {
                return Err(missing_controller(&levels, &group.leaf, c));
            }
        }

        for (file, value) in &cfg.settings {
            let path = group.leaf.join(file);
            write_file(&path, value).map_err(|e| {
                format!(
                    "cannot set {} to '{}': {}",
                    path.display(),
                    value,
                    os_error(&e)
                )
            })?;
        }
        Ok(group)
    }

    /// The fd the child writes its pid into to join (it cannot open files
    /// by path once privileges are dropped, and should not allocate).
    pub fn open_procs(&self) -> Result<OwnedFd, String> {
        let path = self.leaf.join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .map(OwnedFd::from)
            .map_err(|e| format!("cannot open {}: {}", path.display(), os_error(&e)))
    }

    fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.leaf.join("cgroup.procs"))
            .map(|s| {
                s.split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the group once: `cgroup.kill` (5.14+) is
    /// atomic against forks; the fallback is a single pass over the list.
    pub fn kill_once(&self) -> bool {
        if write_file(&self.leaf.join("cgroup.kill"), "1").is_ok() {
            return true;
        }
        for pid in self.procs() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        false
    }

    /// Kills everything left in the group and removes the leaf.
    pub fn destroy(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let atomic = self.kill_once();
        if !atomic {
            // Without cgroup.kill a forking process can outrun one pass.
            for _ in 0..RETRIES {
                if self.procs().is_empty() {
                    break;
                }
                self.kill_once();
                sleep(RETRY_PAUSE);
            }
        }
        // Killed tasks leave the group asynchronously: EBUSY for a moment.
        for attempt in 0..=RETRIES {
            match fs::remove_dir(&self.leaf) {
                Ok(()) => {
                    tracing::debug!(path = %self.leaf.display(), "removed cgroup");
                    return;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RETRIES => {
                    sleep(RETRY_PAUSE)
                }
                Err(e) => {
                    tracing::warn!(path = %self.leaf.display(), error = %e, "could not remove cgroup");
                    return;
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Explains where a missing controller stops being delegated.
fn missing_controller(levels: &[PathBuf], leaf: &Path, c: &str) -> String {
    let root = &levels[0];
    if !controllers_in(&root.join("cgroup.controllers")).contains(&c.to_string()) {
        return format!(
            "controller '{c}' is not provided by the kernel's cgroup2 hierarchy at {} \
             (missing from {}/cgroup.controllers; it may be disabled or bound to cgroup v1)",
            root.display(),
            root.display()
        );
    }
    // The first level that has it but does not pass it down.
    let stuck = levels
        .iter()
        .find(|dir| !controllers_in(&dir.join("cgroup.subtree_control")).contains(&c.to_string()))
        .unwrap_or(&levels[levels.len() - 1]);
    format!(
        "controller '{c}' is not available in {}/cgroup.controllers; enable it with: \
         echo +{c} > {}/cgroup.subtree_control",
        leaf.display(),
        stuck.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake hierarchy in a temp dir (plain files, so mkdir/rmdir work but
    /// nothing magic happens).
    fn fake_root(name: &str, root_controllers: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "muontrap_port_test_{}_{}",
            name,
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("cgroup.controllers"), root_controllers).unwrap();
        fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        root
    }

    fn cfg(path: &str, controllers: &[&str]) -> CgroupConfig {
        CgroupConfig {
            path: path.into(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            settings: vec![],
        }
    }

    #[test]
    fn missing_from_kernel() {
        let root = fake_root("kernel", "cpu io");
        let err = Cgroup::create(&root, &cfg("a/b", &["memory"]))
            .err()
            .unwrap();
        assert!(
            err.contains("controller 'memory' is not provided by the kernel"),
            "{err}"
        );
        // Leaf removed, parent kept.
        assert!(!root.join("a/b").exists());
        assert!(root.join("a").is_dir());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_delegation_names_the_level() {
        let root = fake_root("deleg", "cpu memory");
        let err = Cgroup::create(&root, &cfg("x", &["memory"])).err().unwrap();
        // A plain file keeps "+memory" verbatim, so the fake root still does
        // not list "memory" as delegated and the hint names it.
        assert!(
            err.contains(&format!(
                "controller 'memory' is not available in {}/x/cgroup.controllers",
                root.display()
            )),
            "{err}"
        );
        assert!(
            err.ends_with(&format!(
                "echo +memory > {}/cgroup.subtree_control",
                root.display()
            )),
            "{err}"
        );
        assert!(!root.join("x").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn existing_leaf_is_refused_and_kept() {
        let root = fake_root("exists", "memory");
        fs::create_dir(root.join("taken")).unwrap();
        let err = Cgroup::create(&root, &cfg("taken", &["memory"]))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!("cgroup {}/taken already exists", root.display())
        );
        assert!(root.join("taken").is_dir());
        fs::remove_dir_all(&root).unwrap();
    }
}
