//! Whether a pid belongs to the program's containment: the sender of a
//! datagram (its `SCM_CREDENTIALS` pid) and a `MAINPID=`.
//!
//! With a cgroup, the pid's `/proc/<pid>/cgroup` line for the tracking
//! hierarchy must be the program's cgroup or below it. Without one, its
//! ppid chain must reach the port: the port is a child subreaper, so the
//! orphans of the program's tree are reparented to it, not to init.
//! A pid that is gone from /proc cannot be attributed either way.

use std::fs;

use muontrap_cgroup::layout::parse_proc_cgroup;

/// Longest ppid chain walked, across restarts: more than any real tree,
/// and the end of a (never real, but non-atomic reads) cycle.
const MAX_STEPS: usize = 1024;
/// A parent exited mid-walk (its children moved to the port): walk again.
const MAX_RESTARTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Inside,
    Outside,
    /// Not in /proc (any more), or pid 0 (a sender in another pid
    /// namespace).
    Unknown,
}

/// The line of `/proc/<pid>/cgroup` that names the tracking hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// 2, or 1 with the hierarchy's controllers (`name=` ones included).
    pub version: u8,
    pub controllers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containment {
    /// Descendants of the port (`port` is its pid).
    Tree { port: i32 },
    /// Members of the cgroup `path` (as `/proc/<pid>/cgroup` names it) or of
    /// a cgroup below it.
    Cgroup { hierarchy: Hierarchy, path: String },
    /// The cgroup could not be read: nobody can be attributed.
    Nobody,
}

impl Containment {
    /// For a program in the cgroup whose tracking hierarchy is `h`: the
    /// cgroup's name as /proc shows it, read from the program itself (it
    /// joined before exec, and its zombie keeps /proc until we reap it).
    pub fn cgroup(h: Hierarchy, program: i32) -> Containment {
        match cgroup_of(program, &h) {
            Some(path) => Containment::Cgroup { hierarchy: h, path },
            None => {
                crate::log::warn!(pid = program, "cannot read the program's cgroup");
                Containment::Nobody
            }
        }
    }

    pub fn check(&self, pid: i32) -> Verdict {
        if pid <= 0 {
            return Verdict::Unknown;
        }
        match self {
            Containment::Tree { port } => descends_from(pid, *port, ppid_of),
            Containment::Cgroup { hierarchy, path } => match cgroup_of(pid, hierarchy) {
                None => Verdict::Unknown,
                Some(p) if within(&p, path) => Verdict::Inside,
                Some(_) => Verdict::Outside,
            },
            Containment::Nobody => Verdict::Unknown,
        }
    }
}

/// `p` is `cgroup` or a cgroup below it.
fn within(p: &str, cgroup: &str) -> bool {
    p.strip_prefix(cgroup)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || cgroup.ends_with('/'))
}

/// The pid's cgroup in hierarchy `h`, as `/proc/<pid>/cgroup` names it.
fn cgroup_of(pid: i32, h: &Hierarchy) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_proc_cgroup(&text)
        .into_iter()
        .find(|(id, cs, _)| match h.version {
            2 => *id == 0 && cs.is_empty(),
            _ => {
                *id != 0
                    && cs.len() == h.controllers.len()
                    && cs.iter().all(|c| h.controllers.contains(c))
            }
        })
        .map(|(_, _, path)| path)
}

fn ppid_of(pid: i32) -> Option<i32> {
    crate::tree::parent_and_process_group(pid).map(|(ppid, _)| ppid)
}

