use super::*;
use std::os::unix::fs::PermissionsExt;

/// A fake hierarchy in a temp dir (plain files, so mkdir/rmdir work but
/// nothing magic happens).
fn fake_root(name: &str, root_controllers: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "muontrap_port_test_{}_{}",
        name,
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("cgroup.controllers"), root_controllers).unwrap();
    fs::write(root.join("cgroup.subtree_control"), "").unwrap();
    root
}

/// Leaked: a test's configuration lives as long as the test.
fn cfg(path: &str, controllers: &[&str]) -> CgroupConfig<'static> {
    let controllers: Vec<String> = controllers.iter().map(|c| c.to_string()).collect();
    CgroupConfig {
        path: Box::leak(path.to_string().into_boxed_str()),
        controllers: Box::leak(controllers.into_boxed_slice()),
        settings: &[],
        beneath_own_cgroup: false,
    }
}

fn hierarchy(version: u8, root: &Path, controllers: &[&str]) -> Hierarchy {
    Hierarchy {
        version,
        mount_point: root.to_path_buf(),
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
        own: Some("own".into()),
    }
}

fn v2_layout(root: &Path) -> Layout {
    Layout {
        v2: Some(hierarchy(2, root, &[])),
        v1: vec![],
    }
}

#[test]
fn hybrid_creates_a_leaf_per_hierarchy_and_removes_them() {
    let v2 = fake_root("hy_v2", "");
    let mem = fake_root("hy_mem", "");
    fs::create_dir(v2.join("own")).unwrap();
    fs::create_dir(mem.join("own")).unwrap();
    let layout = Layout {
        v2: Some(hierarchy(2, &v2, &[])),
        v1: vec![hierarchy(1, &mem, &["memory"])],
    };
    let mut c = cfg("mt/x", &["memory"]);
    c.beneath_own_cgroup = true;
    let group = Cgroup::create(&layout, &c).unwrap();
    assert!(v2.join("own/mt/x").is_dir());
    assert!(mem.join("own/mt/x").is_dir());
    assert_eq!(group.members.len(), 2);
    assert_eq!(group.members[0].leaf, v2.join("own/mt/x"));
    drop(group);
    assert!(!v2.join("own/mt/x").exists());
    assert!(!mem.join("own/mt/x").exists());
    // The parent it created goes in every hierarchy; its own group stays.
    assert!(!v2.join("own/mt").exists());
    assert!(!mem.join("own/mt").exists());
    assert!(mem.join("own").is_dir());
    fs::remove_dir_all(&v2).unwrap();
    fs::remove_dir_all(&mem).unwrap();
}

#[test]
fn pure_v1_without_the_controller() {
    let frz = fake_root("v1_frz", "");
    let layout = Layout {
        v2: None,
        v1: vec![hierarchy(1, &frz, &["freezer"])],
    };
    let err = Cgroup::create(&layout, &cfg("x", &["memory"]))
        .err()
        .unwrap();
    assert!(
        err.contains("controller 'memory' is not available"),
        "{err}"
    );
    assert!(!frz.join("x").exists());
    let err = Cgroup::create(&Layout::default(), &cfg("x", &[]))
        .err()
        .unwrap();
    assert!(err.starts_with("no cgroup filesystem is mounted"), "{err}");
    fs::remove_dir_all(&frz).unwrap();
}

