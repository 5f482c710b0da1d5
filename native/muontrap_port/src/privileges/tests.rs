use super::*;

struct Fake;

const USERS: &[(&str, u32, u32)] = &[
    ("root", 0, 0),
    ("alice", 1000, 1000),
    ("daemonish", 5, 0),
    ("nobody", 65534, 65534),
];
const GROUPS: &[(&str, u32)] = &[("root", 0), ("alice", 1000), ("wheel", 10), ("audio", 29)];

fn user(t: &(&str, u32, u32)) -> UserEntry {
    UserEntry {
        name: t.0.to_string(),
        uid: t.1,
        gid: t.2,
    }
}

impl Directory for Fake {
    fn user_by_name(&self, name: &str) -> Result<Option<UserEntry>, String> {
        Ok(USERS.iter().find(|u| u.0 == name).map(user))
    }
    fn user_by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String> {
        Ok(USERS.iter().find(|u| u.1 == uid).map(user))
    }
    fn group_by_name(&self, name: &str) -> Result<Option<u32>, String> {
        if name == "broken" {
            return Err("nss down".into());
        }
        Ok(GROUPS.iter().find(|g| g.0 == name).map(|g| g.1))
    }
    fn supplementary_gids(&self, user: &str, gid: u32) -> Result<Vec<u32>, String> {
        Ok(match user {
            "alice" => vec![gid, 10, 29],
            _ => vec![gid],
        })
    }
}

fn name(s: &str) -> IdSpec {
    IdSpec::Name(s.into())
}

fn ok(
    uid: Option<IdSpec>,
    gid: Option<IdSpec>,
    supplementary_groups: Option<Vec<IdSpec>>,
    current_gid: u32,
) -> Credentials {
    resolve(
        &Fake,
        uid.as_ref(),
        gid.as_ref(),
        supplementary_groups.as_deref(),
        current_gid,
    )
    .unwrap()
}

fn err(
    uid: Option<IdSpec>,
    gid: Option<IdSpec>,
    supplementary_groups: Option<Vec<IdSpec>>,
) -> PrivError {
    resolve(
        &Fake,
        uid.as_ref(),
        gid.as_ref(),
        supplementary_groups.as_deref(),
        0,
    )
    .unwrap_err()
}

#[test]
fn nothing_requested() {
    assert_eq!(ok(None, None, None, 0), Credentials::default());
}

#[test]
fn user_name_gets_primary_and_supplementary_groups() {
    let c = ok(Some(name("alice")), None, None, 0);
    assert_eq!(c.uid, Some(1000));
    assert_eq!(c.gid, Some(1000));
    assert_eq!(c.supplementary_groups, Some(vec![1000, 10, 29]));
    assert!(c.supplementary_groups_required);
    // The supplementary list is computed for the chosen gid.
    let c = ok(Some(name("alice")), Some(name("wheel")), None, 0);
    assert_eq!(c.gid, Some(10));
    assert_eq!(c.supplementary_groups, Some(vec![10, 10, 29]));
}

#[test]
fn numeric_uid() {
    // Known uid: its primary group, supplementary groups dropped.
    let c = ok(Some(IdSpec::Id(1000)), None, None, 0);
    assert_eq!(
        (c.uid, c.gid, c.supplementary_groups),
        (Some(1000), Some(1000), Some(vec![]))
    );
    assert!(!c.supplementary_groups_required);
    // Unknown uid: group unchanged unless that would be root's.
    let c = ok(Some(IdSpec::Id(4242)), None, None, 100);
    assert_eq!((c.uid, c.gid), (Some(4242), None));
    assert_eq!(
        err(Some(IdSpec::Id(4242)), None, None),
        PrivError::KeepsRootGroup(4242)
    );
    let c = ok(Some(IdSpec::Id(4242)), Some(IdSpec::Id(77)), None, 0);
    assert_eq!(c.gid, Some(77));
}

#[test]
fn explicit_groups() {
    let c = ok(
        Some(name("alice")),
        None,
        Some(vec![name("audio"), IdSpec::Id(500)]),
        0,
    );
    assert_eq!(c.supplementary_groups, Some(vec![29, 500]));
    assert!(c.supplementary_groups_required);
    let c = ok(None, None, Some(vec![]), 0);
    assert_eq!(c.supplementary_groups, Some(vec![]));
    assert!(c.supplementary_groups_required);
}

#[test]
fn gid_only() {
    let c = ok(None, Some(name("wheel")), None, 0);
    assert_eq!(
        (c.uid, c.gid, c.supplementary_groups),
        (None, Some(10), Some(vec![]))
    );
}

#[test]
fn refuses_root_and_unknowns() {
    assert_eq!(
        err(Some(IdSpec::Id(0)), None, None),
        PrivError::RootUser("0".into())
    );
    assert_eq!(
        err(Some(name("root")), None, None),
        PrivError::RootUser("'root'".into())
    );
    assert_eq!(
        err(Some(name("alice")), Some(IdSpec::Id(0)), None),
        PrivError::RootGroup("0".into())
    );
    assert_eq!(
        err(None, Some(name("root")), None),
        PrivError::RootGroup("'root'".into())
    );
    assert_eq!(
        err(None, None, Some(vec![IdSpec::Id(5), IdSpec::Id(0)])),
        PrivError::RootGroup("0".into())
    );
    assert_eq!(
        err(Some(name("bob")), None, None),
        PrivError::UnknownUser("bob".into())
    );
    assert_eq!(
        err(None, Some(name("nope")), None),
        PrivError::UnknownGroup("nope".into())
    );
    assert_eq!(
        err(None, None, Some(vec![name("nope")])),
        PrivError::UnknownGroup("nope".into())
    );
    assert_eq!(
        err(Some(name("daemonish")), None, None),
        PrivError::PrimaryGroupRoot("daemonish".into())
    );
    assert!(matches!(
        err(None, Some(name("broken")), None),
        PrivError::Lookup(_)
    ));
    for e in [
        PrivError::RootUser("0".into()),
        PrivError::UnknownUser("x".into()),
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn system_directory_smoke() {
    // root exists on any Linux system this runs on.
    let d = SystemDirectory;
    let root = d.user_by_name("root").unwrap().unwrap();
    assert_eq!((root.uid, root.gid), (0, 0));
    assert_eq!(d.user_by_name("no_such_user_muontrap").unwrap(), None);
    assert_eq!(d.group_by_name("no_such_group_muontrap").unwrap(), None);
    assert!(d.supplementary_gids("root", 0).unwrap().contains(&0));
}
