//! The program's cgroup: one directory in every hierarchy whose controller
//! is used, plus one in the tracking hierarchy (cgroup2 when mounted, else
//! the v1 freezer) through which everything is killed. Create, enable
//! controllers, apply settings, kill everything in it and remove it, with
//! the parent levels muontrap made once they are empty (`parents`).

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use muontrap_cgroup::layout::{Hierarchy, Layout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::args::CgroupConfig;

mod parents;
#[cfg(test)]
mod tests;

const RETRY_PAUSE: Duration = Duration::from_millis(10);
const RETRIES: u32 = 100;

/// The group's directory in one hierarchy.
struct Member {
    leaf: PathBuf,
    /// This port made `leaf` (so it removes it): false after a failed
    /// create, and for a leaf that was there already.
    made: bool,
    /// The levels between the base and `leaf`, shallowest first.
    parents: Vec<PathBuf>,
    /// Those of `parents` this port created.
    created: Vec<PathBuf>,
    version: u8,
    /// The hierarchy's controllers (v1; empty on v2), as
    /// `/proc/<pid>/cgroup` lists them.
    controllers: Vec<String>,
    /// The v1 freezer hierarchy, used to stop a fork bomb while killing.
    freezer: bool,
}

pub struct Cgroup {
    /// Creation order, one per hierarchy used; the tracking member is
    /// always present and first.
    members: Vec<Member>,
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

fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// A new v1 cpuset group starts with no CPUs and no memory nodes, and no
/// task can join it: copy the parent's.
fn inherit_cpuset(dir: &Path) -> Result<(), String> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if !current.trim().is_empty() {
            continue;
        }
        let value = fs::read_to_string(parent.join(file)).map_err(|e| {
            format!(
                "cannot read {}: {}",
                parent.join(file).display(),
                os_error(&e)
            )
        })?;
        write_file(&dir.join(file), value.trim())
            .map_err(|e| format!("cannot set {}: {}", dir.join(file).display(), os_error(&e)))?;
    }
    Ok(())
}

/// The directory below which the group goes in `h`.
fn base_of(h: &Hierarchy, cfg: &CgroupConfig) -> Result<PathBuf, String> {
    h.dir("", cfg.beneath_own).ok_or_else(|| {
        format!(
            "cannot place the cgroup beneath muontrap's own: /proc/self/cgroup puts it \
             outside the mounted {}",
            h.describe()
        )
    })
}

/// Hierarchy → controllers to use in it, the tracking hierarchy first.
type Plan<'a> = Vec<(&'a Hierarchy, Vec<String>)>;

fn plan<'a>(layout: &'a Layout, cfg: &CgroupConfig) -> Result<Plan<'a>, String> {
    let tracking = layout.tracking().ok_or(
        "no cgroup filesystem is mounted (checked /proc/self/mountinfo); \
         fix: mount -t cgroup2 none /sys/fs/cgroup",
    )?;
    let mut plan: Plan<'a> = vec![(tracking, Vec::new())];
    for c in &cfg.controllers {
        let h = match layout.v1_for(c) {
            Some(h) => h,
            None => layout.v2.as_ref().ok_or_else(|| {
                format!(
                    "controller '{c}' is not available: no cgroup v1 hierarchy has it \
                     and no cgroup2 filesystem is mounted (see mix muontrap.doctor)"
                )
            })?,
        };
        match plan
            .iter_mut()
            .find(|(p, _)| p.mount_point == h.mount_point)
        {
            Some((_, cs)) => cs.push(c.clone()),
            None => plan.push((h, vec![c.clone()])),
        }
    }
    Ok(plan)
}

impl Cgroup {
    /// Creates `cfg.path` in every hierarchy it needs, ready for the
    /// program to join. Any failure removes what was created (via `Drop`).
    pub fn create(layout: &Layout, cfg: &CgroupConfig) -> Result<Cgroup, String> {
        let plan = plan(layout, cfg)?;
        let mut group = Cgroup {
            members: Vec::new(),
            removed: false,
        };
        for (h, controllers) in &plan {
            group.add_member(h, cfg, controllers)?;
        }
        for (file, value) in &cfg.settings {
            let path = group.member_for(layout, &plan, file).join(file);
            write_file(&path, value).map_err(|e| {
                let mut msg = format!(
                    "cannot set {} to '{}': {}",
                    path.display(),
                    value,
                    os_error(&e)
                );
                if e.kind() == ErrorKind::NotFound {
                    msg.push_str(" (this kernel does not provide that file)");
                }
                msg
            })?;
        }
        Ok(group)
    }

