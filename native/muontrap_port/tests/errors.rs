//! Usage and setup errors, privileges and cgroup error paths.

mod common;

use std::path::PathBuf;

use common::*;

fn fails_with(args: &[&str], status: i32, message: &str) {
    let (code, out, err) = run_no_child(args);
    assert_eq!(code, status, "{args:?}: {err}");
    assert_eq!(out, "", "{args:?}");
    assert!(err.starts_with("muontrap: "), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}: {err}");
}

#[test]
fn help() {
    let (code, out, err) = run_no_child(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: muontrap"));
    assert!(out.contains("--stdio-window"));
    assert_eq!(err, "");
}

#[test]
fn usage_errors() {
    fails_with(&[], 1, "no program to run");
    fails_with(&["--nope", "true"], 1, "unknown option '--nope'");
    fails_with(&["--arg0"], 1, "--arg0 needs a value");
    fails_with(
        &["-k", "x", "true"],
        1,
        "--delay-to-sigkill needs a non-negative integer, got 'x'",
    );
    fails_with(&["--stdio-window=8", "true"], 1, "at least 16");
    fails_with(
        &["-g", "muontrap_test", "true"],
        1,
        "--group needs at least one --controller",
    );
    fails_with(&["-c", "memory", "true"], 1, "--controller needs --group");
    fails_with(
        &["-g", "a", "-s", "x=1", "-c", "memory", "true"],
        1,
        "--set must come after",
    );
    fails_with(
        &["-g", "../escape", "-c", "memory", "true"],
        1,
        "invalid cgroup path",
    );
    fails_with(&["--output-path", "/x", "true"], 1, "unknown option");
    // `--framed` after the program is the program's: still plain mode.
    fails_with(&["-k", "x", "sh", "--framed"], 1, "--delay-to-sigkill");
}

/// A library start whose setup fails: `cd` into a directory that is
/// not there.
fn bad_cd() -> muontrap_command::Command {
    muontrap_command::Command {
        program: "true".into(),
        cd: Some("/nonexistent/dir".into()),
        ..muontrap_command::Command::default()
    }
}

const BAD_CD: &str = "muontrap: cannot change directory to /nonexistent/dir: \
                      No such file or directory";

#[test]
fn the_library_modes_flags_are_gone_from_the_command_line() {
    // The library starts `muontrap --spawner`; --framed, --handover and
    // --beam, its flags of old, are no options of the plain command line.
    fails_with(&["--framed", "true"], 1, "unknown option '--framed'");
    fails_with(
        &["--handover", "x", "true"],
        1,
        "unknown option '--handover'",
    );
    fails_with(&["--beam"], 1, "unknown option '--beam'");
    fails_with(
        &["--beam", "muontrap-1-a", "true"],
        1,
        "unknown option '--beam'",
    );
    // `--spawner` with more is no spawner either.
    fails_with(&["--spawner", "true"], 1, "unknown option '--spawner'");
}

/// The library's start: an error is an ERROR message, then EXIT 1, then
/// the wait for the channel's EOF; nothing on stderr.
#[test]
fn library_start_errors_are_in_band() {
    let mut port = Port::spawn_library(&bad_cd());
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors), (1, vec![BAD_CD.to_string()]));
    // It waits to be closed, as after every EXIT.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(port.try_status(), None);
    port.close_stdin();
    assert_eq!(port.wait(), 1);
    assert!(port.read_frame().is_none(), "nothing after EXIT");
    assert_eq!(port.stderr(), "");
}

#[test]
fn library_start_error_ends_on_sigterm_too() {
    let mut port = Port::spawn_library(&bad_cd());
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors.len()), (1, 1), "{errors:?}");
    // SAFETY: kill(2) of the supervisor we started.
    unsafe { libc::kill(port.pid(), libc::SIGTERM) };
    assert_eq!(port.wait(), 1);
}

