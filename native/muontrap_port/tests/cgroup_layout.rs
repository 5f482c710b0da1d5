//! The library's start hands the port the BEAM's cgroup layout in the
//! command value, and the port places the group by it instead of reading
//! mountinfo and `/proc/self/cgroup` itself. Shown with a layout that
//! differs from the truth in one place only: cgroup2's `own` group is a
//! decoy created beneath our real one. A group made `--beneath-own-cgroup`
//! then lands beneath the decoy, which detection could never produce.
//! Runs beneath our own cgroup2 group; skipped where that is not writable.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use muontrap_cgroup::layout::{Hierarchy, Layout};
use muontrap_command::cli::{self, Parsed};

use common::*;

/// The detected layout and our own cgroup2 group's directory, if we may
/// create groups in it.
fn own_cgroup2() -> Option<(Layout, PathBuf)> {
    let layout = Layout::detect().ok()?;
    let own = layout.v2.as_ref()?.dir("", true)?;
    let probe = own.join(format!("muontrap_it_probe_{}", std::process::id()));
    fs::create_dir(&probe).ok()?;
    fs::remove_dir(&probe).ok()?;
    Some((layout, own))
}

/// Removes the groups a failed run may leave, deepest first.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Reads to EXIT, so a port that started after all also tears down:
/// (whether it started, its status, its errors).
fn run_to_exit(port: &mut Port) -> (bool, u32, Vec<String>) {
    let (mut started, mut errors) = (false, Vec::new());
    loop {
        let (tag, body) = port.read_frame().expect("EOF before EXIT");
        match tag {
            STARTED => started = true,
            ERROR => errors.push(String::from_utf8_lossy(&body).into_owned()),
            EXIT => return (started, be_u32(&body), errors),
            t => panic!("unexpected tag {t}"),
        }
    }
}

/// The cgroup2 line of a `/proc/PID/cgroup` text (`0::/path`).
fn v2_group(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

#[test]
#[ignore = "cannot create groups beneath our own cgroup2 group: run with --include-ignored (as CI does)"]
fn the_port_places_the_group_by_the_handed_layout() {
    let (mut layout, own) =
        own_cgroup2().expect("cannot create groups beneath our own cgroup2 group");
    let decoy = format!("muontrap_it_own_{}_{:x}", std::process::id(), random());
    let decoy_dir = own.join(&decoy);
    let leaf = format!("muontrap_it_leaf_{:x}", random());
    fs::create_dir(&decoy_dir).expect("create the decoy own group");
    // Beneath the decoy, and beneath the real own group (where detection
    // would put it).
    let _cleanup = Cleanup(vec![
        decoy_dir.join(&leaf),
        decoy_dir.clone(),
        own.join(&leaf),
    ]);

    let v2 = layout.v2.as_mut().expect("cgroup2 is mounted");
    let real_own = v2.own.clone().expect("own group known");
    let handed_own = Path::new(&real_own).join(&decoy);
    v2.own = Some(handed_own.to_string_lossy().into_owned());

    let out = std::env::temp_dir().join(format!("muontrap_it_layout_{}", random()));
    let script = format!("cat /proc/self/cgroup > {}", out.display());
    let args = [
        "--beneath-own-cgroup",
        "-g",
        &leaf,
        "--no-controllers",
        "sh",
        "-c",
        &script,
    ];
    let mut cmd = match cli::parse(&args.map(std::ffi::OsString::from)) {
        Ok(Parsed::Run(c)) => *c,
        other => panic!("{other:?}"),
    };
    cmd.cgroup_layout = Some(layout);

    let mut port = Port::spawn_library(&cmd);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    let text = fs::read_to_string(&out).expect("the program wrote its cgroups");
    let _ = fs::remove_file(&out);
    let expected = format!("/{}/{leaf}", handed_own.display()).replace("//", "/");
    assert_eq!(v2_group(&text), Some(expected.as_str()), "{text}");
    assert!(!decoy_dir.join(&leaf).exists(), "the leaf was not removed");
}

/// Refused before anything is touched, so any layout will do.
#[test]
#[cfg_attr(
    not(linux_native),
    ignore = "the portable build refuses cgroups before it looks at a layout"
)]
fn a_handed_layout_is_checked_as_detection_would_make_it() {
    let v2 = |mount: &str, own: &str| Layout {
        v2: Some(Hierarchy {
            version: 2,
            mount_point: mount.into(),
            controllers: vec![],
            own: Some(own.into()),
        }),
        v1: vec![],
    };
    let cases = [
        (
            v2("/sys/fs/cgroup", "a/../.."),
            "cgroup2 at /sys/fs/cgroup: own group path must not contain '.' or '..' components",
        ),
        (
            v2("/sys/fs/cgroup", "/etc"),
            "cgroup2 at /sys/fs/cgroup: own group cgroup path must be relative, not start with '/'",
        ),
        (
            v2("sys/fs/cgroup", ""),
            "cgroup2 at sys/fs/cgroup: the mount point is not an absolute path",
        ),
    ];
    // A path nobody else uses, should one be created after all.
    let leaf = format!("muontrap_it_refused_{:x}", random());
    let args = [
        "--beneath-own-cgroup",
        "-g",
        &leaf,
        "--no-controllers",
        "true",
    ];
    for (layout, why) in cases {
        let mut cmd = match cli::parse(&args.map(std::ffi::OsString::from)) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        cmd.cgroup_layout = Some(layout);
        let mut port = Port::spawn_library(&cmd);
        let expected = format!("muontrap: invalid cgroup layout: {why}");
        assert_eq!(run_to_exit(&mut port), (false, 1, vec![expected]));
    }
}
