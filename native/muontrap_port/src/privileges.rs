//! Resolves `--uid`, `--gid` and `--groups` to numeric credentials before
//! forking (the child must not touch NSS). The rules are pure over a
//! [`Directory`] so they are unit tested with a fake user database.

use std::ffi::CString;
use std::fmt;

use nix::unistd::{Gid, Group, Uid, User};

use crate::args::IdSpec;

/// What the child applies, in order: setgid, setgroups, setuid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub supplementary_groups: Option<Vec<u32>>,
    /// False when `supplementary_groups` is only the precautionary "drop the inherited
    /// supplementary groups": failing that as non-root (EPERM) is harmless.
    pub supplementary_groups_required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The user/group database (NSS in production).
pub trait Directory {
    fn user_by_name(&self, name: &str) -> Result<Option<UserEntry>, String>;
    fn user_by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String>;
    fn group_by_name(&self, name: &str) -> Result<Option<u32>, String>;
    /// Supplementary groups of `user`, including `gid` (getgrouplist).
    fn supplementary_gids(&self, user: &str, gid: u32) -> Result<Vec<u32>, String>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivError {
    RootUser(String),
    RootGroup(String),
    UnknownUser(String),
    UnknownGroup(String),
    PrimaryGroupRoot(String),
    KeepsRootGroup(u32),
    Lookup(String),
}

impl fmt::Display for PrivError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivError::RootUser(u) => {
                write!(
                    f,
                    "refusing to run the program as --uid {u}: that is uid 0 (root)"
                )
            }
            PrivError::RootGroup(g) => {
                write!(
                    f,
                    "refusing to run the program with group {g}: that is gid 0 (root)"
                )
            }
            PrivError::UnknownUser(u) => write!(f, "unknown user '{u}'"),
            PrivError::UnknownGroup(g) => write!(f, "unknown group '{g}'"),
            PrivError::PrimaryGroupRoot(u) => write!(
                f,
                "user '{u}' has primary group 0 (root); pass --gid to choose another group"
            ),
            PrivError::KeepsRootGroup(uid) => write!(
                f,
                "uid {uid} has no passwd entry and the current group is root; pass --gid"
            ),
            PrivError::Lookup(e) => write!(f, "user/group lookup failed: {e}"),
        }
    }
}

fn resolve_gid(dir: &dyn Directory, spec: &IdSpec) -> Result<u32, PrivError> {
    let gid = match spec {
        IdSpec::Id(n) => *n,
        IdSpec::Name(name) => dir
            .group_by_name(name)
            .map_err(PrivError::Lookup)?
            .ok_or_else(|| PrivError::UnknownGroup(name.clone()))?,
    };
    if gid == 0 {
        return Err(PrivError::RootGroup(spec.to_string()));
    }
    Ok(gid)
}

/// `current_gid` is the port's own effective gid: inheriting gid 0 would
/// quietly keep root's group, so that case needs an explicit `--gid`.
pub fn resolve(
    dir: &dyn Directory,
    uid: Option<&IdSpec>,
    gid: Option<&IdSpec>,
    supplementary_groups: Option<&[IdSpec]>,
    current_gid: u32,
) -> Result<Credentials, PrivError> {
    let user: Option<(u32, Option<UserEntry>, bool)> = match uid {
        None => None,
        Some(IdSpec::Id(n)) => {
            let entry = dir.user_by_uid(*n).map_err(PrivError::Lookup)?;
            Some((*n, entry, false))
        }
        Some(IdSpec::Name(name)) => {
            let entry = dir
                .user_by_name(name)
                .map_err(PrivError::Lookup)?
                .ok_or_else(|| PrivError::UnknownUser(name.clone()))?;
            Some((entry.uid, Some(entry), true))
        }
    };
    if let (Some((0, _, _)), Some(spec)) = (&user, uid) {
        return Err(PrivError::RootUser(spec.to_string()));
    }

    let explicit_gid = gid.map(|g| resolve_gid(dir, g)).transpose()?;
    let gid = match (explicit_gid, &user) {
        (Some(g), _) => Some(g),
        (None, Some((_, Some(entry), _))) => {
            if entry.gid == 0 {
                return Err(PrivError::PrimaryGroupRoot(entry.name.clone()));
            }
            Some(entry.gid)
        }
        (None, Some((uid, None, _))) => {
            if current_gid == 0 {
                return Err(PrivError::KeepsRootGroup(*uid));
            }
            None
        }
        (None, None) => None,
    };

    let (groups, supplementary_groups_required) = match (supplementary_groups, &user, gid) {
        (Some(list), _, _) => (
            Some(
                list.iter()
                    .map(|g| resolve_gid(dir, g))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            true,
        ),
        // initgroups() semantics, but computed here: NSS must not run in
        // the forked child.
        (None, Some((_, Some(entry), true)), Some(g)) => (
            Some(
                dir.supplementary_gids(&entry.name, g)
                    .map_err(PrivError::Lookup)?,
            ),
            true,
        ),
        // Changing identity must not keep the port's supplementary groups.
        (None, Some(_), _) | (None, None, Some(_)) => (Some(Vec::new()), false),
        (None, None, None) => (None, false),
    };

    Ok(Credentials {
        uid: user.map(|(u, _, _)| u),
        gid,
        supplementary_groups: groups,
        supplementary_groups_required,
    })
}

/// The system user database via libc's NSS functions.
pub struct SystemDirectory;

fn entry(u: User) -> UserEntry {
    UserEntry {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

impl Directory for SystemDirectory {
    fn user_by_name(&self, name: &str) -> Result<Option<UserEntry>, String> {
        User::from_name(name)
            .map(|u| u.map(entry))
            .map_err(|e| e.to_string())
    }

    fn user_by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String> {
        User::from_uid(Uid::from_raw(uid))
            .map(|u| u.map(entry))
            .map_err(|e| e.to_string())
    }

    fn group_by_name(&self, name: &str) -> Result<Option<u32>, String> {
        Group::from_name(name)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(|e| e.to_string())
    }

    fn supplementary_gids(&self, user: &str, gid: u32) -> Result<Vec<u32>, String> {
        let name = CString::new(user).map_err(|e| e.to_string())?;
        nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
            .map(|v| v.into_iter().map(Gid::as_raw).collect())
            .map_err(|e| format!("getgrouplist({user}): {e}"))
    }
}

#[cfg(test)]
mod tests {
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
}
