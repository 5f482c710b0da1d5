//! The command line in general: defaults, long and short forms, `--`,
//! values, numbers and ids, and the errors any option can give.

use super::*;
use crate::{Bytes, Capture};

#[test]
fn defaults() {
    let c = run(&["echo", "hi", "there"]);
    assert_eq!(c.program, "echo");
    assert_eq!(c.args, bytes(&["hi", "there"]));
    assert_eq!(c.arg0, None);
    assert_eq!(c.cgroup(), None);
    assert_eq!(c.delay_to_sigkill_ms, 500);
    assert_eq!(c.window, 10240);
    assert_eq!(c.capture, Capture::None);
    assert_eq!((c.uid, c.gid, c.supplementary_groups), (None, None, None));
}

#[test]
fn help_anywhere_before_program() {
    assert_eq!(parse(&argv(&["--help"])), Ok(Parsed::Help));
    assert_eq!(parse(&argv(&["-k", "1", "--help", "x"])), Ok(Parsed::Help));
    // After the program it belongs to the program.
    assert_eq!(run(&["ls", "--help"]).args, bytes(&["--help"]));
}

#[test]
fn long_options_with_space_or_equals() {
    let a = run(&[
        "--arg0",
        "name",
        "--delay-to-sigkill=42",
        "--stdio-window",
        "16",
        "--uid=alice",
        "--gid",
        "100",
        "--groups=1,wheel",
        "--capture-output",
        "prog",
    ]);
    assert_eq!(a.arg0, Some(crate::Bytes::from("name")));
    assert_eq!(a.delay_to_sigkill_ms, 42);
    assert_eq!(a.window, 16);
    assert_eq!(a.uid, Some(IdSpec::Name("alice".into())));
    assert_eq!(a.gid, Some(IdSpec::Id(100)));
    assert_eq!(
        a.supplementary_groups,
        Some(vec![IdSpec::Id(1), IdSpec::Name("wheel".into())])
    );
    assert_eq!(a.capture, Capture::Stdout);
    assert_eq!(a.program, "prog");
}

#[test]
fn short_options() {
    let c = run(&[
        "-0",
        "zero",
        "-g",
        "a/b",
        "-c",
        "memory",
        "-c",
        "pids",
        "-s",
        "memory.max=1M",
        "-s",
        "pids.max=",
        "-k",
        "7",
        "prog",
    ]);
    assert_eq!(c.arg0, Some(crate::Bytes::from("zero")));
    assert_eq!(c.delay_to_sigkill_ms, 7);
    let cgroup = c.cgroup().expect("a cgroup");
    assert_eq!((cgroup.path, cgroup.beneath_own_cgroup), ("a/b", false));
    assert_eq!(cgroup.controllers, ["memory", "pids"]);
    assert_eq!(
        cgroup.settings,
        [
            ("memory.max".to_string(), "1M".to_string()),
            ("pids.max".to_string(), String::new())
        ]
    );
}

#[test]
fn end_of_options() {
    let c = run(&["-k", "1", "--", "--capture-output", "-x"]);
    assert_eq!(c.program, "--capture-output");
    assert_eq!(c.args, bytes(&["-x"]));
    assert_eq!(c.capture, Capture::None);
    // The first non-option ends option parsing.
    let c = run(&["sh", "-c", "--capture-output"]);
    assert_eq!(c.program, "sh");
    assert_eq!(c.capture, Capture::None);
    assert_eq!(run(&["-"]).program, "-");
    // A value may look like an option.
    assert_eq!(
        run(&["--arg0", "--capture-output", "p"]).arg0,
        Some("--capture-output".into())
    );
    assert_eq!(run(&["--arg0=", "p"]).arg0, Some("".into()));
}

