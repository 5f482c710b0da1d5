//! The `:cgroup` start option turned into what the port binary is told:
//! the controllers to enable and the interface files to write, on cgroup
//! v2, or on v1 for a setting whose controller is bound to v1 on the host.
//!
//! `MuonTrap.Cgroup.to_writes/2` asks for this through the NIF; the knob
//! table and both directions of the v1 conversions stay in this crate.

use crate::knobs::{self, KnobValue};
use crate::v1::{self, WriteError};

/// What a `:cgroup` map becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writes {
    /// Sorted, each once.
    pub controllers: Vec<&'static str>,
    /// `(file, value)`, in the order of the settings given.
    pub files: Vec<(&'static str, String)>,
}

/// Why a setting was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingError {
    /// Not a key of [`knobs::KNOBS`].
    UnknownKey,
    /// The value does not fit the knob; says what it takes.
    BadValue(&'static str),
    /// The knob's controller (named) is bound to v1 on this host, and v1
    /// has no such file.
    NoV1Equivalent(&'static str),
    /// See [`WriteError::SwapNeedsMemoryMax`].
    SwapNeedsMemoryMax,
}

/// One entry of the map: its key, `None` when it is no name at all, and
/// its value, `None` when it has the shape of no knob's value.
pub type Setting<'a> = (Option<&'a str>, Option<KnobValue>);

/// The keys that have a v1 equivalent, in table order.
pub fn v1_keys() -> Vec<&'static str> {
    knobs::KNOBS
        .iter()
        .filter(|k| v1::knob_controller(k.key).is_some())
        .map(|k| k.key)
        .collect()
}

/// Translates `settings` (the caller sorts them, so the writes come in a
/// stable order) for a host whose `v1_controllers` are bound to v1. The
/// first refused setting fails the whole map: its index and why.
pub fn to_writes(
    settings: &[Setting<'_>],
    v1_controllers: &[&str],
) -> Result<Writes, (usize, SettingError)> {
    let memory_max = settings
        .iter()
        .find(|(key, _)| *key == Some("memory_max"))
        .and_then(|(_, value)| value.as_ref());
    let mut controllers = Vec::new();
    let mut files = Vec::new();
    for (index, (key, value)) in settings.iter().enumerate() {
        let (controller, writes) =
            one(*key, value.as_ref(), memory_max, v1_controllers).map_err(|e| (index, e))?;
        controllers.push(controller);
        files.extend(writes);
    }
    // cpu.stat's usage comes from cpuacct on v1.
    let v1 = |c: &str| v1_controllers.contains(&c);
    if controllers.contains(&"cpu") && v1("cpu") && v1("cpuacct") {
        controllers.push("cpuacct");
    }
    controllers.sort_unstable();
    controllers.dedup();
    Ok(Writes { controllers, files })
}

type Translated = (&'static str, Vec<(&'static str, String)>);

