use super::super::tests::{err, run};
use super::super::ArgError;
use super::*;

#[test]
fn defaults() {
    let c = run(&["p"]);
    assert_eq!(c.stop_signal.0, libc::SIGTERM);
    assert_eq!((c.umask, c.nice, c.rlimits.0.len()), (None, None, 0));
}

#[test]
fn stop_signal_numbers_and_names() {
    let cases: &[(&str, libc::c_int)] = &[
        ("2", libc::SIGINT),
        ("02", libc::SIGINT),
        ("INT", libc::SIGINT),
        ("int", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("sigusr1", libc::SIGUSR1),
        ("SigHup", libc::SIGHUP),
        ("TERM", libc::SIGTERM),
        ("winch", libc::SIGWINCH),
        ("PWR", libc::SIGPWR),
        ("iot", libc::SIGABRT),
        ("1", 1),
        ("64", sigrtmax()),
        ("RTMIN", libc::SIGRTMIN()),
        ("SIGRTMIN+2", libc::SIGRTMIN() + 2),
        ("rtmax-1", sigrtmax() - 1),
        ("RTMAX", sigrtmax()),
    ];
    for &(v, want) in cases {
        assert_eq!(run(&["--stop-signal", v, "p"]).stop_signal.0, want, "{v}");
    }
    assert_eq!(
        run(&["--stop-signal=USR2", "--capture-output", "p"])
            .stop_signal
            .0,
        libc::SIGUSR2
    );
}

#[test]
fn stop_signal_errors() {
    let cases: &[(&str, &str)] = &[
        ("KILL", "--stop-signal cannot be SIGKILL"),
        ("sigkill", "--stop-signal cannot be SIGKILL"),
        ("9", "--stop-signal cannot be SIGKILL"),
        ("STOP", "--stop-signal cannot be SIGSTOP"),
        ("19", "--stop-signal cannot be SIGSTOP"),
        ("X", "unknown signal 'X'"),
        ("SIG", "unknown signal 'SIG'"),
        ("", "unknown signal ''"),
        ("-2", "unknown signal '-2'"),
        ("+2", "unknown signal '+2'"),
        ("TERM ", "unknown signal 'TERM '"),
        ("RTMIN+99", "unknown signal 'RTMIN+99'"),
        ("RTMAX+1", "unknown signal 'RTMAX+1'"),
        ("RTMIN-1", "unknown signal 'RTMIN-1'"),
        (
            "0",
            "--stop-signal needs a signal name or a number from 1 to 64, got '0'",
        ),
        (
            "65",
            "--stop-signal needs a signal name or a number from 1 to 64, got '65'",
        ),
        (
            "99999999999",
            "--stop-signal needs a signal name or a number from 1 to 64, got '99999999999'",
        ),
    ];
    for &(v, want) in cases {
        assert_eq!(err(&["--stop-signal", v, "p"]).to_string(), want, "{v}");
    }
    assert_eq!(
        err(&["--stop-signal", "INT", "--stop-signal", "INT", "p"]),
        ArgError::Duplicate("--stop-signal")
    );
}

#[test]
fn umask() {
    for (v, want) in [
        ("077", 0o077),
        ("0077", 0o077),
        ("0", 0),
        ("777", 0o777),
        ("0777", 0o777),
        ("22", 0o22),
    ] {
        assert_eq!(run(&["--umask", v, "p"]).umask, Some(want), "{v}");
    }
    for v in [
        "", "8", "078", "1000", "1777", "00777", "0o77", "-1", "+7", " 77",
    ] {
        assert_eq!(
            err(&["--umask", v, "p"]),
            ArgError::BadUmask(v.into()),
            "{v}"
        );
    }
    assert_eq!(
        err(&["--umask", "9", "p"]).to_string(),
        "--umask needs an octal mode (1 to 4 digits 0-7, at most 777), got '9'"
    );
    assert_eq!(
        err(&["--umask", "1", "--umask=2", "p"]),
        ArgError::Duplicate("--umask")
    );
}

#[test]
fn nice() {
    for (v, want) in [
        ("5", 5),
        ("0", 0),
        ("-0", 0),
        ("19", 19),
        ("-20", -20),
        ("-05", -5),
        ("0019", 19),
    ] {
        assert_eq!(run(&["--nice", v, "p"]).nice, Some(want), "{v}");
    }
    // A negative value is still the value, as with `--nice=-5`.
    assert_eq!(run(&["--nice=-5", "p"]).nice, Some(-5));
    for v in [
        "",
        "-",
        "20",
        "-21",
        "+5",
        "5x",
        "1e1",
        "99999999999",
        "--5",
    ] {
        assert_eq!(err(&["--nice", v, "p"]), ArgError::BadNice(v.into()), "{v}");
    }
    assert_eq!(
        err(&["--nice", "20", "p"]).to_string(),
        "--nice needs an integer from -20 to 19, got '20'"
    );
}

#[test]
fn rlimit_forms() {
    let c = run(&[
        "--rlimit",
        "nofile=1024",
        "--rlimit",
        "core=0:infinity",
        "--rlimit=stack=8388608",
        "--rlimit",
        "cpu=infinity",
        "--rlimit",
        "as=infinity:infinity",
        "--rlimit",
        "rttime=10:20",
        "--rlimit",
        "fsize=18446744073709551615",
        "p",
    ]);
    let r = |resource, soft, hard| Rlimit {
        resource,
        soft,
        hard,
    };
    assert_eq!(
        c.rlimits.0,
        vec![
            r(Resource::Nofile, 1024, 1024),
            r(Resource::Core, 0, INFINITY),
            r(Resource::Stack, 8_388_608, 8_388_608),
            r(Resource::Cpu, INFINITY, INFINITY),
            r(Resource::As, INFINITY, INFINITY),
            r(Resource::Rttime, 10, 20),
            r(Resource::Fsize, INFINITY, INFINITY),
        ]
    );
    assert_eq!(c.rlimits.0[1].to_string(), "core to 0:infinity");
    assert_eq!(c.rlimits.0[0].to_string(), "nofile to 1024:1024");
}

#[test]
fn every_resource_by_name() {
    for (name, resource) in RESOURCES {
        let c = run(&["--rlimit", &format!("{name}=1:2"), "p"]);
        assert_eq!(c.rlimits.0[0].resource, resource);
        assert_eq!(resource.name(), name);
        assert!(resource.raw().is_some_and(|r| r >= 0));
    }
    assert_eq!(
        Resource::Nofile.raw(),
        Some(libc::RLIMIT_NOFILE as libc::c_int)
    );
    assert_eq!(
        Resource::Rttime.raw(),
        Some(libc::RLIMIT_RTTIME as libc::c_int)
    );
}

#[test]
fn rlimit_errors() {
    let value = "expected N, infinity or SOFT:HARD (each N or infinity), N a non-negative integer";
    let names = "as core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio \
                 rttime sigpending stack";
    let cases: Vec<(&str, String)> = vec![
        ("nofile", "expected NAME=VALUE, e.g. nofile=1024".into()),
        (
            "files=10",
            format!("unknown resource 'files', expected one of {names}"),
        ),
        (
            "NOFILE=10",
            format!("unknown resource 'NOFILE', expected one of {names}"),
        ),
        (
            "RLIMIT_NOFILE=10",
            format!("unknown resource 'RLIMIT_NOFILE', expected one of {names}"),
        ),
        ("nofile=", value.into()),
        ("nofile=-1", value.into()),
        ("nofile=1k", value.into()),
        ("nofile=unlimited", value.into()),
        ("nofile=1:", value.into()),
        (":1", "expected NAME=VALUE, e.g. nofile=1024".into()),
        (
            "=1",
            format!("unknown resource '', expected one of {names}"),
        ),
        ("nofile=1:2:3", value.into()),
        ("nofile=18446744073709551616", value.into()),
        (
            "nofile=10:5",
            "the soft limit is above the hard limit (10:5)".into(),
        ),
        (
            "core=infinity:0",
            "the soft limit is above the hard limit (infinity:0)".into(),
        ),
    ];
    for (v, reason) in cases {
        let e = err(&["--rlimit", v, "p"]);
        assert_eq!(
            e,
            ArgError::BadRlimit {
                arg: v.into(),
                reason: reason.clone()
            },
            "{v}"
        );
        assert_eq!(e.to_string(), format!("invalid --rlimit '{v}': {reason}"));
    }
    let e = err(&[
        "--rlimit", "nofile=1", "--rlimit", "core=0", "--rlimit", "nofile=2", "p",
    ]);
    assert_eq!(e, ArgError::DuplicateRlimit("nofile"));
    assert_eq!(e.to_string(), "--rlimit nofile given more than once");
    assert_eq!(err(&["--rlimit"]), ArgError::MissingValue("--rlimit"));
}

#[test]
fn attribute_values_may_look_like_options() {
    // `--nice -5`: the value, not an unknown option; the next flag is still seen.
    let a = ["--nice", "-5", "--capture-output", "p"];
    let c = run(&a);
    assert_eq!((c.nice, c.capture), (Some(-5), crate::Capture::Stdout));
}
