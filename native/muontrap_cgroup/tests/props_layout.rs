//! Property tests of what the layout is read from (docs/reliability.md,
//! "Fuzzing"): `/proc/self/mountinfo` and `/proc/self/cgroup` parse back
//! to what the kernel wrote, any text parses without panic within a bound,
//! and the layout built from any of it places groups inside a hierarchy.

use std::path::{Component, Path, PathBuf};

use muontrap_cgroup::layout::{parse_proc_cgroup, Layout};
use muontrap_cgroup::mount::{parse_mountinfo, MountEntry};
use muontrap_peak_alloc::{measure, PeakAlloc};
use proptest::collection::vec;
use proptest::prelude::*;

mod common;
use common::config;

/// The bounds below are measured with this.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Both parsers' bound on `len` bytes: `PER_BYTE` per byte (a line's
/// fields as 16-byte `&str`s for as little as 2 bytes each, the entries'
/// owned copies, vectors that at most double, the old block live while
/// they move) and `FIXED`.
const PER_BYTE: usize = 32;
const FIXED: usize = 256;

/// A path as mountinfo prints it: ` `, `\t`, `\n` and `\` as octal escapes.
fn escape(p: &str) -> String {
    let mut out = String::new();
    for c in p.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Absolute paths with the characters that need escaping, and others.
fn abs_path() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => prop::sample::select(&[' ', '\t', '\n', '\\', 'a', '-', '0', '4'][..]),
        1 => any::<char>(),
    ];
    vec(vec(c, 1..6).prop_map(String::from_iter), 0..4).prop_map(|p| format!("/{}", p.join("/")))
}

fn entry() -> impl Strategy<Value = MountEntry> {
    let fs_type = prop::sample::select(&["cgroup", "cgroup2", "ext4", "tmpfs", "proc"][..]);
    let options = "[a-z0-9_=,]{1,24}";
    (abs_path(), abs_path(), fs_type, options).prop_map(|(root, mp, fs, opts)| MountEntry {
        root: root.into(),
        mount_point: mp.into(),
        fs_type: fs.to_string(),
        super_options: opts,
    })
}

/// The mountinfo line for `e`, with `optional` fields (`shared:N`...).
fn line(e: &MountEntry, n: usize, optional: usize) -> String {
    let path = |p: &Path| escape(p.to_str().unwrap_or("/"));
    let opt: String = (0..optional).map(|i| format!(" shared:{i}")).collect();
    format!(
        "{n} 1 0:{n} {} {} rw,relatime{opt} - {} src{n} {}",
        path(&e.root),
        path(&e.mount_point),
        e.fs_type,
        e.super_options
    )
}

/// Lines that are no mount: too few fields, or no `-` separator.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z ]{0,20}",
        Just("1 2 3 4 5 6 7 8 9 10".to_string()),
        Just("41 31 0:38 / /x rw - cgroup2".to_string()),
    ]
}

fn proc_cgroup_line() -> impl Strategy<Value = (u32, Vec<String>, String)> {
    let controllers = prop::sample::subsequence(
        &["cpu", "memory", "pids", "freezer", "name=systemd"][..],
        0..3,
    )
    .prop_map(|c| c.into_iter().map(String::from).collect::<Vec<_>>());
    // The kernel writes a group's path as it is, so one with a newline
    // would make two lines: groups are named by the host, never so.
    let path = prop_oneof![
        abs_path().prop_map(|p| p.replace('\n', "")),
        Just("/../x".to_string()),
        Just("/..".to_string()),
        "/[a-z.:/]{0,12}"
    ];
    (0u32..12, controllers, path)
}

fn render_proc_cgroup(lines: &[(u32, Vec<String>, String)]) -> String {
    lines
        .iter()
        .map(|(id, c, p)| format!("{id}:{}:{p}\n", c.join(",")))
        .collect()
}

/// Whether `rel`, joined below a directory, can only go down from it.
fn only_goes_down(rel: &str) -> bool {
    !rel.starts_with('/')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mountinfo_round_trips(
        entries in vec((entry(), 0usize..3, junk()), 0..12),
    ) {
        let text: String = entries
            .iter()
            .enumerate()
            .map(|(n, (e, optional, junk))| format!("{}\n{junk}\n", line(e, n, *optional)))
            .collect();
        let want: Vec<MountEntry> = entries.into_iter().map(|(e, ..)| e).collect();
        let (got, peak) = measure(|| parse_mountinfo(&text));
        prop_assert!(peak <= PER_BYTE * text.len() + FIXED, "{} bytes for {}", peak, text.len());
        prop_assert_eq!(got, want);
    }

    #[test]
    fn proc_cgroup_round_trips(lines in vec(proc_cgroup_line(), 0..8)) {
        let text = render_proc_cgroup(&lines);
        let (got, peak) = measure(|| parse_proc_cgroup(&text));
        prop_assert!(peak <= PER_BYTE * text.len() + FIXED, "{} bytes for {}", peak, text.len());
        prop_assert_eq!(got, lines);
    }

    #[test]
    fn any_text_parses_within_bounds(t in ".{0,300}|[0-9a-z /:,=-]{0,300}") {
        let bound = PER_BYTE * t.len() + FIXED;
        let (_, peak) = measure(|| parse_mountinfo(&t));
        prop_assert!(peak <= bound, "mountinfo: {} bytes for {}", peak, t.len());
        let (_, peak) = measure(|| parse_proc_cgroup(&t));
        prop_assert!(peak <= bound, "cgroup: {} bytes for {}", peak, t.len());
    }

    /// Whatever the two files say, a hierarchy's own group is a path that
    /// only goes down from its mount point, so a group beneath it stays
    /// inside the hierarchy.
    #[test]
    fn own_groups_stay_inside_their_hierarchy(
        mounts in vec(entry(), 0..6),
        roots in vec(prop_oneof![Just("/".to_string()), abs_path()], 6),
        own in vec(proc_cgroup_line(), 0..8),
    ) {
        let mounts: Vec<MountEntry> = mounts
            .into_iter()
            .zip(roots)
            .map(|(e, root)| MountEntry { root: PathBuf::from(root), ..e })
            .collect();
        let text: String = mounts.iter().enumerate().map(|(n, e)| line(e, n, 0) + "\n").collect();
        let layout = Layout::from_texts(&text, &render_proc_cgroup(&own));
        for h in layout.v2.iter().chain(&layout.v1) {
            if let Some(o) = &h.own {
                prop_assert!(o.is_empty() || only_goes_down(o), "own {:?}", o);
            }
            if let Some(dir) = h.dir("muontrap/a1", true) {
                prop_assert!(dir.starts_with(&h.mount_point));
                prop_assert!(only_goes_down(dir.strip_prefix(&h.mount_point).unwrap_or(Path::new("/")).to_str().unwrap_or("/")));
            }
        }
    }
}
