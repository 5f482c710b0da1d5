use super::*;

fn argv(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn run(a: &[&str]) -> Config {
    match parse(&argv(a)) {
        Ok(Parsed::Run(c)) => *c,
        other => panic!("{a:?} -> {other:?}"),
    }
}

fn err(a: &[&str]) -> ArgError {
    match parse(&argv(a)) {
        Err(e) => e,
        other => panic!("{a:?} should fail, got {other:?}"),
    }
}

#[test]
fn no_controllers_gives_a_containment_only_group() {
    let Ok(Parsed::Run(c)) = parse(&argv(&["-g", "a/b", "--no-controllers", "p"])) else {
        panic!("expected a run")
    };
    let cg = c.cgroup.expect("a cgroup");
    assert_eq!(cg.path, "a/b");
    assert!(cg.controllers.is_empty());
}

#[test]
fn defaults() {
    let c = run(&["echo", "hi", "there"]);
    assert_eq!(c.program, "echo");
    assert_eq!(c.args, argv(&["hi", "there"]));
    assert_eq!(c.arg0, None);
    assert_eq!(c.cgroup, None);
    assert_eq!(c.delay_to_sigkill_ms, 500);
    assert_eq!(c.window, 10240);
    assert_eq!(c.capture, Capture::None);
    assert!(!c.framed);
    assert_eq!((c.uid, c.gid, c.supplementary_groups), (None, None, None));
}

#[test]
fn help_anywhere_before_program() {
    assert_eq!(parse(&argv(&["--help"])), Ok(Parsed::Help));
    assert_eq!(parse(&argv(&["--framed", "--help", "x"])), Ok(Parsed::Help));
    // After the program it belongs to the program.
    assert_eq!(run(&["ls", "--help"]).args, argv(&["--help"]));
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
        "--framed",
        "--capture-output",
        "--handover=muontrap-1-a",
        "prog",
    ]);
    assert_eq!(a.arg0, Some(OsString::from("name")));
    assert_eq!(a.delay_to_sigkill_ms, 42);
    assert_eq!(a.window, 16);
    assert_eq!(a.uid, Some(IdSpec::Name("alice".into())));
    assert_eq!(a.gid, Some(IdSpec::Id(100)));
    assert_eq!(
        a.supplementary_groups,
        Some(vec![IdSpec::Id(1), IdSpec::Name("wheel".into())])
    );
    assert!(a.framed);
    assert_eq!(a.capture, Capture::Stdout);
    assert_eq!(a.handover.as_deref(), Some("muontrap-1-a"));
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
    assert_eq!(c.arg0, Some(OsString::from("zero")));
    assert_eq!(c.delay_to_sigkill_ms, 7);
    assert_eq!(
        c.cgroup,
        Some(CgroupConfig {
            path: "a/b".into(),
            controllers: vec!["memory".into(), "pids".into()],
            settings: vec![
                ("memory.max".into(), "1M".into()),
                ("pids.max".into(), String::new())
            ],
            beneath_own: false,
        })
    );
}

#[test]
fn end_of_options() {
    let c = run(&["--framed", "--", "--capture-output", "-x"]);
    assert_eq!(c.program, "--capture-output");
    assert_eq!(c.args, argv(&["-x"]));
    assert_eq!(c.capture, Capture::None);
    // The first non-option ends option parsing.
    let c = run(&["sh", "-c", "--framed"]);
    assert_eq!(c.program, "sh");
    assert!(!c.framed);
    assert_eq!(run(&["-"]).program, "-");
    // A value may look like an option.
    assert_eq!(
        run(&["--arg0", "--framed", "p"]).arg0,
        Some("--framed".into())
    );
    assert_eq!(run(&["--arg0=", "p"]).arg0, Some("".into()));
}

#[test]
fn handover() {
    assert_eq!(run(&["p"]).handover, None);
    let c = run(&["--capture-output", "--handover", "muontrap-1-f", "p"]);
    assert_eq!(c.handover.as_deref(), Some("muontrap-1-f"));
    // The name itself is checked when it is used (an in-band error).
    assert_eq!(run(&["--handover=x", "p"]).handover.as_deref(), Some("x"));
    assert_eq!(
        err(&["--handover", "a", "--handover", "b", "p"]),
        ArgError::Duplicate("--handover")
    );
    assert_eq!(err(&["--handover"]), ArgError::MissingValue("--handover"));
}

