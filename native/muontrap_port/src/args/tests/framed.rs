//! `--framed`, `--capture-*` and `--handover`, and `framed_requested`,
//! which must agree with `parse`.

use super::*;

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
