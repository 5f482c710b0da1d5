//! Reading the layout from `/proc/self/mountinfo` and `/proc/self/cgroup`.

use std::io;
use std::path::{Component, Path};

use super::{Hierarchy, Layout};
use crate::mount::{parse_mountinfo, MountEntry};

/// Where cgroup2 is mounted on pure-v2 (and systemd "unified") hosts.
const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1 controller names (super options that are not controllers, such as
/// `rw` or `clone_children`, are ignored).
const V1_CONTROLLERS: &[&str] = &[
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

/// `/proc/self/cgroup` as `(hierarchy id, controllers, path)`.
type ProcCgroup = [(u32, Vec<String>, String)];

/// Parses `/proc/<pid>/cgroup`: `(hierarchy id, controllers, path)`.
/// Lines end at `\n` only (not `lines()`, which would also take a `\r`
/// that ends a group's name): the kernel writes the path unescaped.
pub fn parse_proc_cgroup(text: &str) -> Vec<(u32, Vec<String>, String)> {
    text.split('\n')
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
/// hierarchy (non-`/` in containers and for bind mounts). `None` when it
/// is not below the root: also for a `..` in it, which a cgroup namespace
/// shows for a group outside the namespace's root (`0::/../sibling`), and
/// which would put a group beneath it outside the hierarchy.
fn relative_own(own: &str, mount_root: &Path) -> Option<String> {
    let rel = Path::new(own).strip_prefix(mount_root).ok()?;
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
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
        Layout {
            v2: v2_hierarchy(&mounts, &own),
            v1: v1_hierarchies(&mounts, &own),
        }
    }

    /// Reads this process's layout.
    pub fn detect() -> io::Result<Layout> {
        let mountinfo = std::fs::read("/proc/self/mountinfo")?;
        let cgroup = std::fs::read("/proc/self/cgroup").unwrap_or_default();
        Ok(Layout::from_texts(
            &utf8_lines(&mountinfo),
            &utf8_lines(&cgroup),
        ))
    }
}

/// The lines of `bytes` that are UTF-8. The paths here are `&str`, so a
/// mount or group whose path is not (a USB stick's label, a FUSE mount
/// anyone may make) is one we could not name anyway; reading the whole
/// file as UTF-8 refused all of it for one such line, and with it every
/// cgroup (`stream did not contain valid UTF-8`).
pub(super) fn utf8_lines(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(line) = std::str::from_utf8(line) {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The cgroup2 mount: `/sys/fs/cgroup` if that is one, else the first.
fn v2_hierarchy(mounts: &[MountEntry], own: &ProcCgroup) -> Option<Hierarchy> {
    let v2: Vec<&MountEntry> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    let m = v2
        .iter()
        .find(|m| m.mount_point == Path::new(DEFAULT_CGROUP_ROOT))
        .or_else(|| v2.first())?;
    let own_path = own
        .iter()
        .find(|(id, c, _)| *id == 0 && c.is_empty())
        .and_then(|(_, _, p)| relative_own(p, &m.root));
    Some(Hierarchy {
        version: 2,
        mount_point: m.mount_point.clone(),
        controllers: Vec::new(),
        own: own_path,
    })
}

/// The v1 hierarchies with some controller, each once (the same one may
/// be mounted in several places).
fn v1_hierarchies(mounts: &[MountEntry], own: &ProcCgroup) -> Vec<Hierarchy> {
    let mut found: Vec<Hierarchy> = Vec::new();
    for m in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        let controllers = v1_controllers(&m.super_options);
        if controllers.is_empty() || found.iter().any(|h| same_set(&h.controllers, &controllers)) {
            continue;
        }
        let own_path = own
            .iter()
            .find(|(id, c, _)| *id != 0 && same_set(c, &controllers))
            .and_then(|(_, _, p)| relative_own(p, &m.root));
        found.push(Hierarchy {
            version: 1,
            mount_point: m.mount_point.clone(),
            controllers,
            own: own_path,
        });
    }
    found
}
