//! `--umask`, `--nice` and `--rlimit`, read back from inside the program
//! (the refusals of an unprivileged port are in `attrs_refused.rs`).

mod common;

use common::*;

fn root() -> bool {
    nix::unistd::geteuid().as_raw() == 0
}

/// Plain mode: the program's stdout and the port's exit status.
fn output_of(args: &[&str]) -> (String, i32) {
    let mut full = vec!["--capture-output"];
    full.extend_from_slice(args);
    let mut port = Port::spawn(&full);
    let out = String::from_utf8_lossy(&port.read_plain_acking()).into_owned();
    (out, port.wait())
}

#[test]
fn umask() {
    for (mask, want) in [("077", "0077\n"), ("0", "0000\n"), ("0027", "0027\n")] {
        assert_eq!(
            output_of(&["--umask", mask, "sh", "-c", "umask"]),
            (want.to_string(), 0),
            "{mask}"
        );
    }
    // A file created by the program gets it.
    let dir = std::env::temp_dir().join(format!("muontrap_umask_{}", std::process::id()));
    let file = dir.to_string_lossy().into_owned();
    let (out, status) = output_of(&[
        "--umask",
        "077",
        "sh",
        "-c",
        &format!("touch {file}; stat -c %a {file}"),
    ]);
    let _ = std::fs::remove_file(&dir);
    assert_eq!((out.as_str(), status), ("600\n", 0));
}

/// Field 19 of /proc/self/stat, after the command name (which may hold
/// spaces): the nice value.
const NICE: &str = "sed 's/.*) //' /proc/self/stat | cut -d' ' -f17";

#[test]
fn nice() {
    let (out, status) = output_of(&["--nice", "5", "sh", "-c", NICE]);
    assert_eq!((out.as_str(), status), ("5\n", 0));
}

#[test]
#[ignore = "needs root: run with --include-ignored (as CI does)"]
fn nice_below_ours_with_cap_sys_nice() {
    assert!(root(), "needs root");
    // Lower than ours: allowed with CAP_SYS_NICE, also for a program that
    // runs as another user (the value is set before the privilege drop).
    for extra in [&[][..], &["--uid", "nobody"]] {
        let mut args = extra.to_vec();
        args.extend(["--nice=-5", "sh", "-c", NICE]);
        assert_eq!(output_of(&args), ("-5\n".to_string(), 0), "{extra:?}");
    }
}

/// The soft and hard limit `/proc/self/limits` shows for `row`.
fn limits_row(limits: &str, row: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no '{row}' in {limits}"));
    let mut f = line[row.len()..].split_whitespace();
    let soft = f.next().expect("soft").to_string();
    let hard = f.next().expect("hard").to_string();
    (soft, hard)
}

/// capability(7) number.
const CAP_SYS_RESOURCE: u32 = 24;

/// CAP_SYS_RESOURCE (raising hard limits) is in our effective set: root
/// in a container may lack it.
fn may_raise_hard_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Our hard limit for `resource`.
fn hard_limit(resource: Resource) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one struct through a valid pointer.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
    lim.rlim_max
}

type Resource = libc::__rlimit_resource_t;

/// (--rlimit, resource, its row in /proc/self/limits, soft, hard there)
#[rustfmt::skip]
const RLIMITS: [(&str, Resource, &str, &str, &str); 16] = [
    ("nofile=1024", libc::RLIMIT_NOFILE, "Max open files", "1024", "1024"),
    ("core=0:infinity", libc::RLIMIT_CORE, "Max core file size", "0", INF),
    ("stack=8388608", libc::RLIMIT_STACK, "Max stack size", "8388608", "8388608"),
    ("cpu=infinity", libc::RLIMIT_CPU, "Max cpu time", INF, INF),
    ("as=infinity:infinity", libc::RLIMIT_AS, "Max address space", INF, INF),
    ("data=1073741824:infinity", libc::RLIMIT_DATA, "Max data size", "1073741824", INF),
    ("fsize=1048576:2097152", libc::RLIMIT_FSIZE, "Max file size", "1048576", "2097152"),
    ("memlock=65536", libc::RLIMIT_MEMLOCK, "Max locked memory", "65536", "65536"),
    ("msgqueue=819200", libc::RLIMIT_MSGQUEUE, "Max msgqueue size", "819200", "819200"),
    ("rss=infinity", libc::RLIMIT_RSS, "Max resident set", INF, INF),
    ("nproc=4096:8192", libc::RLIMIT_NPROC, "Max processes", "4096", "8192"),
    ("locks=100:200", libc::RLIMIT_LOCKS, "Max file locks", "100", "200"),
    ("sigpending=1000:2000", libc::RLIMIT_SIGPENDING, "Max pending signals", "1000", "2000"),
    ("nice=0:10", libc::RLIMIT_NICE, "Max nice priority", "0", "10"),
    ("rtprio=0:5", libc::RLIMIT_RTPRIO, "Max realtime priority", "0", "5"),
    ("rttime=1000000:infinity", libc::RLIMIT_RTTIME, "Max realtime timeout", "1000000", INF),
];

