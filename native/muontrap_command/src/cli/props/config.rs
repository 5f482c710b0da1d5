//! Valid `Command`s: those the plain command line can spell (`config`),
//! and any the library can hand over (`command`, for the binary form's
//! round trip).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::collection::vec;
use proptest::prelude::*;

use muontrap_wire::signals::sigrtmax;

use crate::{
    Bytes, Capture, CgroupWrites, Command, Hierarchy, IdSpec, Layout, Names, Notify, Rlimit,
    Rlimits, Signal, RESOURCES,
};

fn id_spec() -> impl Strategy<Value = IdSpec> {
    prop_oneof![
        any::<u32>().prop_map(IdSpec::Id),
        "[a-z_][a-z0-9_-]{0,8}".prop_map(IdSpec::Name),
    ]
}

/// `--stop-signal`'s number, never KILL or STOP.
fn stop_signal() -> impl Strategy<Value = i32> {
    (1..=sigrtmax()).prop_filter("KILL and STOP are refused", |n| {
        ![libc::SIGKILL, libc::SIGSTOP].contains(n)
    })
}

/// Distinct resources in any order, soft at most hard.
fn rlimits() -> impl Strategy<Value = Vec<Rlimit>> {
    let resources = prop::sample::subsequence(&RESOURCES[..], 0..4).prop_shuffle();
    (resources, vec(any::<(u64, u64)>(), 4)).prop_map(|(resources, values)| {
        resources
            .into_iter()
            .zip(values)
            .map(|((_, resource), (a, b))| Rlimit {
                resource,
                soft: a.min(b),
                hard: a.max(b),
            })
            .collect()
    })
}

/// Valid names only: the path check and the file-name check pass them.
fn cgroup() -> impl Strategy<Value = (String, CgroupWrites, bool)> {
    let path = vec("[a-z0-9_][a-z0-9_.-]{0,7}", 1..4).prop_map(|s| s.join("/"));
    let controllers =
        prop::sample::subsequence(&["memory", "pids", "cpu", "io", "cpuset"][..], 0..=5)
            .prop_map(|c| c.into_iter().map(String::from).collect::<Vec<_>>());
    let setting = ("[a-z]{1,8}\\.[a-z_]{1,8}", ".{0,12}");
    (path, controllers, vec(setting, 0..3), any::<bool>()).prop_map(
        |(path, controllers, settings, beneath_own_cgroup)| {
            let writes = CgroupWrites {
                controllers,
                settings,
            };
            (path, writes, beneath_own_cgroup)
        },
    )
}

pub(super) fn os_string() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        ".{0,12}".prop_map(|s| Bytes(OsString::from(s))),
        vec(any::<u8>(), 0..12).prop_map(|b| Bytes(OsString::from_vec(b))),
    ]
}

/// `--setenv` (`Some` value) and `--unsetenv`, in order: a NAME is any
/// bytes but `=`, not empty; a value any bytes.
fn env() -> impl Strategy<Value = Vec<(Bytes, Option<Bytes>)>> {
    let name = vec((1..=u8::MAX).prop_filter("no =", |&b| b != b'='), 1..8)
        .prop_map(|b| Bytes(OsString::from_vec(b)));
    vec((name, prop::option::of(os_string())), 0..4)
}

/// umask, nice, rlimits.
type Attrs = (Option<u32>, Option<i32>, Vec<Rlimit>);

fn attrs() -> impl Strategy<Value = Attrs> {
    let umask = prop::option::of(0..=0o777u32);
    let nice = prop::option::of(-20..=19i32);
    (umask, nice, rlimits())
}

/// Any valid `Command` the plain command line can spell: none of what
/// only the library asks for (the notification socket, LISTEN names).
pub(super) fn config() -> impl Strategy<Value = Command> {
    let ids = (
        prop::option::of(id_spec()),
        prop::option::of(id_spec()),
        prop::option::of(vec(id_spec(), 0..3)),
    );
    let captures = [
        Capture::None,
        Capture::Stdout,
        Capture::StdoutAndStderr,
        Capture::StderrOnly,
    ];
    let numbers = (any::<u32>(), 16..=u32::MAX);
    let program = (os_string(), vec(os_string(), 0..4));
    let extra = (
        prop::option::of(os_string()),
        prop::option::of(stop_signal()),
        env(),
        prop::sample::select(captures.to_vec()),
    );
    (
        program,
        prop::option::of(cgroup()),
        ids,
        numbers,
        attrs(),
        extra,
    )
        .prop_map(
            |((program, args), cgroup, (uid, gid, groups), numbers, attrs, extra)| {
                let (delay, window) = numbers;
                let (arg0, stop, env, capture) = extra;
                let (umask, nice, rlimits) = attrs;
                let (cgroup_path, cgroup, beneath_own_cgroup) = match cgroup {
                    Some((path, writes, beneath)) => (Some(path), writes, beneath),
                    None => (None, CgroupWrites::default(), false),
                };
                Command {
                    program,
                    args,
                    arg0,
                    capture,
                    delay_to_sigkill_ms: delay,
                    stop_signal: Signal(stop.unwrap_or(libc::SIGTERM)),
                    uid,
                    gid,
                    supplementary_groups: groups,
                    umask,
                    nice,
                    rlimits: Rlimits(rlimits),
                    env,
                    cgroup_path,
                    beneath_own_cgroup,
                    cgroup,
                    window,
                    ..Command::default()
                }
            },
        )
}

/// Any `Command` the library may hand over: `config`'s, with what only
/// the library asks for.
pub(crate) fn command() -> impl Strategy<Value = Command> {
    let library = (
        prop::option::of(vec("[!-9;-~]{1,10}", 0..4)),
        any::<bool>(),
        prop::option::of(1..=u32::MAX),
        prop::option::of(layout()),
    );
    (config(), library).prop_map(|(c, (names, notify, watchdog, layout))| Command {
        listen_fdnames: names.map(Names),
        notify: Notify(notify),
        watchdog_ms: watchdog,
        cgroup_layout: layout,
        ..c
    })
}

/// A mounted hierarchy: any mount point bytes (a path need not be
/// UTF-8), names and own groups as the kernel writes them.
fn hierarchy(version: u8) -> impl Strategy<Value = Hierarchy> {
    (
        vec(any::<u8>(), 0..24),
        vec("(name=)?[a-z_]{1,8}", 0..4),
        prop::option::of("[a-z0-9@._/-]{0,16}"),
    )
        .prop_map(move |(mount, controllers, own)| Hierarchy {
            version,
            mount_point: OsString::from_vec(mount).into(),
            controllers,
            own,
        })
}

/// The host's layout, as the NIF hands it.
pub(crate) fn layout() -> impl Strategy<Value = Layout> {
    (prop::option::of(hierarchy(2)), vec(hierarchy(1), 0..4)).prop_map(|(v2, v1)| Layout { v2, v1 })
}