/// One setting: the controller it needs and its writes.
fn one(
    key: Option<&str>,
    value: Option<&KnobValue>,
    memory_max: Option<&KnobValue>,
    v1_controllers: &[&str],
) -> Result<Translated, SettingError> {
    let knob = key
        .and_then(knobs::by_key)
        .ok_or(SettingError::UnknownKey)?;
    let value = value
        .filter(|v| knob.kind.accepts(v))
        .ok_or(SettingError::BadValue(knob.kind.expected()))?;
    let on_v1 = |c: &str| v1_controllers.contains(&c);
    match v1::knob_controller(knob.key) {
        Some(c) if on_v1(c) => match v1::writes(knob.key, value, memory_max) {
            Ok(writes) => Ok((c, writes)),
            Err(WriteError::OutOfRange(expected)) => Err(SettingError::BadValue(expected)),
            Err(WriteError::SwapNeedsMemoryMax) => Err(SettingError::SwapNeedsMemoryMax),
            Err(WriteError::NoEquivalent) => Err(SettingError::NoV1Equivalent(c)),
        },
        _ if on_v1(knob.controller()) => Err(SettingError::NoV1Equivalent(knob.controller())),
        _ => Ok((knob.controller(), vec![(knob.file, value.to_file_text())])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use KnobValue::*;

    fn s(key: &str, value: KnobValue) -> Setting<'_> {
        (Some(key), Some(value))
    }

    fn files(w: &Writes) -> Vec<(&str, &str)> {
        w.files.iter().map(|(f, v)| (*f, v.as_str())).collect()
    }

    #[test]
    fn v2_writes_the_v2_files() {
        let w = to_writes(
            &[
                s(
                    "cpu_max",
                    CpuQuota {
                        quota: 50_000,
                        period: 100_000,
                    },
                ),
                s("memory_max", Int(1_000_000)),
                s("memory_oom_group", Bool(true)),
                s("pids_max", Max),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(w.controllers, ["cpu", "memory", "pids"]);
        assert_eq!(
            files(&w),
            [
                ("cpu.max", "50000 100000"),
                ("memory.max", "1000000"),
                ("memory.oom.group", "1"),
                ("pids.max", "max"),
            ]
        );
        assert_eq!(to_writes(&[], &[]).unwrap().controllers, [""; 0]);
    }

    #[test]
    fn v1_writes_the_v1_files_of_the_controllers_bound_there() {
        let v1 = ["cpu", "cpuacct", "memory"];
        let w = to_writes(
            &[
                s("cpu_weight", Int(50)),
                s("memory_max", Max),
                s("pids_max", Int(10)),
            ],
            &v1,
        )
        .unwrap();
        // pids is not bound to v1 here: it stays on v2.
        assert_eq!(w.controllers, ["cpu", "cpuacct", "memory", "pids"]);
        assert_eq!(
            files(&w),
            [
                ("cpu.shares", "512"),
                ("memory.limit_in_bytes", "-1"),
                ("pids.max", "10")
            ]
        );
        let swap = [s("memory_max", Int(1000)), s("memory_swap_max", Int(24))];
        let w = to_writes(&swap, &v1).unwrap();
        assert_eq!(files(&w)[1], ("memory.memsw.limit_in_bytes", "1024"));
    }

    #[test]
    fn the_first_refused_setting_says_why() {
        let v1 = ["blkio", "memory"];
        let cases: &[(&[Setting], SettingError)] = &[
            (&[(None, Some(Int(1)))], SettingError::UnknownKey),
            (&[s("nonsense", Int(1))], SettingError::UnknownKey),
            (
                &[s("cpu_weight", Int(1)), (Some("memory_max"), None)],
                SettingError::BadValue("a non-negative integer or :max"),
            ),
            (
                &[s("cpu_weight", Int(0))],
                SettingError::BadValue("an integer in 1..10000"),
            ),
            (
                &[s("io_weight", Int(5))],
                SettingError::BadValue("an integer in 10..1000 on cgroup v1 (blkio.weight)"),
            ),
            (
                &[s("memory_high", Int(1))],
                SettingError::NoV1Equivalent("memory"),
            ),
            (
                &[s("memory_swap_max", Int(1))],
                SettingError::SwapNeedsMemoryMax,
            ),
        ];
        for (settings, want) in cases {
            let index = settings.len() - 1;
            assert_eq!(
                to_writes(settings, &v1),
                Err((index, *want)),
                "{settings:?}"
            );
        }
        // The same io_weight is fine on v2.
        assert!(to_writes(&[s("io_weight", Int(5))], &[]).is_ok());
    }

    #[test]
    fn v1_keys_are_the_ones_with_a_controller_there() {
        assert_eq!(
            v1_keys(),
            [
                "cpu_weight",
                "cpu_max",
                "memory_max",
                "memory_swap_max",
                "pids_max",
                "io_weight",
                "cpuset_cpus",
                "cpuset_mems"
            ]
        );
    }
}