/// Whether `ancestor` is a proper ancestor of `pid`, by `ppid` lookups
/// (`None`: no such process). `Unknown` if `pid` itself is not found. A
/// lookup failing further up (that parent just exited, its children
/// reparent) restarts the walk; the steps are bounded in total, against
/// cycles, which non-atomic reads could in theory produce.
pub fn descends_from(pid: i32, ancestor: i32, ppid: impl Fn(i32) -> Option<i32>) -> Verdict {
    let mut steps = 0;
    for _ in 0..=MAX_RESTARTS {
        let Some(mut cur) = ppid(pid) else {
            return Verdict::Unknown;
        };
        loop {
            if cur == ancestor {
                return Verdict::Inside;
            }
            steps += 1;
            if cur <= 1 || steps >= MAX_STEPS {
                return Verdict::Outside;
            }
            match ppid(cur) {
                Some(p) => cur = p,
                None => break,
            }
        }
    }
    Verdict::Outside
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;

    fn table(pairs: &[(i32, i32)]) -> impl Fn(i32) -> Option<i32> {
        let map: HashMap<i32, i32> = pairs.iter().copied().collect();
        move |pid| map.get(&pid).copied()
    }

    #[test]
    fn chains_reaching_the_port() {
        // 1 <- 50 (BEAM) <- 100 (port) <- 200 (program) <- 300 <- 400
        let t = table(&[
            (1, 0),
            (50, 1),
            (100, 50),
            (200, 100),
            (300, 200),
            (400, 300),
            (999, 1),
        ]);
        for pid in [200, 300, 400] {
            assert_eq!(descends_from(pid, 100, &t), Verdict::Inside, "{pid}");
        }
        // The port itself, its parent, unrelated processes, pid 1.
        for pid in [100, 50, 999, 1] {
            assert_eq!(descends_from(pid, 100, &t), Verdict::Outside, "{pid}");
        }
        assert_eq!(descends_from(12345, 100, &t), Verdict::Unknown);
    }

    #[test]
    fn pid_zero_and_init_end_the_walk() {
        let t = table(&[(7, 0), (8, 1), (1, 0)]);
        assert_eq!(descends_from(7, 100, &t), Verdict::Outside);
        assert_eq!(descends_from(8, 100, &t), Verdict::Outside);
        // An ancestor of 1 is found before the walk stops at it.
        assert_eq!(descends_from(8, 1, &t), Verdict::Inside);
    }

    #[test]
    fn cycles_and_long_chains_are_bounded() {
        let t = table(&[(10, 11), (11, 12), (12, 10)]);
        assert_eq!(descends_from(10, 100, &t), Verdict::Outside);
        let selfish = table(&[(5, 5)]);
        assert_eq!(descends_from(5, 100, &selfish), Verdict::Outside);
        // A chain deeper than the bound: 2000 <- 2001 <- ... <- 5000, the
        // port at the top.
        let mut pairs: Vec<(i32, i32)> = (2001..=5000).map(|p| (p, p - 1)).collect();
        pairs.push((2000, 100));
        let deep = table(&pairs);
        assert_eq!(descends_from(2100, 100, &deep), Verdict::Inside);
        assert_eq!(descends_from(5000, 100, &deep), Verdict::Outside);
    }

    #[test]
    fn a_parent_exiting_mid_walk_restarts_it() {
        // 300's parent 200 is gone at the second lookup; by the retry 300
        // has been reparented to the port.
        let calls = Cell::new(0);
        let lookup = |pid: i32| {
            calls.set(calls.get() + 1);
            match (pid, calls.get()) {
                (300, 1) => Some(200),
                (200, _) => None,
                (300, _) => Some(100),
                _ => None,
            }
        };
        assert_eq!(descends_from(300, 100, lookup), Verdict::Inside);
        // Always vanishing parents: a bounded number of restarts.
        let vanishing = |pid: i32| (pid == 300).then_some(200);
        assert_eq!(descends_from(300, 100, vanishing), Verdict::Outside);
    }

    #[test]
    fn cgroup_paths() {
        assert!(within("/a/b", "/a/b"));
        assert!(within("/a/b/c", "/a/b"));
        assert!(!within("/a/bc", "/a/b"));
        assert!(!within("/a", "/a/b"));
        assert!(within("/x", "/"));
    }

    #[test]
    fn real_processes() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        let tree = Containment::Tree { port: parent };
        assert_eq!(tree.check(me), Verdict::Inside);
        assert_eq!(tree.check(parent), Verdict::Outside);
        assert_eq!(tree.check(0), Verdict::Unknown);
        assert_eq!(tree.check(-3), Verdict::Unknown);
        assert_eq!(Containment::Nobody.check(me), Verdict::Unknown);
        // Our own cgroup v2 cgroup (if any) contains us.
        let v2 = Hierarchy {
            version: 2,
            controllers: vec![],
        };
        if let Some(path) = cgroup_of(me, &v2) {
            let c = Containment::Cgroup {
                hierarchy: v2,
                path,
            };
            assert_eq!(c.check(me), Verdict::Inside);
            assert_eq!(c.check(i32::MAX), Verdict::Unknown);
        }
    }
}