#[test]
fn library_start_error_with_the_channel_shut_exits_at_once() {
    let mut port = Port::spawn_library(&bad_cd());
    port.close_stdin();
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors), (1, vec![BAD_CD.to_string()]));
    assert_eq!(port.wait(), 1);
}

#[test]
fn exec_failure() {
    fails_with(
        &["/nonexistent/program"],
        127,
        "failed to run /nonexistent/program: No such file or directory",
    );
    fails_with(
        &["/etc/passwd"],
        127,
        "failed to run /etc/passwd: Permission denied",
    );
}

#[test]
fn privilege_errors() {
    fails_with(&["--uid", "0", "true"], 1, "uid 0 (root)");
    fails_with(&["--uid", "root", "true"], 1, "uid 0 (root)");
    fails_with(&["--gid", "0", "true"], 1, "gid 0 (root)");
    fails_with(&["--groups", "5,0", "true"], 1, "gid 0 (root)");
    fails_with(
        &["--uid", "no_such_user_muontrap", "true"],
        1,
        "unknown user 'no_such_user_muontrap'",
    );
    fails_with(
        &["--gid", "no_such_group_muontrap", "true"],
        1,
        "unknown group 'no_such_group_muontrap'",
    );
}

#[test]
#[ignore = "needs root: run with --include-ignored (as CI does)"]
fn runs_as_another_user() {
    // Needs root and the Debian `nobody`/`nogroup` entries.
    assert_eq!(nix::unistd::geteuid().as_raw(), 0, "needs root");
    let mut port = Port::spawn(&[
        "--capture-output",
        "--uid",
        "nobody",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    let out = String::from_utf8_lossy(&port.read_plain_acking()).into_owned();
    assert_eq!(port.wait(), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "65534");
    assert_ne!(lines[1], "0");
    assert!(!lines[2].split(' ').any(|g| g == "0"), "{out}");

    let mut port = Port::spawn(&[
        "--capture-output",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--groups",
        "100,65534",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]);
    let out = String::from_utf8_lossy(&port.read_plain_acking()).into_owned();
    assert_eq!(port.wait(), 0);
    assert_eq!(out, "65534\n65534\n65534 100\n");
}

fn cgroup2_mount() -> Option<PathBuf> {
    let layout = muontrap_cgroup::layout::Layout::detect().ok()?;
    Some(layout.v2?.mount_point)
}

#[test]
#[ignore = "needs a writable cgroup2 mount: run with --include-ignored (as CI does)"]
fn cgroup_missing_controller_leaves_nothing_behind() {
    let mount = cgroup2_mount().expect("no cgroup2 mount");
    let available = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    // A name no kernel provides, so the check fails even on a full v2 host
    // without touching its configuration.
    let controller = "muontrapnosuchctrl";
    assert!(!available.split_whitespace().any(|c| c == controller));
    let name = format!("muontrap_test_{}", std::process::id());
    let leaf = mount.join(&name);
    let (code, _, err) = run_no_child(&["-g", &name, "-c", controller, "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("controller '{controller}'")), "{err}");
    if !leaf.exists() {
        return;
    }
    let _ = std::fs::remove_dir(&leaf);
    panic!("{} was left behind", leaf.display());
}

#[test]
#[ignore = "needs a writable cgroup2 mount: run with --include-ignored (as CI does)"]
fn cgroup_existing_leaf_is_refused() {
    let mount = cgroup2_mount().expect("no cgroup2 mount");
    let name = format!("muontrap_test_exists_{}", std::process::id());
    let leaf = mount.join(&name);
    if let Err(e) = std::fs::create_dir(&leaf) {
        panic!("cannot create {}: {e}", leaf.display());
    }
    let (code, _, err) = run_no_child(&["-g", &name, "-c", "memory", "true"]);
    let still_there = leaf.is_dir();
    let _ = std::fs::remove_dir(&leaf);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!("muontrap: cgroup {} already exists\n", leaf.display())
    );
    assert!(still_there, "a pre-existing group must not be removed");
}
