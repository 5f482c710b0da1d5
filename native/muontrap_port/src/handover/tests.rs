//! The pure part of the hand-over: names, roles, capture consistency.

use super::*;
use HandoverError::*;

#[test]
fn names() {
    assert_eq!(parse_name("muontrap-123-abc"), Ok(123));
    assert_eq!(parse_name("muontrap-1-0"), Ok(1));
    assert_eq!(parse_name("muontrap-42-a-b"), Ok(42));
    assert_eq!(parse_name("muontrap-2147483647-f"), Ok(i32::MAX));
    let long = format!("muontrap-1-{}", "a".repeat(MAX_NAME - 11));
    assert_eq!(parse_name(&long), Ok(1));
    let too_long = format!("{long}a");
    for bad in [
        "",
        "muontrap-",
        "muontrap-123",
        "muontrap-123-",
        "muontrap--abc",
        "muontrap-0-abc",
        "muontrap-012-abc",
        "muontrap-+12-abc",
        "muontrap-1x-abc",
        "muontrap-2147483648-abc",
        "Muontrap-1-abc",
        "xmuontrap-1-abc",
        too_long.as_str(),
    ] {
        assert_eq!(parse_name(bad), Err(BadName(bad.into())), "{bad:?}");
    }
}

fn handover(output: Option<i32>, stdin: Option<i32>, stderr: Option<i32>) -> Handover<i32> {
    Handover {
        output,
        stdin,
        stderr,
    }
}

#[test]
fn sorts_roles() {
    assert_eq!(
        sort(&[ROLE_OUTPUT], vec![7]),
        Ok(handover(Some(7), None, None))
    );
    assert_eq!(
        sort(&[ROLE_STDIN], vec![7]),
        Ok(handover(None, Some(7), None))
    );
    // Any order: the role bytes say which is which.
    assert_eq!(
        sort(&[ROLE_STDERR, ROLE_OUTPUT, ROLE_STDIN], vec![5, 6, 7]),
        Ok(handover(Some(6), Some(7), Some(5)))
    );
    assert_eq!(
        sort(&[ROLE_STDIN, ROLE_STDERR], vec![8, 9]),
        Ok(handover(None, Some(8), Some(9)))
    );
}

#[test]
fn role_errors() {
    let cases: Vec<(&[u8], Vec<i32>, HandoverError)> = vec![
        (&[], vec![], NoMessage),
        (&[1], vec![], CountMismatch { fds: 0, roles: 1 }),
        (&[], vec![3], CountMismatch { fds: 1, roles: 0 }),
        (&[1], vec![3, 4], CountMismatch { fds: 2, roles: 1 }),
        (&[1, 1], vec![3, 4], Duplicate("OUTPUT")),
        (&[2, 1, 2], vec![3, 4, 5], Duplicate("STDIN")),
        (&[3, 3], vec![3, 4], Duplicate("STDERR")),
        (&[0], vec![3], UnsupportedRole(0)),
        (&[4], vec![3], UnsupportedRole(4)),
        (&[1, 5], vec![3, 4], UnsupportedRole(5)),
        (&[2, 3, 6], vec![3, 4, 5], UnsupportedRole(6)),
        (&[255], vec![3], UnsupportedRole(255)),
        (&[1; 17], (0..17).collect(), TooMany(17)),
    ];
    for (roles, fds, want) in cases {
        assert_eq!(sort(roles, fds), Err(want.clone()), "{roles:?}");
    }
}

#[test]
fn error_messages() {
    let e = UnsupportedRole(4).to_string();
    assert_eq!(
        e,
        "cannot receive descriptors from the BEAM: unsupported descriptor role 4"
    );
    assert_eq!(
        StderrNeedsStdoutCapture.to_string(),
        "cannot receive descriptors from the BEAM: a STDERR descriptor needs \
         --capture-output alone (not with --capture-stderr or --capture-stderr-only)"
    );
    assert!(Duplicate("STDIN")
        .to_string()
        .ends_with("more than one STDIN descriptor"));
    assert!(StdinClosed
        .to_string()
        .ends_with("the BEAM closed the port before handing over descriptors"));
    assert!(!StdinClosed.wait_for_close());
    assert!(!Interrupted(Signal::SIGTERM).wait_for_close());
    assert!(NoMessage.wait_for_close());
}

#[test]
fn capture_and_output_agree() {
    let with = handover(Some(1), None, None);
    let without: Handover<i32> = Handover::default();
    assert_eq!(check_capture(&with, Capture::Stdout), Ok(()));
    assert_eq!(check_capture(&with, Capture::StderrOnly), Ok(()));
    assert_eq!(check_capture(&without, Capture::None), Ok(()));
    assert_eq!(
        check_capture(&without, Capture::StdoutAndStderr),
        Err(MissingOutput)
    );
    assert_eq!(check_capture(&with, Capture::None), Err(UnexpectedOutput));
}

#[test]
fn stderr_only_beside_captured_stdout_alone() {
    let cases = [
        (Capture::Stdout, Ok(())),
        (Capture::StdoutAndStderr, Err(StderrNeedsStdoutCapture)),
        (Capture::StderrOnly, Err(StderrNeedsStdoutCapture)),
    ];
    for (capture, want) in cases {
        let both = handover(Some(1), None, Some(2));
        assert_eq!(check_capture(&both, capture), want, "{capture:?}");
        let all = handover(Some(1), Some(3), Some(2));
        assert_eq!(check_capture(&all, capture), want, "{capture:?}");
    }
    let alone = handover(None, None, Some(2));
    assert_eq!(
        check_capture(&alone, Capture::None),
        Err(StderrNeedsStdoutCapture)
    );
    // The OUTPUT rule is checked first.
    assert_eq!(check_capture(&alone, Capture::Stdout), Err(MissingOutput));
}

#[test]
fn stdin_goes_with_any_capture() {
    for capture in [
        Capture::Stdout,
        Capture::StdoutAndStderr,
        Capture::StderrOnly,
    ] {
        let h = handover(Some(1), Some(2), None);
        assert_eq!(check_capture(&h, capture), Ok(()), "{capture:?}");
    }
    assert_eq!(
        check_capture(&handover(None, Some(2), None), Capture::None),
        Ok(())
    );
    assert_eq!(
        check_capture(&handover(Some(1), Some(2), None), Capture::None),
        Err(UnexpectedOutput)
    );
}
