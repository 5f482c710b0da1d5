//! The host's cgroup layout: which hierarchies are mounted where (pure v2,
//! hybrid v1 + v2, pure v1), which controllers each v1 hierarchy holds, and
//! where this process sits in each, from `/proc/self/mountinfo` and
//! `/proc/self/cgroup`.
//!
//! Every kernel controller is bound to at most one hierarchy, so a
//! controller either lives in a v1 hierarchy or (if enabled there) in the
//! v2 one. MuonTrap puts a group in every hierarchy whose controller it
//! uses, plus one "tracking" hierarchy that it kills and counts through:
//! the v2 one when mounted (it has `cgroup.kill`), else the v1 freezer.

use std::path::PathBuf;

mod detect;
#[cfg(test)]
mod tests;

pub use detect::parse_proc_cgroup;

/// Which cgroup versions the host mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only cgroup2 (a `name=` v1 hierarchy without controllers may exist).
    V2,
    /// v1 controller hierarchies plus a cgroup2 mount (without those controllers).
    Hybrid,
    /// Only v1 hierarchies.
    V1,
    /// No cgroup filesystem at all.
    None,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::V2 => "v2",
            Kind::Hybrid => "hybrid",
            Kind::V1 => "v1",
            Kind::None => "none",
        }
    }
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// 1 or 2.
    pub version: u8,
    pub mount_point: PathBuf,
    /// v1: the controllers bound to it (`name=systemd` style names too);
    /// v2: empty (read `cgroup.controllers` instead).
    pub controllers: Vec<String>,
    /// This process's cgroup relative to `mount_point` (no leading `/`,
    /// `""` at the root), or `None` if `/proc/self/cgroup` does not place it
    /// inside the mounted subtree.
    pub own: Option<String>,
}

impl Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// Directory of `path`, relative to the mount or (with `beneath_own_cgroup`)
    /// to this process's own group. `None` if the own group is unknown.
    pub fn dir(&self, path: &str, beneath_own_cgroup: bool) -> Option<PathBuf> {
        let mut dir = self.mount_point.clone();
        if beneath_own_cgroup {
            let own = self.own.as_deref()?;
            if !own.is_empty() {
                dir.push(own);
            }
        }
        if !path.is_empty() {
            dir.push(path);
        }
        Some(dir)
    }

    /// How a user would name it: `cgroup2` or `cgroup v1 (memory)`.
    pub fn describe(&self) -> String {
        if self.version == 2 {
            format!("cgroup2 at {}", self.mount_point.display())
        } else {
            format!(
                "cgroup v1 ({}) at {}",
                self.controllers.join(","),
                self.mount_point.display()
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub v2: Option<Hierarchy>,
    pub v1: Vec<Hierarchy>,
}

impl Layout {
    pub fn kind(&self) -> Kind {
        let real_v1 = self
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (self.v2.is_some(), real_v1) {
            (true, false) => Kind::V2,
            (true, true) => Kind::Hybrid,
            (false, true) => Kind::V1,
            (false, false) => Kind::None,
        }
    }

    /// The v1 hierarchy holding `controller`, if it is bound to v1.
    pub fn v1_for(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }

    /// The hierarchy used to track and kill every process: cgroup2 if
    /// mounted, else the v1 freezer, else the v1 pids hierarchy, else any.
    pub fn tracking(&self) -> Option<&Hierarchy> {
        self.v2
            .as_ref()
            .or_else(|| self.v1_for("freezer"))
            .or_else(|| self.v1_for("pids"))
            .or_else(|| self.v1.iter().find(|h| !h.controllers.is_empty()))
    }

    /// The hierarchy an interface file lives in: `memory.max` → the memory
    /// hierarchy on v1, cgroup2 otherwise; `cgroup.*` → the tracking one.
    pub fn hierarchy_for_file(&self, file: &str) -> Option<&Hierarchy> {
        let controller = file.split('.').next().unwrap_or("");
        if controller != "cgroup" {
            if let Some(h) = self.v1_for(controller) {
                return Some(h);
            }
        }
        self.v2.as_ref().or_else(|| self.tracking())
    }
}
