use super::*;

#[test]
fn failure_messages_and_status() {
    let exec = ChildFailure {
        stage: Some(Stage::Exec),
        errno: Errno::ENOENT,
        value: None,
    };
    assert_eq!(exec.status(), 127);
    assert_eq!(
        exec.describe(OsStr::new("/no/such"), None),
        "failed to run /no/such: No such file or directory"
    );
    let uid = ChildFailure {
        stage: Some(Stage::Setuid),
        errno: Errno::EPERM,
        value: None,
    };
    assert_eq!(uid.status(), 1);
    assert!(uid
        .describe(OsStr::new("x"), None)
        .starts_with("failed to set the user id"));
    let cg = ChildFailure {
        stage: Some(Stage::Cgroup),
        errno: Errno::EACCES,
        value: None,
    };
    assert_eq!(
        cg.describe(OsStr::new("x"), Some("a/b")),
        "failed to join cgroup a/b: Permission denied"
    );
    let nice = ChildFailure {
        stage: Some(Stage::Nice),
        errno: Errno::EACCES,
        value: Some("-5".into()),
    };
    assert_eq!(
        (nice.status(), nice.describe(OsStr::new("x"), None).as_str()),
        (1, "failed to set nice value -5: Permission denied")
    );
    let rlimit = ChildFailure {
        stage: Some(Stage::Rlimit),
        errno: Errno::EPERM,
        value: Some("nofile to 1048576:1048576".into()),
    };
    assert_eq!(
        rlimit.describe(OsStr::new("x"), None),
        "failed to set rlimit nofile to 1048576:1048576: Operation not permitted"
    );
    for b in 1..=9 {
        assert_eq!(Stage::from_u8(b).map(|s| s as u8), Some(b));
    }
    assert_eq!(Stage::from_u8(0), None);
}

#[test]
fn plan_rejects_nul() {
    let c = Credentials::default();
    let bad = OsStr::new("a\0b");
    let none: &[&OsStr] = &[];
    assert!(Plan::new(bad, OsStr::new("x"), none, Capture::None, &c, vec![]).is_err());
    assert!(Plan::new(
        OsStr::new("x"),
        OsStr::new("x"),
        &[bad],
        Capture::None,
        &c,
        vec![]
    )
    .is_err());
    let p = Plan::new(
        OsStr::new("x"),
        OsStr::new("y"),
        &["1", "2"],
        Capture::None,
        &c,
        vec![],
    )
    .unwrap();
    assert_eq!(p.argv_ptrs.len(), 4);
    assert!(p.argv_ptrs[3].is_null());
}