    /// Creates the group's directory (and missing parents) in `h` and
    /// readies the controllers there. The member is recorded before
    /// anything is made, so a failure half-way still cleans up.
    fn add_member(
        &mut self,
        h: &Hierarchy,
        cfg: &CgroupConfig,
        controllers: &[String],
    ) -> Result<(), String> {
        let base = base_of(h, cfg)?;
        let (levels, leaf) = parents::levels(&base, &cfg.path);
        self.members.push(Member {
            leaf: leaf.clone(),
            made: false,
            parents: levels[1..].to_vec(),
            created: Vec::new(),
            version: h.version,
            controllers: h.controllers.clone(),
            freezer: h.version == 1 && h.has("freezer"),
        });
        let last = self.members.len() - 1;
        let m = &mut self.members[last];
        parents::make_chain(&levels, &leaf, &mut m.created, &mut parents::mkdir)?;
        m.made = true;
        if h.version == 2 {
            enable_v2(&levels, &leaf, controllers)?;
        } else if h.has("cpuset") {
            for dir in m.created.iter().chain(std::iter::once(&leaf)) {
                inherit_cpuset(dir)?;
            }
        }
        Ok(())
    }

    /// The leaf a setting's file lives in: the v1 hierarchy of its
    /// controller, else cgroup2, else the tracking group.
    fn member_for(&self, layout: &Layout, plan: &[(&Hierarchy, Vec<String>)], file: &str) -> &Path {
        let controller = file.split('.').next().unwrap_or("");
        let index = plan
            .iter()
            .position(|(h, _)| h.version == 1 && h.has(controller) && controller != "cgroup")
            .or_else(|| {
                layout.v2.as_ref().and_then(|v2| {
                    plan.iter()
                        .position(|(h, _)| h.mount_point == v2.mount_point)
                })
            })
            .unwrap_or(0);
        &self.members[index].leaf
    }

    /// The fds the child writes its pid into to join every hierarchy (it
    /// cannot open files by path once privileges are dropped, and should
    /// not allocate).
    pub fn open_procs(&self) -> Result<Vec<OwnedFd>, String> {
        self.members
            .iter()
            .map(|m| {
                let path = m.leaf.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|e| format!("cannot open {}: {}", path.display(), os_error(&e)))
            })
            .collect()
    }

    fn tracking(&self) -> Option<&Member> {
        self.members.first()
    }

    /// The tracking hierarchy as `/proc/<pid>/cgroup` names it: (version,
    /// controllers), to tell whether a process is in the group.
    pub fn tracking_hierarchy(&self) -> Option<(u8, Vec<String>)> {
        self.tracking().map(|m| (m.version, m.controllers.clone()))
    }

    fn procs(&self) -> Vec<i32> {
        let Some(m) = self.tracking() else {
            return Vec::new();
        };
        fs::read_to_string(m.leaf.join("cgroup.procs"))
            .map(|s| {
                s.split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the group once: `cgroup.kill` (v2, 5.14+)
    /// is atomic against forks, and so is a pass over a frozen v1 freezer
    /// group; the fallback is a single pass over the list.
    pub fn kill_once(&self) -> bool {
        let Some(m) = self.tracking() else {
            return true;
        };
        if m.version == 2 && write_file(&m.leaf.join("cgroup.kill"), "1").is_ok() {
            return true;
        }
        let frozen = m.freezer && freeze(&m.leaf);
        for pid in self.procs() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if m.freezer {
            // Thawed, the killed tasks die; frozen or not, always thaw.
            let _ = write_file(&m.leaf.join("freezer.state"), "THAWED");
        }
        frozen
    }

    /// Kills everything left in the group and removes the leaves, then
    /// the parents muontrap made that are now empty.
    pub fn destroy(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        let atomic = self.kill_once();
        for _ in 0..RETRIES {
            if self.procs().is_empty() {
                break;
            }
            if !atomic {
                // A forking process can outrun one unfrozen pass.
                self.kill_once();
            }
            sleep(RETRY_PAUSE);
        }
        for m in self.members.iter().rev() {
            if m.made {
                remove_dir(&m.leaf);
            }
            parents::remove_parents(&m.parents, &m.created);
        }
    }
}

/// Freezes a v1 freezer group and waits (briefly) until it is frozen.
fn freeze(leaf: &Path) -> bool {
    let state = leaf.join("freezer.state");
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

/// Killed tasks leave the group asynchronously: EBUSY for a moment.
fn remove_dir(leaf: &Path) {
    for attempt in 0..=RETRIES {
        match fs::remove_dir(leaf) {
            Ok(()) => {
                tracing::debug!(path = %leaf.display(), "removed cgroup");
                return;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < RETRIES => {
                sleep(RETRY_PAUSE)
            }
            Err(e) => {
                tracing::warn!(path = %leaf.display(), error = %e, "could not remove cgroup");
                return;
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Enables `controllers` on the way down to a v2 leaf and checks they
/// arrived.
fn enable_v2(levels: &[PathBuf], leaf: &Path, controllers: &[String]) -> Result<(), String> {
    // Best effort: a level may already delegate the controller, or may
    // not allow it (then the check below explains what to do).
    for dir in levels {
        for c in controllers {
            let r = write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}"));
            if let Err(e) = r {
                tracing::debug!(path = %dir.display(), controller = %c, error = %e, "could not enable controller");
            }
        }
    }
    let available = controllers_in(&leaf.join("cgroup.controllers"));
    for c in controllers {
        if !available.contains(c) {
            return Err(missing_controller(levels, leaf, c));
        }
    }
    Ok(())
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
