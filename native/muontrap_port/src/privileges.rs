//! Resolves `--uid`, `--gid` and `--groups` to numeric credentials before
//! forking (the child must not touch NSS). The rules are pure over a
//! [`Directory`] so they are unit tested with a fake user database.

use std::ffi::CString;
use std::fmt;

use nix::unistd::{Group, Uid, User};

use muontrap_command::IdSpec;

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
    let user = uid.map(|spec| resolve_user(dir, spec)).transpose()?;
    let gid = resolve_primary_gid(dir, gid, user.as_ref(), current_gid)?;
    let (groups, required) =
        resolve_supplementary_groups(dir, supplementary_groups, user.as_ref(), gid)?;
    Ok(Credentials {
        uid: user.map(|u| u.uid),
        gid,
        supplementary_groups: groups,
        supplementary_groups_required: required,
    })
}

/// The user `--uid` names.
struct TargetUser {
    uid: u32,
    /// Its passwd entry; a numeric uid may have none.
    entry: Option<UserEntry>,
    /// Given by name: only then does it get its supplementary groups, as
    /// initgroups() would.
    by_name: bool,
}

fn resolve_user(dir: &dyn Directory, spec: &IdSpec) -> Result<TargetUser, PrivError> {
    let user = match spec {
        IdSpec::Id(n) => TargetUser {
            uid: *n,
            entry: dir.user_by_uid(*n).map_err(PrivError::Lookup)?,
            by_name: false,
        },
        IdSpec::Name(name) => {
            let entry = dir
                .user_by_name(name)
                .map_err(PrivError::Lookup)?
                .ok_or_else(|| PrivError::UnknownUser(name.clone()))?;
            TargetUser {
                uid: entry.uid,
                entry: Some(entry),
                by_name: true,
            }
        }
    };
    if user.uid == 0 {
        return Err(PrivError::RootUser(spec.to_string()));
    }
    Ok(user)
}

/// The gid to switch to: `--gid`, else the user's primary group; `None`
/// keeps the port's own.
fn resolve_primary_gid(
    dir: &dyn Directory,
    gid: Option<&IdSpec>,
    user: Option<&TargetUser>,
    current_gid: u32,
) -> Result<Option<u32>, PrivError> {
    if let Some(spec) = gid {
        return resolve_gid(dir, spec).map(Some);
    }
    match user {
        None => Ok(None),
        Some(TargetUser {
            entry: Some(entry), ..
        }) if entry.gid == 0 => Err(PrivError::PrimaryGroupRoot(entry.name.clone())),
        Some(TargetUser {
            entry: Some(entry), ..
        }) => Ok(Some(entry.gid)),
        Some(TargetUser { uid, .. }) if current_gid == 0 => Err(PrivError::KeepsRootGroup(*uid)),
        Some(_) => Ok(None),
    }
}

/// The supplementary gids to set, and whether failing to set them is an
/// error.
fn resolve_supplementary_groups(
    dir: &dyn Directory,
    list: Option<&[IdSpec]>,
    user: Option<&TargetUser>,
    gid: Option<u32>,
) -> Result<(Option<Vec<u32>>, bool), PrivError> {
    if let Some(list) = list {
        let gids = list
            .iter()
            .map(|g| resolve_gid(dir, g))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((Some(gids), true));
    }
    match (user, gid) {
        // initgroups() semantics, but computed here: NSS must not run in
        // the forked child.
        (
            Some(TargetUser {
                entry: Some(entry),
                by_name: true,
                ..
            }),
            Some(g),
        ) => {
            let gids = dir
                .supplementary_gids(&entry.name, g)
                .map_err(PrivError::Lookup)?;
            Ok((Some(gids), true))
        }
        // Changing identity must not keep the port's supplementary groups.
        (Some(_), _) | (None, Some(_)) => Ok((Some(Vec::new()), false)),
        (None, None) => Ok((None, false)),
    }
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
        #[cfg(not(target_vendor = "apple"))]
        return nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(gid))
            .map(|v| v.into_iter().map(nix::unistd::Gid::as_raw).collect())
            .map_err(|e| format!("getgrouplist({user}): {e}"));
        #[cfg(target_vendor = "apple")]
        return apple_grouplist(&name, gid).ok_or_else(|| format!("getgrouplist({user}) failed"));
    }
}

/// macOS's getgrouplist(3) takes and fills `int`s (nix has no wrapper
/// there); a list longer than the buffer is cut, as the kernel refuses
/// more than NGROUPS_MAX (16) anyway.
#[cfg(target_vendor = "apple")]
fn apple_grouplist(name: &std::ffi::CStr, gid: u32) -> Option<Vec<u32>> {
    let mut groups = vec![0 as libc::c_int; 1024];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: the name is NUL-terminated; `groups` has room for `n` ints.
    let r = unsafe {
        libc::getgrouplist(
            name.as_ptr(),
            gid as libc::c_int,
            groups.as_mut_ptr(),
            &mut n,
        )
    };
    if r < 0 && n <= 0 {
        return None;
    }
    groups.truncate(usize::try_from(n).ok()?);
    Some(groups.into_iter().map(|g| g as u32).collect())
}

#[cfg(test)]
mod tests;
