//! The writable cgroup v2 settings exposed by `MuonTrap.Daemon.cgroup_config/1`
//! and accepted back as the `:cgroup` start option.
//!
//! One table maps each Elixir key to its interface file and value format so
//! that reading (NIF) and writing (port binary) can't drift apart.

use crate::parse::{self, CpuMax, Limit, ParseError};

/// How a knob's file contents are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    /// Plain unsigned integer (`cpu.weight`, `memory.min`, ...).
    Int,
    /// Unsigned integer or `max`.
    IntOrMax,
    /// `cpu.max`: `max` or quota and period.
    CpuMax,
    /// `0` or `1`.
    Bool,
    /// `io.weight`: only the `default` line is reported.
    IoWeight,
    /// cpuset range list such as `0-3,5`.
    RangeList,
}

/// One writable setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// Elixir map key (an atom): the file name with `.` replaced by `_`.
    pub key: &'static str,
    /// cgroup v2 interface file name.
    pub file: &'static str,
    pub kind: KnobKind,
}

const fn knob(key: &'static str, file: &'static str, kind: KnobKind) -> Knob {
    Knob { key, file, kind }
}

/// All settings reported by `cgroup_config`, in documentation order.
pub const KNOBS: &[Knob] = &[
    knob("cpu_weight", "cpu.weight", KnobKind::Int),
    knob("cpu_max", "cpu.max", KnobKind::CpuMax),
    knob("cpu_idle", "cpu.idle", KnobKind::Bool),
    knob("memory_min", "memory.min", KnobKind::Int),
    knob("memory_low", "memory.low", KnobKind::Int),
    knob("memory_high", "memory.high", KnobKind::IntOrMax),
    knob("memory_max", "memory.max", KnobKind::IntOrMax),
    knob("memory_swap_max", "memory.swap.max", KnobKind::IntOrMax),
    knob("memory_oom_group", "memory.oom.group", KnobKind::Bool),
    knob("pids_max", "pids.max", KnobKind::IntOrMax),
    knob("io_weight", "io.weight", KnobKind::IoWeight),
    knob("cpuset_cpus", "cpuset.cpus", KnobKind::RangeList),
    knob("cpuset_mems", "cpuset.mems", KnobKind::RangeList),
];

/// Looks up a knob by its Elixir key, e.g. `"memory_max"`.
pub fn by_key(key: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.key == key)
}

/// Looks up a knob by its interface file name, e.g. `"memory.max"`.
pub fn by_file(file: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.file == file)
}

/// A parsed knob value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnobValue {
    Int(u64),
    Max,
    CpuQuota { quota: u64, period: u64 },
    Bool(bool),
    Str(String),
}

impl KnobKind {
    /// Parses a knob file's contents. `Ok(None)` means the knob is unset and
    /// should be omitted: that only happens for an empty cpuset file, which
    /// means "inherit the parent's set" rather than "no CPUs".
    pub fn parse(self, text: &str) -> Result<Option<KnobValue>, ParseError> {
        let value = match self {
            KnobKind::Int => KnobValue::Int(parse::parse_u64(text)?),
            KnobKind::IntOrMax => match parse::parse_limit(text)? {
                Limit::Max => KnobValue::Max,
                Limit::Value(v) => KnobValue::Int(v),
            },
            KnobKind::CpuMax => match parse::parse_cpu_max(text)? {
                CpuMax::Max => KnobValue::Max,
                CpuMax::Quota { quota, period } => KnobValue::CpuQuota { quota, period },
            },
            KnobKind::Bool => KnobValue::Bool(parse::parse_bool(text)?),
            KnobKind::IoWeight => KnobValue::Int(parse::parse_io_weight_default(text)?),
            KnobKind::RangeList => match parse::parse_range_list(text)? {
                Some(s) => KnobValue::Str(s),
                None => return Ok(None),
            },
        };
        Ok(Some(value))
    }
}

impl KnobValue {
    /// The text to write to the interface file to apply this value.
    /// `io.weight` takes `default N`; writing plain `N` also sets the
    /// default, so no special case is needed.
    pub fn to_file_text(&self) -> String {
        match self {
            KnobValue::Int(v) => v.to_string(),
            // For cpu.max a bare "max" keeps the current period.
            KnobValue::Max => "max".to_string(),
            KnobValue::CpuQuota { quota, period } => format!("{quota} {period}"),
            KnobValue::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            KnobValue::Str(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_mirror_file_names() {
        for k in KNOBS {
            assert_eq!(k.key, k.file.replace('.', "_"));
            assert_eq!(by_key(k.key), Some(k));
            assert_eq!(by_file(k.file), Some(k));
        }
        assert_eq!(by_key("nope"), None);
    }

    #[test]
    fn parses_each_kind() {
        let cases: &[(&str, &str, Option<KnobValue>)] = &[
            ("cpu_weight", "100\n", Some(KnobValue::Int(100))),
            ("cpu_max", "max 100000\n", Some(KnobValue::Max)),
            (
                "cpu_max",
                "20000 100000\n",
                Some(KnobValue::CpuQuota {
                    quota: 20000,
                    period: 100000,
                }),
            ),
            ("cpu_idle", "0\n", Some(KnobValue::Bool(false))),
            ("memory_low", "0\n", Some(KnobValue::Int(0))),
            ("memory_max", "max\n", Some(KnobValue::Max)),
            ("memory_max", "4096\n", Some(KnobValue::Int(4096))),
            ("memory_oom_group", "1\n", Some(KnobValue::Bool(true))),
            ("pids_max", "max\n", Some(KnobValue::Max)),
            (
                "io_weight",
                "default 100\n8:0 300\n",
                Some(KnobValue::Int(100)),
            ),
            ("cpuset_cpus", "0-1\n", Some(KnobValue::Str("0-1".into()))),
            ("cpuset_mems", "\n", None),
        ];
        for (key, text, want) in cases {
            let knob = by_key(key).unwrap();
            assert_eq!(knob.kind.parse(text).as_ref(), Ok(want), "{key} {text:?}");
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!(KnobKind::Int.parse("max\n").is_err());
        assert!(KnobKind::Bool.parse("").is_err());
        assert!(KnobKind::IoWeight.parse("").is_err());
        assert!(KnobKind::CpuMax.parse("max 10 20").is_err());
    }

    #[test]
    fn round_trips_through_file_text() {
        let values = [
            (KnobKind::Int, KnobValue::Int(42)),
            (KnobKind::IntOrMax, KnobValue::Max),
            (
                KnobKind::CpuMax,
                KnobValue::CpuQuota {
                    quota: 5,
                    period: 10,
                },
            ),
            (KnobKind::Bool, KnobValue::Bool(true)),
            (KnobKind::IoWeight, KnobValue::Int(100)),
            (KnobKind::RangeList, KnobValue::Str("0-3,5".into())),
        ];
        for (kind, value) in values {
            let text = value.to_file_text();
            // io.weight is read back as "default N", so emulate the kernel.
            let text = if kind == KnobKind::IoWeight {
                format!("default {text}\n")
            } else {
                text
            };
            assert_eq!(kind.parse(&text), Ok(Some(value)));
        }
    }
}