#[test]
fn missing_from_kernel() {
    let root = fake_root("kernel", "cpu io");
    let err = Cgroup::create(&v2_layout(&root), &cfg("a/b", &["memory"]))
        .err()
        .unwrap();
    assert!(
        err.contains("controller 'memory' is not provided by the kernel"),
        "{err}"
    );
    // Leaf removed, and the parent it created for it.
    assert!(!root.join("a/b").exists());
    assert!(!root.join("a").exists());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn missing_delegation_names_the_level() {
    let root = fake_root("deleg", "cpu memory");
    let err = Cgroup::create(&v2_layout(&root), &cfg("x", &["memory"]))
        .err()
        .unwrap();
    // A plain file keeps "+memory" verbatim, so the fake root still does
    // not list "memory" as delegated and the hint names it.
    assert!(
        err.contains(&format!(
            "controller 'memory' is not available in {}/x/cgroup.controllers",
            root.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "echo +memory > {}/cgroup.subtree_control",
            root.display()
        )),
        "{err}"
    );
    assert!(!root.join("x").exists());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn existing_leaf_is_refused_and_kept() {
    let root = fake_root("exists", "memory");
    fs::create_dir(root.join("taken")).unwrap();
    let err = Cgroup::create(&v2_layout(&root), &cfg("taken", &["memory"]))
        .err()
        .unwrap();
    assert_eq!(
        err,
        format!("cgroup {}/taken already exists", root.display())
    );
    assert!(root.join("taken").is_dir());
    fs::remove_dir_all(&root).unwrap();
}

fn sticky(dir: &Path) -> bool {
    fs::metadata(dir).unwrap().permissions().mode() & 0o1000 != 0
}

#[test]
fn created_parents_are_marked_and_removed_deepest_first() {
    let root = fake_root("parents", "");
    let group = Cgroup::create(&v2_layout(&root), &cfg("a/b/leaf", &[])).unwrap();
    assert_eq!(
        group.members[0].created,
        vec![root.join("a"), root.join("a/b")]
    );
    assert!(sticky(&root.join("a")) && sticky(&root.join("a/b")));
    assert!(!sticky(&root.join("a/b/leaf")), "leaves are not marked");
    drop(group);
    assert!(!root.join("a").exists());
    assert!(root.is_dir());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn pre_existing_parents_are_kept() {
    let root = fake_root("preexisting", "");
    fs::create_dir(root.join("a")).unwrap();
    let group = Cgroup::create(&v2_layout(&root), &cfg("a/b/leaf", &[])).unwrap();
    assert_eq!(group.members[0].created, vec![root.join("a/b")]);
    drop(group);
    assert!(!root.join("a/b").exists());
    assert!(root.join("a").is_dir(), "made by someone else");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_parent_with_another_child_is_kept() {
    let root = fake_root("sibling", "");
    let layout = v2_layout(&root);
    let first = Cgroup::create(&layout, &cfg("a/x", &[])).unwrap();
    // Not muontrap's: keeps `a` in use after both groups are gone.
    fs::create_dir(root.join("a/theirs")).unwrap();
    let second = Cgroup::create(&layout, &cfg("a/y", &[])).unwrap();
    assert!(second.members[0].created.is_empty(), "found `a` there");
    drop(first);
    drop(second);
    assert!(!root.join("a/x").exists() && !root.join("a/y").exists());
    assert!(root.join("a/theirs").is_dir());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_last_group_out_removes_a_shared_parent() {
    let root = fake_root("shared", "");
    let layout = v2_layout(&root);
    let first = Cgroup::create(&layout, &cfg("base/x", &[])).unwrap();
    let second = Cgroup::create(&layout, &cfg("base/y", &[])).unwrap();
    // The creator leaves first: `base` still holds y.
    drop(first);
    assert!(root.join("base/y").is_dir());
    // y's port did not create `base` but finds muontrap's mark on it.
    drop(second);
    assert!(!root.join("base").exists());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn mkdir_retries_the_chain_when_a_parent_vanishes() {
    let root = fake_root("race", "");
    let (levels, leaf) = parents::levels(&root, "a/b/leaf");
    let mut created = Vec::new();
    let mut raced = 0;
    // Another port removes the (empty, marked) parents just before our
    // leaf's mkdir, twice.
    let mut racing = |dir: &Path, mode: u32| {
        if dir == leaf && raced < 2 {
            raced += 1;
            fs::remove_dir(root.join("a/b")).unwrap();
            fs::remove_dir(root.join("a")).unwrap();
        }
        parents::mkdir(dir, mode)
    };
    parents::make_chain(&levels, &leaf, &mut created, &mut racing).unwrap();
    assert!(leaf.is_dir());
    assert_eq!(created, vec![root.join("a"), root.join("a/b")]);
    parents::remove_parents(&levels[1..], &created);
    assert!(root.join("a/b/leaf").is_dir(), "in use: kept");
    fs::remove_dir(&leaf).unwrap();
    parents::remove_parents(&levels[1..], &created);
    assert!(!root.join("a").exists());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn mkdir_retries_are_bounded() {
    let root = fake_root("race_forever", "");
    let (levels, leaf) = parents::levels(&root, "a/leaf");
    let mut created = Vec::new();
    let mut calls = 0;
    let mut racing = |dir: &Path, mode: u32| {
        calls += 1;
        if dir == leaf {
            fs::remove_dir(root.join("a")).unwrap();
        }
        parents::mkdir(dir, mode)
    };
    let err = parents::make_chain(&levels, &leaf, &mut created, &mut racing).unwrap_err();
    assert_eq!(
        err,
        format!(
            "cannot create cgroup {}: No such file or directory",
            leaf.display()
        )
    );
    assert_eq!(calls, 20, "10 tries of parent + leaf");
    assert_eq!(created, vec![root.join("a")]);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn removal_skips_a_level_another_port_removed() {
    let root = fake_root("gone", "");
    let (levels, leaf) = parents::levels(&root, "a/b/leaf");
    let mut created = Vec::new();
    parents::make_chain(&levels, &leaf, &mut created, &mut parents::mkdir).unwrap();
    fs::remove_dir(&leaf).unwrap();
    fs::remove_dir(root.join("a/b")).unwrap();
    // Only `a` is ours now; `a/b` is gone, which must not stop us.
    parents::remove_parents(&levels[1..], &created[..1]);
    assert!(!root.join("a").exists());
    fs::remove_dir_all(&root).unwrap();
}