/// How /proc/self/limits shows RLIM_INFINITY.
const INF: &str = "unlimited";

#[test]
fn rlimits_in_the_resources_units() {
    // Without CAP_SYS_RESOURCE, only what stays within our hard limits.
    let raise = may_raise_hard_limits();
    let cases: Vec<_> = RLIMITS
        .into_iter()
        .filter(|(_, res, _, _, hard)| {
            raise || hard.parse().unwrap_or(u64::MAX) <= hard_limit(*res)
        })
        .collect();
    eprintln!(
        "{} of 16 resources (CAP_SYS_RESOURCE: {raise})",
        cases.len()
    );
    assert!(cases.len() >= 8, "{cases:?}");
    let mut args = Vec::new();
    for (flag, ..) in &cases {
        args.extend(["--rlimit", flag]);
    }
    args.extend(["cat", "/proc/self/limits"]);
    let (out, status) = output_of(&args);
    assert_eq!(status, 0, "{out}");
    for (flag, _, row, soft, hard) in cases {
        assert_eq!(
            limits_row(&out, row),
            (soft.to_string(), hard.to_string()),
            "{flag}"
        );
    }
}

#[test]
#[ignore = "needs root: run with --include-ignored (as CI does)"]
fn rlimits_are_set_before_the_privilege_drop() {
    assert!(root(), "needs root");
    // Raised above our own hard limit if we may, for a program that then
    // could not raise it itself.
    let n = if may_raise_hard_limits() {
        hard_limit(libc::RLIMIT_NOFILE).min(1 << 19) + 1
    } else {
        100
    };
    let flag = format!("nofile={n}");
    let args = [
        "--uid",
        "nobody",
        "--rlimit",
        &flag,
        "cat",
        "/proc/self/limits",
    ];
    let (out, status) = output_of(&args);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        limits_row(&out, "Max open files"),
        (n.to_string(), n.to_string())
    );
}

#[test]
fn lowering_needs_no_privilege() {
    let (out, status) = output_of(&[
        "--rlimit",
        "core=0:0",
        "--rlimit",
        "nofile=64",
        "cat",
        "/proc/self/limits",
    ]);
    assert_eq!(status, 0, "{out}");
    assert_eq!(
        limits_row(&out, "Max core file size"),
        ("0".into(), "0".into())
    );
    assert_eq!(
        limits_row(&out, "Max open files"),
        ("64".into(), "64".into())
    );
}

#[test]
fn usage_errors() {
    let value = "expected N, infinity or SOFT:HARD (each N or infinity), N a non-negative integer";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--rlimit", "files=1"],
            "invalid --rlimit 'files=1': unknown resource 'files', expected one of as core cpu \
             data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack"
                .into(),
        ),
        (
            vec!["--rlimit", "nofile=10:5"],
            "invalid --rlimit 'nofile=10:5': the soft limit is above the hard limit (10:5)".into(),
        ),
        (
            vec!["--rlimit", "nofile=lots"],
            format!("invalid --rlimit 'nofile=lots': {value}"),
        ),
        (
            vec!["--rlimit", "nofile=1", "--rlimit", "nofile=2"],
            "--rlimit nofile given more than once".into(),
        ),
        (
            vec!["--umask", "8"],
            "--umask needs an octal mode (1 to 4 digits 0-7, at most 777), got '8'".into(),
        ),
        (
            vec!["--umask", "1777"],
            "--umask needs an octal mode (1 to 4 digits 0-7, at most 777), got '1777'".into(),
        ),
        (
            vec!["--nice", "20"],
            "--nice needs an integer from -20 to 19, got '20'".into(),
        ),
        (
            vec!["--nice", "+1"],
            "--nice needs an integer from -20 to 19, got '+1'".into(),
        ),
    ];
    for (mut args, want) in cases {
        args.push("true");
        let (code, out, err) = run_no_child(&args);
        assert_eq!(
            (code, out.as_str(), err),
            (1, "", format!("muontrap: {want}\n")),
            "{args:?}"
        );
    }
}