#[test]
fn non_utf8() {
    use std::os::unix::ffi::OsStringExt;
    let bad = OsString::from_vec(vec![0xff, 0xfe]);
    let a = vec![OsString::from("--uid"), bad.clone(), "p".into()];
    assert_eq!(parse(&a), Err(ArgError::NotUtf8("--uid")));
    // Fine as arg0, program or argument.
    let a = vec!["-0".into(), bad.clone(), bad.clone(), bad.clone()];
    match parse(&a) {
        Ok(Parsed::Run(c)) => {
            assert_eq!(c.arg0, Some(Bytes(bad.clone())));
            assert_eq!(c.program, Bytes(bad));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn id_spec() {
    assert_eq!(IdSpec::parse("0"), IdSpec::Id(0));
    assert_eq!(IdSpec::parse("65534"), IdSpec::Id(65534));
    assert_eq!(
        IdSpec::parse("4294967296"),
        IdSpec::Name("4294967296".into())
    );
    assert_eq!(IdSpec::parse("1a"), IdSpec::Name("1a".into()));
}

#[test]
fn numeric_bounds() {
    // The limits the Elixir side validates against (docs/protocol.md).
    assert_eq!(run(&["-k", "0", "p"]).delay_to_sigkill_ms, 0);
    assert_eq!(
        run(&["-k", "4294967295", "p"]).delay_to_sigkill_ms,
        u32::MAX
    );
    assert_eq!(run(&["-k", "007", "p"]).delay_to_sigkill_ms, 7);
    assert_eq!(
        err(&["-k", "4294967296", "p"]).to_string(),
        "--delay-to-sigkill needs a non-negative integer, got '4294967296'"
    );
    assert_eq!(run(&["--stdio-window", "16", "p"]).window, 16);
    assert_eq!(run(&["--stdio-window", "4294967295", "p"]).window, u32::MAX);
    assert_eq!(
        err(&["--stdio-window", "15", "p"]).to_string(),
        "--stdio-window must be at least 16, got 15"
    );
    assert_eq!(
        err(&["--stdio-window", "4294967296", "p"]).to_string(),
        "--stdio-window needs a non-negative integer, got '4294967296'"
    );
    assert_eq!(
        err(&["--stdio-window", "", "p"]).to_string(),
        "--stdio-window needs a non-negative integer, got ''"
    );
    // Ids: a u32 is numeric, anything longer is a name (looked up later).
    assert_eq!(
        run(&["--uid", "4294967295", "p"]).uid,
        Some(IdSpec::Id(u32::MAX))
    );
    assert_eq!(
        run(&["--gid", "4294967296", "p"]).gid,
        Some(IdSpec::Name("4294967296".into()))
    );
}

#[test]
fn empty_supplementary_groups_means_none() {
    assert_eq!(
        run(&["--groups", "", "p"]).supplementary_groups,
        Some(vec![])
    );
    assert_eq!(run(&["--groups=", "p"]).supplementary_groups, Some(vec![]));
}

#[test]
fn errors() {
    use ArgError::*;
    let cases: Vec<(Vec<&str>, ArgError)> = vec![
        (vec![], MissingProgram),
        (vec!["--capture-output"], MissingProgram),
        (vec!["--"], MissingProgram),
        (vec!["--bogus", "p"], UnknownOption("--bogus".into())),
        (vec!["-x", "p"], UnknownOption("-x".into())),
        (vec!["-gfoo", "p"], UnknownOption("-gfoo".into())),
        (
            vec!["--capture-output=yes", "p"],
            UnexpectedValue("--capture-output"),
        ),
        // The library's mode is chosen by how it starts the port, not by a flag.
        (vec!["--framed", "p"], UnknownOption("--framed".into())),
        (
            vec!["--handover", "n", "p"],
            UnknownOption("--handover".into()),
        ),
        (vec!["--arg0"], MissingValue("--arg0")),
        (vec!["-k"], MissingValue("--delay-to-sigkill")),
        (vec!["-k=5", "p"], UnknownOption("-k=5".into())),
        (
            vec!["-k", "soon", "p"],
            BadNumber {
                option: "--delay-to-sigkill",
                value: "soon".into(),
            },
        ),
        (
            vec!["-k", "-1", "p"],
            BadNumber {
                option: "--delay-to-sigkill",
                value: "-1".into(),
            },
        ),
        (
            vec!["-k", "+1", "p"],
            BadNumber {
                option: "--delay-to-sigkill",
                value: "+1".into(),
            },
        ),
        (
            vec!["--stdio-window=99999999999", "p"],
            BadNumber {
                option: "--stdio-window",
                value: "99999999999".into(),
            },
        ),
        (vec!["--stdio-window", "15", "p"], WindowTooSmall(15)),
        (vec!["--uid", "1", "--uid", "2", "p"], Duplicate("--uid")),
        (vec!["-0", "a", "--arg0", "b", "p"], Duplicate("--arg0")),
        (
            vec!["--groups", "1,,2", "p"],
            BadSupplementaryGroups("1,,2".into()),
        ),
        (
            vec!["--groups", "1,", "p"],
            BadSupplementaryGroups("1,".into()),
        ),
    ];
    for (a, want) in cases {
        assert_eq!(err(&a), want, "{a:?}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn usage_states_the_defaults_and_bounds() {
    let u = usage();
    assert!(u.contains("before SIGKILL (default 500)"), "{u}");
    assert!(u.contains("output limit (default 10240, min 16)"), "{u}");
    assert!(!u.contains('{'), "{u}");
}

#[test]
fn environment_edits_keep_their_bytes_and_order() {
    use std::os::unix::ffi::OsStringExt;
    let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
    let bytes = |b: &[u8]| crate::Bytes(raw(b));
    let a = vec![
        raw(b"--setenv"),
        raw(b"BIN=\xff\n=x"),
        raw(b"--unsetenv=HOME"),
        raw(b"--setenv=EMPTY="),
        raw(b"prog"),
    ];
    let Ok(Parsed::Run(c)) = parse(&a) else {
        panic!("should parse")
    };
    assert_eq!(
        c.env,
        [
            (bytes(b"BIN"), Some(bytes(b"\xff\n=x"))),
            (bytes(b"HOME"), None),
            (bytes(b"EMPTY"), Some(bytes(b""))),
        ]
    );
    assert!(run(&["prog"]).env.is_empty());
    for bad in [
        ["--setenv", "NOVALUE"],
        ["--setenv", "=x"],
        ["--unsetenv", "A=b"],
        ["--unsetenv", ""],
    ] {
        let e = err(&[bad[0], bad[1], "prog"]).to_string();
        assert!(
            e.starts_with(&format!("invalid {} '{}'", bad[0], bad[1])),
            "{e}"
        );
    }
}

#[test]
fn capture_modes() {
    assert_eq!(
        run(&["--capture-stderr", "p"]).capture,
        Capture::StdoutAndStderr
    );
    assert_eq!(
        run(&["--capture-output", "--capture-stderr", "p"]).capture,
        Capture::StdoutAndStderr
    );
    assert_eq!(
        run(&["--capture-stderr-only", "p"]).capture,
        Capture::StderrOnly
    );
    for both in [
        &["--capture-stderr-only", "--capture-output", "p"][..],
        &[
            "--capture-output",
            "--capture-stderr",
            "--capture-stderr-only",
            "p",
        ],
    ] {
        assert_eq!(run(both).capture, Capture::StderrOnly);
    }
}
