//! `--notify` and `--watchdog`.

use super::*;

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