#[test]
fn framed_capture_needs_handover() {
    for flag in [
        "--capture-output",
        "--capture-stderr",
        "--capture-stderr-only",
    ] {
        assert_eq!(
            err(&["--framed", flag, "p"]),
            ArgError::FramedCaptureWithoutHandover,
            "{flag}"
        );
        let c = run(&["--framed", flag, "--handover", "muontrap-1-a", "p"]);
        assert!(c.framed);
        // Plain mode relays without one.
        assert_ne!(run(&[flag, "p"]).capture, Capture::None);
    }
    // Nothing to capture, nothing to hand over; the window is ignored.
    assert!(run(&["--framed", "--stdio-window", "16", "p"]).framed);
    assert_eq!(
        ArgError::FramedCaptureWithoutHandover.to_string(),
        "--framed with --capture-* needs --handover"
    );
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
        (vec!["--framed"], MissingProgram),
        (vec!["--"], MissingProgram),
        (vec!["--bogus", "p"], UnknownOption("--bogus".into())),
        (vec!["-x", "p"], UnknownOption("-x".into())),
        (vec!["-gfoo", "p"], UnknownOption("-gfoo".into())),
        (vec!["--framed=yes", "p"], UnexpectedValue("--framed")),
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
        (vec!["-g", "x", "p"], CgroupWithoutController),
        (vec!["-c", "memory", "p"], ControllerWithoutCgroup),
        (vec!["--no-controllers", "p"], NoControllersMisuse),
        (
            vec!["-g", "x", "-c", "pids", "--no-controllers", "p"],
            NoControllersMisuse,
        ),
        (
            vec!["-g", "x", "-s", "a=b", "-c", "memory", "p"],
            SetBeforeController,
        ),
        (
            vec!["-g", "x", "-c", "Mem ory", "p"],
            BadController("Mem ory".into()),
        ),
        (vec!["-g", "x", "-c", "", "p"], BadController("".into())),
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
fn cgroup_path_and_set_validation() {
    for p in ["/abs", "a/../b", "..", "", "a//b"] {
        match err(&["-g", p, "-c", "memory", "p"]) {
            ArgError::BadCgroupPath { path, .. } => assert_eq!(path, p),
            e => panic!("{p}: {e:?}"),
        }
    }
    for s in ["noequals", "a/b=1", "..=1", "=1", "./x=1"] {
        match err(&["-g", "x", "-c", "memory", "-s", s, "p"]) {
            ArgError::BadSet { arg, .. } => assert_eq!(arg, s),
            e => panic!("{s}: {e:?}"),
        }
    }
    // Only the first '=' separates.
    let c = run(&["-g", "x", "-c", "memory", "-s", "f=a=b", "p"]);
    assert_eq!(
        c.cgroup.map(|g| g.settings),
        Some(vec![("f".into(), "a=b".into())])
    );
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
            assert_eq!(c.arg0, Some(bad.clone()));
            assert_eq!(c.program, bad);
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
fn framed_requested_scans_only_our_options() {
    let yes: &[&[&str]] = &[
        &["--framed", "true"],
        &["-k", "5", "--framed", "true"],
        // Errors `parse` stops at do not hide a later --framed.
        &["--delay-to-sigkill", "99999999999", "--framed", "true"],
        &["--bogus", "--framed", "true"],
        &["-g", "../x", "--framed", "-c", "memory", "true"],
        &["--stdio-window=1", "--framed"],
        &["--framed", "--", "p"],
        &["--framed"],
    ];
    for a in yes {
        assert!(framed_requested(&argv(a)), "{a:?}");
    }
    let no: &[&[&str]] = &[
        &[],
        &["true"],
        // After `--` or the program, it is the program's.
        &["--", "--framed", "true"],
        &["sh", "--framed"],
        &["-k", "5", "sh", "-c", "--framed"],
        // A value that looks like it.
        &["--arg0", "--framed", "p"],
        &["-0", "--framed", "p"],
        &["--handover", "--framed", "p"],
        // Not the flag itself (`parse` refuses it).
        &["--framed=yes", "p"],
        &["--framedx", "p"],
    ];
    for a in no {
        assert!(!framed_requested(&argv(a)), "{a:?}");
    }
    // A non-UTF-8 word is the program.
    use std::os::unix::ffi::OsStringExt;
    let a = vec![OsString::from_vec(vec![0xff]), OsString::from("--framed")];
    assert!(!framed_requested(&a));
}

#[test]
fn framed_requested_agrees_with_parse() {
    for a in [
        &["--framed", "p"][..],
        &["--arg0", "--framed", "p"],
        &["--", "--framed"],
        &[
            "-k",
            "1",
            "--framed",
            "--stdio-window",
            "16",
            "p",
            "--framed",
        ],
        &["--arg0=--framed", "p"],
    ] {
        let Ok(Parsed::Run(c)) = parse(&argv(a)) else {
            panic!("{a:?}")
        };
        assert_eq!(framed_requested(&argv(a)), c.framed, "{a:?}");
    }
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
fn notify_and_watchdog() {
    let c = run(&["p"]);
    assert!(!c.notify && c.watchdog_ms.is_none() && !c.notify_socket());
    let c = run(&["--framed", "--notify", "p"]);
    assert!(c.notify && c.notify_socket());
    assert_eq!(c.watchdog_ms, None);
    let c = run(&["--framed", "--watchdog", "300", "p"]);
    assert!(!c.notify && c.notify_socket());
    assert_eq!(c.watchdog_ms, Some(300));
    let c = run(&["--watchdog=4294967295", "--notify", "--framed", "p"]);
    assert_eq!((c.notify, c.watchdog_ms), (true, Some(u32::MAX)));
    assert_eq!(
        run(&["--framed", "--watchdog", "01", "p"]).watchdog_ms,
        Some(1)
    );
    // A value is still a value.
    assert_eq!(
        run(&["--arg0", "--notify", "p"]).arg0,
        Some("--notify".into())
    );
    assert!(framed_requested(&argv(&[
        "--watchdog",
        "5",
        "--framed",
        "p"
    ])));
    assert!(!framed_requested(&argv(&["--watchdog", "--framed", "p"])));
}

#[test]
fn notify_and_watchdog_errors() {
    use ArgError::*;
    let cases: Vec<(Vec<&str>, ArgError, &str)> = vec![
        (
            vec!["--notify", "p"],
            NeedsFramed("--notify"),
            "--notify needs --framed",
        ),
        (
            vec!["--watchdog", "5", "p"],
            NeedsFramed("--watchdog"),
            "--watchdog needs --framed",
        ),
        (
            vec!["--framed", "--watchdog", "0", "p"],
            WatchdogZero,
            "--watchdog must be at least 1, got 0",
        ),
        (
            vec!["--framed", "--watchdog", "000", "p"],
            WatchdogZero,
            "--watchdog must be at least 1, got 0",
        ),
        (
            vec!["--framed", "--watchdog", "4294967296", "p"],
            BadNumber {
                option: "--watchdog",
                value: "4294967296".into(),
            },
            "--watchdog needs a non-negative integer, got '4294967296'",
        ),
        (
            vec!["--framed", "--watchdog", "-1", "p"],
            BadNumber {
                option: "--watchdog",
                value: "-1".into(),
            },
            "--watchdog needs a non-negative integer, got '-1'",
        ),
        (
            vec!["--framed", "--watchdog", "1", "--watchdog", "2", "p"],
            Duplicate("--watchdog"),
            "option --watchdog given more than once",
        ),
        (
            vec!["--framed", "--watchdog"],
            MissingValue("--watchdog"),
            "option --watchdog needs a value",
        ),
        (
            vec!["--framed", "--notify=1", "p"],
            UnexpectedValue("--notify"),
            "option --notify does not take a value",
        ),
    ];
    for (a, want, text) in cases {
        let e = err(&a);
        assert_eq!(e, want, "{a:?}");
        assert_eq!(e.to_string(), text, "{a:?}");
    }
}
