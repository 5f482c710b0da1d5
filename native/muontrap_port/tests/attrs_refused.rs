//! `--nice` and `--rlimit` refused: a port without the privilege to
//! lower the nice value or raise a hard limit (run as nobody through
//! setpriv(1)), and a limit the kernel refuses to anyone. Child-setup
//! failures: ERROR (framed) or a stderr line (plain), exit status 1.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn root() -> bool {
    nix::unistd::geteuid().as_raw() == 0
}

/// `setpriv` running the port as nobody (no capabilities).
const AS_NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
];

fn can_drop_privileges() -> bool {
    root()
        && Command::new("setpriv")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The port run through `wrapper`, framed: (EXIT status, ERROR texts).
fn framed_via(wrapper: &[&str], args: &[&str]) -> (u32, Vec<String>) {
    let mut full = vec!["--framed"];
    full.extend_from_slice(args);
    let mut port = Port::spawn_wrapped(wrapper, &full);
    let (tag, body) = port.read_frame().expect("a frame");
    let result = if tag == STARTED {
        port.read_framed_until_exit()
    } else {
        assert_eq!(tag, ERROR, "{body:?}");
        let (status, mut rest) = port.read_framed_until_exit();
        rest.insert(0, String::from_utf8(body).expect("utf-8"));
        (status, rest)
    };
    port.close_stdin();
    assert_eq!(port.wait() as u32, result.0);
    assert_eq!(port.stderr(), "");
    result
}

#[test]
#[ignore = "needs root and setpriv: run with --include-ignored (as CI does)"]
fn an_unprivileged_port_cannot_lower_the_nice_value() {
    assert!(can_drop_privileges(), "needs root and setpriv");
    let want = "muontrap: failed to set nice value -5: Permission denied";
    assert_eq!(
        framed_via(&AS_NOBODY, &["--nice", "-5", "true"]),
        (1, vec![want.to_string()])
    );
    // Plain: on stderr, exit status 1.
    let out = Command::new(AS_NOBODY[0])
        .args(&AS_NOBODY[1..])
        .args([BIN, "--nice", "-5", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{want}\n"));
    // Raising it is fine.
    assert_eq!(
        framed_via(&AS_NOBODY, &["--nice", "10", "true"]),
        (0, vec![])
    );
}

#[test]
#[ignore = "needs root and setpriv: run with --include-ignored (as CI does)"]
fn an_unprivileged_port_cannot_raise_a_hard_limit() {
    assert!(can_drop_privileges(), "needs root and setpriv");
    // A hard limit of 512 first, then the port as nobody.
    let wrapper = [
        &["sh", "-c", r#"ulimit -n 512 && exec "$@""#, "sh"][..],
        &AS_NOBODY,
    ]
    .concat();
    let want = "muontrap: failed to set rlimit nofile to 1024:1024: Operation not permitted";
    assert_eq!(
        framed_via(&wrapper, &["--rlimit", "nofile=1024", "true"]),
        (1, vec![want.to_string()])
    );
    // The failing one is named among several.
    let want = "muontrap: failed to set rlimit nofile to 256:infinity: Operation not permitted";
    assert_eq!(
        framed_via(
            &wrapper,
            &[
                "--rlimit",
                "core=0",
                "--rlimit",
                "nofile=256:infinity",
                "true"
            ]
        ),
        (1, vec![want.to_string()])
    );
    // Within the hard limit: fine.
    assert_eq!(
        framed_via(&wrapper, &["--rlimit", "nofile=256:512", "true"]),
        (0, vec![])
    );
}

#[test]
#[ignore = "needs root: run with --include-ignored (as CI does)"]
fn a_hard_limit_above_nr_open_is_refused() {
    assert!(root(), "needs root");
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("nr_open");
    let flag = format!("nofile={}", nr_open + 1);
    let (status, errors) = framed_via(&["env"], &["--rlimit", &flag, "true"]);
    let n = nr_open + 1;
    assert_eq!(
        (status, errors),
        (
            1,
            vec![format!(
                "muontrap: failed to set rlimit nofile to {n}:{n}: Operation not permitted"
            )]
        )
    );
}
