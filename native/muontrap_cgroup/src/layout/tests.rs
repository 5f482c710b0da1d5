use super::*;
use std::path::Path;

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

/// Found by tests/props_layout.rs: a group whose name ends in `\r` is
/// not the group above it.
#[test]
fn own_group_ending_in_a_carriage_return() {
    assert_eq!(
        parse_proc_cgroup("0::/a\r\n1:cpu:/\r\n"),
        vec![
            (0, vec![], "/a\r".to_string()),
            (1, vec!["cpu".into()], "/\r".to_string())
        ]
    );
}

/// Found by tests/props_layout.rs: a cgroup namespace shows a group
/// outside its root with `..`, which a group beneath it would follow out
/// of the hierarchy (`/sys/fs/cgroup/../x/a`).
#[test]
fn own_group_above_the_namespace_root_is_unknown() {
    let mounts = "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    for own in ["0::/../x\n", "0::/..\n", "0::/a/../../b\n"] {
        let l = Layout::from_texts(mounts, own);
        assert_eq!(l.v2.as_ref().unwrap().own, None, "{own:?}");
        assert_eq!(l.v2.as_ref().unwrap().dir("a", true), None, "{own:?}");
    }
    let l = Layout::from_texts(V2_CONTAINER_MOUNTS, "0::/docker/abc/../x\n");
    assert_eq!(l.v2.unwrap().own, None);
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

/// `Layout::detect` reads the files as bytes and keeps their UTF-8 lines.
#[test]
fn lines_that_are_not_utf8_are_left_out() {
    let text = b"1 1 0:1 / /media/\xff rw - vfat /dev/sdb1 rw\n\
                 35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let own = detect::utf8_lines(b"0::/\xff\n0::/a\n");
    let l = Layout::from_texts(&detect::utf8_lines(text), &own);
    let v2 = l.v2.expect("cgroup2");
    assert_eq!(v2.mount_point, Path::new("/sys/fs/cgroup"));
    assert_eq!(v2.own.as_deref(), Some("a"));
}
