//! Valid `Config`s to spell out as command lines: any values, made
//! consistent where one option needs another.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::attrs::{sigrtmax, Attrs, Rlimit, RESOURCES};
use super::super::{Capture, CgroupConfig, Config, IdSpec};

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
fn cgroup() -> impl Strategy<Value = CgroupConfig> {
    let path = vec("[a-z0-9_][a-z0-9_.-]{0,7}", 1..4).prop_map(|s| s.join("/"));
    let controllers =
        prop::sample::subsequence(&["memory", "pids", "cpu", "io", "cpuset"][..], 0..=5)
            .prop_map(|c| c.into_iter().map(String::from).collect::<Vec<_>>());
    let setting = ("[a-z]{1,8}\\.[a-z_]{1,8}", ".{0,12}");
    (path, controllers, vec(setting, 0..3), any::<bool>()).prop_map(
        |(path, controllers, settings, beneath_own_cgroup)| CgroupConfig {
            path,
            controllers,
            settings,
            beneath_own_cgroup,
        },
    )
}

pub(super) fn os_string() -> impl Strategy<Value = OsString> {
    prop_oneof![
        ".{0,12}".prop_map(OsString::from),
        vec(any::<u8>(), 0..12).prop_map(OsString::from_vec),
    ]
}

/// `--setenv` (`Some` value) and `--unsetenv`, in order: a NAME is any
/// bytes but `=`, not empty; a value any bytes.
fn env() -> impl Strategy<Value = Vec<(OsString, Option<OsString>)>> {
    let name =
        vec((1..=u8::MAX).prop_filter("no =", |&b| b != b'='), 1..8).prop_map(OsString::from_vec);
    vec((name, prop::option::of(os_string())), 0..4)
}

fn attrs() -> impl Strategy<Value = Attrs> {
    let umask = prop::option::of(0..=0o777u32);
    let nice = prop::option::of(-20..=19i32);
    (umask, nice, rlimits()).prop_map(|(umask, nice, rlimits)| Attrs {
        umask,
        nice,
        rlimits,
    })
}

/// Any valid `Config`. What needs what (docs/protocol.md): framed capture
/// needs a hand-over, `--listen-fdnames` needs one, `--notify` and
/// `--watchdog` need `--framed`; the cgroup is valid on its own.
pub(super) fn config() -> impl Strategy<Value = Config> {
    let ids = (
        prop::option::of(id_spec()),
        prop::option::of(id_spec()),
        prop::option::of(vec(id_spec(), 0..3)),
    );
    // A value that looks like an option is still the value.
    let handover = prop_oneof!["muontrap-[0-9]{1,5}-[0-9a-f]{1,8}", Just("--framed".into())];
    let captures = [
        Capture::None,
        Capture::Stdout,
        Capture::StdoutAndStderr,
        Capture::StderrOnly,
    ];
    let io = (
        prop::sample::select(captures.to_vec()),
        any::<[bool; 2]>(),
        prop::option::of(handover),
        prop::option::of(vec("[!-9;-~]{1,10}", 1..4)),
    );
    let numbers = (any::<u32>(), 16..=u32::MAX, prop::option::of(1..=u32::MAX));
    let program = (os_string(), vec(os_string(), 0..4));
    let extra = (
        prop::option::of(os_string()),
        prop::option::of(stop_signal()),
        env(),
    );
    (
        program,
        prop::option::of(cgroup()),
        ids,
        io,
        numbers,
        attrs(),
        extra,
    )
        .prop_map(
            |((program, args), cgroup, (uid, gid, groups), io, numbers, attrs, extra)| {
                let (capture, [framed, notify], mut handover, listen) = io;
                if framed && capture != Capture::None && handover.is_none() {
                    handover = Some("muontrap-1-a".into());
                }
                let (delay, window, watchdog) = numbers;
                let (arg0, stop, env) = extra;
                Config {
                    program,
                    args,
                    arg0,
                    cgroup,
                    delay_to_sigkill_ms: delay,
                    uid,
                    gid,
                    supplementary_groups: groups,
                    window,
                    capture,
                    framed,
                    listen_fdnames: listen.filter(|_| handover.is_some()),
                    handover,
                    notify: notify && framed,
                    watchdog_ms: watchdog.filter(|_| framed),
                    stop_signal: stop.unwrap_or(libc::SIGTERM),
                    attrs,
                    env,
                }
            },
        )
}
