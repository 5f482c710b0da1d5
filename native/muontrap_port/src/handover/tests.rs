//! The pure part of the hand-over: roles, capture consistency.

use super::*;
use HandoverError::*;

fn handover(output: Option<i32>, stdin: Option<i32>, stderr: Option<i32>) -> Handover<i32> {
    Handover {
        output,
        stdin,
        stderr,
        listen: Vec::new(),
        command: None,
    }
}

fn with_listen(h: Handover<i32>, listen: &[i32]) -> Handover<i32> {
    Handover {
        listen: listen.to_vec(),
        ..h
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
    // No descriptor at all: a command in the frame, without pipes.
    assert_eq!(sort::<i32>(&[], vec![]), Ok(handover(None, None, None)));
}

#[test]
fn role_errors() {
    let cases: Vec<(&[u8], Vec<i32>, HandoverError)> = vec![
        (&[1], vec![], CountMismatch { fds: 0, roles: 1 }),
        (&[], vec![3], CountMismatch { fds: 1, roles: 0 }),
        (&[1], vec![3, 4], CountMismatch { fds: 2, roles: 1 }),
        (&[1, 1], vec![3, 4], Duplicate("OUTPUT")),
        (&[2, 1, 2], vec![3, 4, 5], Duplicate("STDIN")),
        (&[3, 3], vec![3, 4], Duplicate("STDERR")),
        (&[0], vec![3], UnsupportedRole(0)),
        (&[4], vec![3], UnsupportedRole(4)),
        (&[1, 5, 4], vec![3, 4, 5], UnsupportedRole(4)),
        (&[2, 3, 7], vec![3, 4, 5], UnsupportedRole(7)),
        (&[6, 1, 6], vec![3, 4, 5], Duplicate("COMMAND")),
        (&[5, 5, 1, 1], vec![3, 4, 5, 6], Duplicate("OUTPUT")),
        (&[255], vec![3], UnsupportedRole(255)),
        (&[1; 17], (0..17).collect(), Duplicate("OUTPUT")),
        (&[5; 34], (0..34).collect(), TooMany(34)),
        (
            &[5; 32],
            (0..31).collect(),
            CountMismatch { fds: 31, roles: 32 },
        ),
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
         stdout captured alone (not with stderr merged, nor stderr only)"
    );
    assert!(Duplicate("STDIN")
        .to_string()
        .ends_with("more than one STDIN descriptor"));
    assert!(Closed
        .to_string()
        .ends_with("the BEAM closed the channel before handing over descriptors"));
    assert_eq!(
        Version(7).to_string(),
        format!(
            "cannot receive descriptors from the BEAM: the BEAM speaks transport \
             version 7, this supervisor version {}",
            muontrap_wire::channel::VERSION
        )
    );
    assert!(!Closed.wait_for_close());
    assert!(!Interrupted(Signal::SIGTERM).wait_for_close());
    assert!(MissingCommand.wait_for_close());
    assert!(CommandTwice.wait_for_close());
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

#[test]
fn listen_is_repeatable_and_keeps_the_message_order() {
    assert_eq!(
        sort(&[ROLE_LISTEN], vec![7]),
        Ok(with_listen(Handover::default(), &[7]))
    );
    // Interleaved with the others: LISTEN keeps its own relative order.
    assert_eq!(
        sort(
            &[
                ROLE_LISTEN,
                ROLE_OUTPUT,
                ROLE_LISTEN,
                ROLE_STDIN,
                ROLE_LISTEN
            ],
            vec![9, 4, 5, 6, 8]
        ),
        Ok(with_listen(handover(Some(4), Some(6), None), &[9, 5, 8]))
    );
    // Up to the limit, all LISTEN.
    let all: Vec<i32> = (100..100 + MAX_FDS as i32).rev().collect();
    let h = sort(&[ROLE_LISTEN; MAX_FDS], all.clone()).unwrap();
    assert_eq!(h.listen, all);
    // Or the limit shared with the pipes.
    let mut roles = vec![ROLE_OUTPUT, ROLE_STDIN, ROLE_STDERR];
    roles.resize(MAX_FDS, ROLE_LISTEN);
    let h = sort(&roles, (0..MAX_FDS as i32).collect()).unwrap();
    assert_eq!(h.listen, (3..MAX_FDS as i32).collect::<Vec<_>>());
    assert_eq!(MAX_FDS, 32);
}

#[test]
fn listen_goes_with_any_capture() {
    let listen = |h| with_listen(h, &[5, 6]);
    assert_eq!(
        check_capture(&listen(Handover::default()), Capture::None),
        Ok(())
    );
    let out = listen(handover(Some(1), None, None));
    assert_eq!(check_capture(&out, Capture::StdoutAndStderr), Ok(()));
    // LISTEN does not stand in for OUTPUT.
    assert_eq!(
        check_capture(&listen(Handover::default()), Capture::Stdout),
        Err(MissingOutput)
    );
}

#[test]
fn listen_names_must_match_the_count() {
    let two = with_listen(Handover::default(), &[5, 6]);
    let none: Handover<i32> = Handover::default();
    assert_eq!(check_listen_names(&two, None), Ok(()));
    assert_eq!(check_listen_names(&none, None), Ok(()));
    assert_eq!(check_listen_names(&two, Some(2)), Ok(()));
    assert_eq!(
        check_listen_names(&two, Some(3)),
        Err(ListenNamesMismatch { fds: 2, names: 3 })
    );
    assert_eq!(
        check_listen_names(&none, Some(1)),
        Err(ListenNamesMismatch { fds: 0, names: 1 })
    );
    assert_eq!(
        ListenNamesMismatch { fds: 2, names: 1 }.to_string(),
        "cannot receive descriptors from the BEAM: \
         2 LISTEN descriptors but 1 LISTEN names"
    );
    assert_eq!(
        TooMany(34).to_string(),
        "cannot receive descriptors from the BEAM: 34 descriptors, at most 33 allowed"
    );
}

#[test]
fn the_command_has_a_slot_of_its_own() {
    let h = sort(&[ROLE_OUTPUT, ROLE_COMMAND], vec![7, 8]);
    let h = h.expect("sorted");
    assert_eq!((h.output, h.command), (Some(7), Some(8)));
}
