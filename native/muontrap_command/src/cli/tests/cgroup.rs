//! `-g`, `-c`, `-s`, `--no-controllers`, `--beneath-own-cgroup`.

use super::*;

#[test]
fn no_controllers_gives_a_containment_only_group() {
    let Ok(Parsed::Run(c)) = parse(&argv(&["-g", "a/b", "--no-controllers", "p"])) else {
        panic!("expected a run")
    };
    let cg = c.cgroup().expect("a cgroup");
    assert_eq!(cg.path, "a/b");
    assert!(cg.controllers.is_empty());
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
        c.cgroup().map(|g| g.settings.to_vec()),
        Some(vec![("f".into(), "a=b".into())])
    );
}

#[test]
fn option_combinations() {
    use ArgError::*;
    let cases: Vec<(Vec<&str>, ArgError)> = vec![
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
    ];
    for (a, want) in cases {
        assert_eq!(err(&a), want, "{a:?}");
        assert!(!want.to_string().is_empty());
    }
}
