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

use std::io;
use std::path::{Path, PathBuf};

use crate::mount::{parse_mountinfo, MountEntry};

const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1 controller names (super options that are not controllers, such as
/// `rw` or `clone_children`, are ignored).
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

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

/// Parses `/proc/<pid>/cgroup`: `(hierarchy id, controllers, path)`.
pub fn parse_proc_cgroup(text: &str) -> Vec<(u32, Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((id, controllers, path.to_string()))
        })
        .collect()
}

fn v1_controllers(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

/// `own` relative to the mount, given the mount's root within the
/// hierarchy (non-`/` in containers and for bind mounts).
fn relative_own(own: &str, mount_root: &Path) -> Option<String> {
    let rel = Path::new(own).strip_prefix(mount_root).ok()?;
    Some(rel.to_string_lossy().trim_matches('/').to_string())
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

impl Layout {
    /// Builds the layout from mountinfo and `/proc/self/cgroup` text.
    pub fn from_texts(mountinfo: &str, proc_cgroup: &str) -> Layout {
        let own = parse_proc_cgroup(proc_cgroup);
        let mounts = parse_mountinfo(mountinfo);
        let mut layout = Layout::default();
        let v2: Vec<&MountEntry> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
        let v2 = v2
            .iter()
            .find(|m| m.mount_point == Path::new(DEFAULT_CGROUP_ROOT))
            .or_else(|| v2.first());
        if let Some(m) = v2 {
            let own_path = own
                .iter()
                .find(|(id, c, _)| *id == 0 && c.is_empty())
                .and_then(|(_, _, p)| relative_own(p, &m.root));
            layout.v2 = Some(Hierarchy {
                version: 2,
                mount_point: m.mount_point.clone(),
                controllers: Vec::new(),
                own: own_path,
            });
        }
        for m in mounts.iter().filter(|m| m.fs_type == "cgroup") {
            let controllers = v1_controllers(&m.super_options);
            if controllers.is_empty()
                || layout
                    .v1
                    .iter()
                    .any(|h| same_set(&h.controllers, &controllers))
            {
                continue;
            }
            let own_path = own
                .iter()
                .find(|(id, c, _)| *id != 0 && same_set(c, &controllers))
                .and_then(|(_, _, p)| relative_own(p, &m.root));
            layout.v1.push(Hierarchy {
                version: 1,
                mount_point: m.mount_point.clone(),
                controllers,
                own: own_path,
            });
        }
        layout
    }

    /// Reads this process's layout.
    pub fn detect() -> io::Result<Layout> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Ok(Layout::from_texts(&mountinfo, &cgroup))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine: v1 controllers, cgroup2 at .../unified, and
    /// the process in a non-root memory group.
    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/19cca1
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// Classic systemd v1 host with joined hierarchies, no cgroup2.
    const V1_MOUNTS: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw shared:9 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/freezer rw shared:12 - cgroup cgroup rw,freezer
";
    const V1_CGROUP: &str = "\
5:freezer:/
4:memory:/system.slice/app.service
3:cpu,cpuacct:/system.slice/app.service
1:name=systemd:/system.slice/app.service
";

    /// A container: cgroup2 mounted with its root at the container's group.
    const V2_CONTAINER_MOUNTS: &str = "\
700 690 0:30 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw,nsdelegate
";
    const V2_CONTAINER_CGROUP: &str = "0::/docker/abc/init\n";

    #[test]
    fn hybrid() {
        let l = Layout::from_texts(HYBRID_MOUNTS, HYBRID_CGROUP);
        assert_eq!(l.kind(), Kind::Hybrid);
        let v2 = l.v2.as_ref().unwrap();
        assert_eq!(v2.mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v2.own.as_deref(), Some(""));
        assert_eq!(l.v1.len(), 7);
        let mem = l.v1_for("memory").unwrap();
        assert_eq!(mem.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mem.own.as_deref(), Some("process_api/19cca1"));
        assert_eq!(
            mem.dir("mt/x", true),
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/process_api/19cca1/mt/x"
            ))
        );
        assert_eq!(
            mem.dir("mt/x", false),
            Some(PathBuf::from("/sys/fs/cgroup/memory/mt/x"))
        );
        assert_eq!(l.tracking(), l.v2.as_ref());
        assert_eq!(
            l.hierarchy_for_file("memory.limit_in_bytes"),
            l.v1_for("memory")
        );
        assert_eq!(l.hierarchy_for_file("cgroup.procs"), l.v2.as_ref());
        assert_eq!(l.hierarchy_for_file("io.pressure"), l.v2.as_ref());
    }

    #[test]
    fn pure_v1_with_joined_hierarchies() {
        let l = Layout::from_texts(V1_MOUNTS, V1_CGROUP);
        assert_eq!(l.kind(), Kind::V1);
        assert!(l.v2.is_none());
        let cpu = l.v1_for("cpuacct").unwrap();
        assert_eq!(cpu.controllers, ["cpu", "cpuacct"]);
        assert_eq!(cpu.own.as_deref(), Some("system.slice/app.service"));
        assert_eq!(l.tracking(), l.v1_for("freezer"));
        assert_eq!(l.hierarchy_for_file("cgroup.procs"), l.v1_for("freezer"));
        let systemd = &l.v1[0];
        assert_eq!(systemd.controllers, ["name=systemd"]);
        assert_eq!(l.v1_for("pids"), None);
    }

    #[test]
    fn pure_v2_and_container_roots() {
        let l = Layout::from_texts(V2_CONTAINER_MOUNTS, V2_CONTAINER_CGROUP);
        assert_eq!(l.kind(), Kind::V2);
        let v2 = l.v2.as_ref().unwrap();
        assert_eq!(v2.own.as_deref(), Some("init"));
        assert_eq!(
            v2.dir("a", true),
            Some(PathBuf::from("/sys/fs/cgroup/init/a"))
        );
        assert_eq!(l.hierarchy_for_file("memory.max"), l.v2.as_ref());
    }

    #[test]
    fn own_group_outside_the_mount_is_unknown() {
        let l = Layout::from_texts(V2_CONTAINER_MOUNTS, "0::/elsewhere\n");
        assert_eq!(l.v2.as_ref().unwrap().own, None);
        assert_eq!(l.v2.as_ref().unwrap().dir("a", true), None);
    }

    #[test]
    fn prefers_sys_fs_cgroup_over_earlier_cgroup2_mounts() {
        let text = "\
50 1 0:40 / /mnt/other\\040cg rw - cgroup2 none rw
51 1 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        let l = Layout::from_texts(text, "");
        assert_eq!(l.v2.unwrap().mount_point, Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn else_takes_the_first_cgroup2_mount() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
50 1 0:40 / /mnt/my\\040cg rw - cgroup2 none rw
51 1 0:41 / /mnt/second rw - cgroup2 none rw
";
        let l = Layout::from_texts(text, "");
        assert_eq!(l.v2.unwrap().mount_point, Path::new("/mnt/my cg"));
    }

    #[test]
    fn detects_this_host() {
        // Only the plumbing: CI hosts may have no cgroup filesystem at all.
        let l = Layout::detect().unwrap();
        for h in l.v2.iter().chain(&l.v1) {
            assert!(h.mount_point.is_absolute());
        }
    }

    #[test]
    fn nothing_mounted() {
        let l = Layout::from_texts("27 1 254:0 / / rw - ext4 /dev/vda rw\n", "");
        assert_eq!(l.kind(), Kind::None);
        assert_eq!(l.tracking(), None);
        assert_eq!(l.hierarchy_for_file("memory.max"), None);
    }

    #[test]
    fn proc_cgroup_lines() {
        assert_eq!(
            parse_proc_cgroup("3:cpu,cpuacct:/a\n0::/\nbad\n"),
            vec![
                (
                    3,
                    vec!["cpu".to_string(), "cpuacct".to_string()],
                    "/a".to_string()
                ),
                (0, vec![], "/".to_string())
            ]
        );
    }
}
