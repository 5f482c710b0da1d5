//! Property tests of the cgroup path checks (docs/reliability.md,
//! "Fuzzing"), which guard cgget/cgset and `-g`/`-s`: every path and file
//! name they accept stays inside the group, and every plain name passes.

use std::path::{Component, Path, PathBuf};

use muontrap_cgroup::layout::Hierarchy;
use muontrap_cgroup::path::{validate_cgroup_path, validate_file_name};
use proptest::collection::vec;
use proptest::prelude::*;

mod common;
use common::config;

/// Characters worth checking: the separators and dots an escape needs,
/// NUL, and a few others.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::sample::select(&['/', '.', '\0', 'a', '-', ' ', '\\'][..]),
        1 => any::<char>(),
    ];
    vec(c, 0..16).prop_map(|c| c.into_iter().collect())
}

/// A name that needs no check to be harmless: no `/`, no NUL, not `.` or `..`.
fn plain_name() -> impl Strategy<Value = String> {
    "[^/\0]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

/// `path` lexically resolved under `base`, as the kernel would walk it
/// (cgroupfs has no symlinks).
fn resolve(base: &Path, path: impl AsRef<Path>) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in path.as_ref().components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir => out = PathBuf::from("/"),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn hierarchy(own: Option<String>) -> Hierarchy {
    Hierarchy {
        version: 2,
        mount_point: PathBuf::from("/sys/fs/cgroup"),
        controllers: Vec::new(),
        own,
    }
}

proptest! {
    #![proptest_config(config())]

    /// An accepted path has only plain components, and resolves strictly
    /// below the directory it is joined to.
    #[test]
    fn accepted_paths_stay_below(p in text()) {
        if validate_cgroup_path(&p).is_ok() {
            prop_assert!(!p.is_empty() && !p.contains('\0') && !p.starts_with('/'));
            prop_assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
            let base = Path::new("/sys/fs/cgroup/muontrap");
            let dir = resolve(base, &p);
            prop_assert!(dir.starts_with(base) && dir != base, "{:?} -> {:?}", p, dir);
            prop_assert_eq!(dir, base.join(&p));
        }
    }

    /// An accepted file name is one plain component: the file is in the
    /// group's own directory, whatever the name.
    #[test]
    fn accepted_file_names_stay_in_the_group(f in text()) {
        if validate_file_name(&f).is_ok() {
            let dir = Path::new("/sys/fs/cgroup/muontrap/a1");
            let file = resolve(dir, &f);
            prop_assert_eq!(file.parent(), Some(dir), "{:?}", f);
            prop_assert_eq!(Path::new(&f).components().count(), 1);
        }
    }

    /// Nothing harmless is refused: plain names joined by `/` pass.
    #[test]
    fn plain_paths_are_accepted(names in vec(plain_name(), 1..5)) {
        prop_assert_eq!(validate_file_name(&names[0]), Ok(()));
        prop_assert_eq!(validate_cgroup_path(&names.join("/")), Ok(()));
    }

    /// cgget/cgset's directory: an accepted path under the mount point,
    /// or under the process's own group there, never above either.
    #[test]
    fn group_directories_stay_in_the_hierarchy(
        p in vec(plain_name(), 1..4).prop_map(|n| n.join("/")),
        own in prop::option::of(vec(plain_name(), 0..3).prop_map(|n| n.join("/"))),
        beneath in any::<bool>(),
    ) {
        let h = hierarchy(own.clone());
        match (h.dir(&p, beneath), &own) {
            (Some(dir), _) => {
                let base = match (&own, beneath) {
                    (Some(o), true) => h.mount_point.join(o),
                    _ => h.mount_point.clone(),
                };
                prop_assert!(dir.starts_with(&base) && dir != base);
                prop_assert_eq!(resolve(Path::new("/"), &dir), dir);
            }
            (None, None) => prop_assert!(beneath),
            (None, Some(_)) => prop_assert!(false, "no directory for a known own group"),
        }
    }
}

/// Seeds of interest, kept as explicit vectors.
#[test]
fn escapes_are_refused() {
    for p in [
        "..", "a/..", "../a", "a/../..", "/a", "a//b", "a/", "a\0", "./a", "a/.",
    ] {
        assert!(validate_cgroup_path(p).is_err(), "{p:?}");
    }
    for f in ["..", ".", "a/b", "../x", "/x", "", "x\0"] {
        assert!(validate_file_name(f).is_err(), "{f:?}");
    }
}
