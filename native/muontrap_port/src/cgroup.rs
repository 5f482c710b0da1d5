//! The program's cgroup: one directory in every hierarchy whose controller
//! is used, plus one in the tracking hierarchy (cgroup2 when mounted, else
//! the v1 freezer) through which everything is killed. Create, enable
//! controllers, apply settings, kill everything in it and remove it, with
//! the parent levels muontrap made once they are empty (`parents`).

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use muontrap_cgroup::layout::{Hierarchy, Layout};
use muontrap_cgroup::teardown::{self, Tracking};

use muontrap_command::CgroupConfig;

mod parents;
#[cfg(test)]
mod tests;

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

/// "cannot set FILE to 'VALUE': why", and why a file may be missing.
fn setting_error(path: &Path, value: &str, e: &io::Error) -> String {
    let mut msg = format!(
        "cannot set {} to '{}': {}",
        path.display(),
        value,
        os_error(e)
    );
    if e.kind() == ErrorKind::NotFound {
        msg.push_str(" (this kernel does not provide that file)");
    }
    msg
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
    h.dir("", cfg.beneath_own_cgroup).ok_or_else(|| {
        format!(
            "cannot place the cgroup beneath muontrap's own: /proc/self/cgroup puts it \
             outside the mounted {}",
            h.describe()
        )
    })
}

/// A hierarchy and the controllers to use in it.
type Step<'a> = (&'a Hierarchy, Vec<String>);
/// Every hierarchy the group needs, the tracking hierarchy first.
type Plan<'a> = Vec<Step<'a>>;

fn plan<'a>(layout: &'a Layout, cfg: &CgroupConfig) -> Result<Plan<'a>, String> {
    let tracking = layout.tracking().ok_or(
        "no cgroup filesystem is mounted (checked /proc/self/mountinfo); \
         fix: mount -t cgroup2 none /sys/fs/cgroup",
    )?;
    let mut plan: Plan<'a> = vec![(tracking, Vec::new())];
    for c in cfg.controllers {
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
        group.make_members(&plan, cfg)?;
        group.apply_settings(layout, &plan, cfg.settings)?;
        Ok(group)
    }

    /// One member per hierarchy of the plan, the tracking one first.
    fn make_members(&mut self, plan: &[Step<'_>], cfg: &CgroupConfig) -> Result<(), String> {
        for (h, controllers) in plan {
            self.add_member(h, cfg, controllers)?;
        }
        Ok(())
    }

    /// Writes each `(file, value)` into the member whose hierarchy has
    /// the file, before the program joins.
    fn apply_settings(
        &self,
        layout: &Layout,
        plan: &[Step<'_>],
        settings: &[(String, String)],
    ) -> Result<(), String> {
        for (file, value) in settings {
            let path = self.member_for(layout, plan, file).join(file);
            write_file(&path, value).map_err(|e| setting_error(&path, value, &e))?;
        }
        Ok(())
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
        let (levels, leaf) = parents::levels(&base, cfg.path);
        self.members.push(Member {
            leaf: leaf.clone(),
            made: false,
            parents: levels[1..].to_vec(),
            created: Vec::new(),
            version: h.version,
            controllers: h.controllers.clone(),
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
    fn member_for(&self, layout: &Layout, plan: &[Step<'_>], file: &str) -> &Path {
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

    /// The group in the tracking hierarchy, through which it is killed.
    fn tracking(&self) -> Option<Tracking<'_>> {
        let m = self.members.first()?;
        Some(Tracking::new(&m.leaf, m.version, &m.controllers))
    }

    /// The tracking hierarchy as `/proc/<pid>/cgroup` names it: (version,
    /// controllers), to tell whether a process is in the group.
    pub fn tracking_hierarchy(&self) -> Option<(u8, Vec<String>)> {
        let m = self.members.first()?;
        Some((m.version, m.controllers.clone()))
    }

    /// SIGKILLs every process in the group once (see `teardown`); true if
    /// that was atomic against forks.
    pub fn kill_once(&self) -> bool {
        self.tracking().is_none_or(|t| t.kill_once())
    }

    /// Kills everything left in the group and removes the leaves (with
    /// any groups the command made beneath them), then the parents
    /// muontrap made that are now empty.
    pub fn destroy(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        if let Some(t) = self.tracking() {
            // A group still in use fails to be removed below, which says so.
            let _ = t.kill_all();
        }
        for m in self.members.iter().rev() {
            if m.made {
                remove_leaf(&m.leaf);
            }
            parents::remove_parents(&m.parents, &m.created);
        }
    }
}

fn remove_leaf(leaf: &Path) {
    match teardown::remove_tree(leaf) {
        Ok(()) => crate::log::debug!(path = %leaf.display(), "removed cgroup"),
        Err(e) => crate::log::warn!(path = %leaf.display(), error = %e, "could not remove cgroup"),
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
                crate::log::debug!(path = %dir.display(), controller = %c, error = %e, "could not enable controller");
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
