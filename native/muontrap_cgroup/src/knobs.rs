//! The writable cgroup settings: the `:cgroup` start option, and what
//! `MuonTrap.Daemon.cgroup_config/1` reports back in the same shape.
//!
//! This table is the only one: the NIF reads a group's settings through it
//! (`cgroup_config`) and translates a `:cgroup` map into file writes with
//! it (`settings::to_writes`, which `MuonTrap.Cgroup` asks for), so what
//! is accepted, written and read back cannot drift apart. The port binary
//! only writes the files it is given.

use crate::parse::{self, CpuMax, Limit, ParseError};

/// How a knob's file contents are formatted, and which values it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobKind {
    /// `cpu.weight`: an integer in 1..=10000.
    Weight,
    /// Plain unsigned integer (`memory.min`, `memory.low`).
    Int,
    /// Unsigned integer or `max`.
    IntOrMax,
    /// `cpu.max`: `max` or quota and period.
    CpuMax,
    /// `0` or `1`.
    Bool,
    /// `io.weight`: only the `default` line is reported; 1..=10000.
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

impl Knob {
    /// The v2 controller the file belongs to: its name up to the first dot.
    pub fn controller(&self) -> &'static str {
        self.file.split('.').next().unwrap_or(self.file)
    }
}

const fn knob(key: &'static str, file: &'static str, kind: KnobKind) -> Knob {
    Knob { key, file, kind }
}

/// All settings, in documentation order.
pub const KNOBS: &[Knob] = &[
    knob("cpu_weight", "cpu.weight", KnobKind::Weight),
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

/// Looks up a knob by its v2 file name, e.g. `"memory.max"`.
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

/// The largest `cpu.weight` and `io.weight`.
const MAX_WEIGHT: u64 = 10_000;

impl KnobKind {
    /// Whether `value` may be written to a knob of this kind.
    pub fn accepts(self, value: &KnobValue) -> bool {
        match (self, value) {
            (KnobKind::Weight | KnobKind::IoWeight, KnobValue::Int(w)) => {
                (1..=MAX_WEIGHT).contains(w)
            }
            (KnobKind::Int | KnobKind::IntOrMax, KnobValue::Int(_)) => true,
            (KnobKind::IntOrMax | KnobKind::CpuMax, KnobValue::Max) => true,
            (KnobKind::CpuMax, KnobValue::CpuQuota { quota, period }) => *quota > 0 && *period > 0,
            (KnobKind::Bool, KnobValue::Bool(_)) => true,
            (KnobKind::RangeList, KnobValue::Str(s)) => is_range_list(s),
            _ => false,
        }
    }

    /// What a knob of this kind takes, as an error message says it.
    pub fn expected(self) -> &'static str {
        match self {
            KnobKind::Weight | KnobKind::IoWeight => "an integer in 1..10000",
            KnobKind::Int => "a non-negative integer",
            KnobKind::IntOrMax => "a non-negative integer or :max",
            KnobKind::CpuMax => ":max or {quota_us, period_us} with positive integers",
            KnobKind::Bool => "a boolean",
            KnobKind::RangeList => "a range string such as \"0-3,5\"",
        }
    }

    /// Parses a knob file's contents. `Ok(None)` means the knob is unset and
    /// should be omitted: that only happens for an empty cpuset file, which
    /// means "inherit the parent's set" rather than "no CPUs".
    pub fn parse(self, text: &str) -> Result<Option<KnobValue>, ParseError> {
        let value = match self {
            KnobKind::Weight | KnobKind::Int => KnobValue::Int(parse::parse_u64(text)?),
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

/// `0-3,5`: comma-separated numbers and ranges, nothing else (the kernel
/// would take the rest, or reject it only at write time).
fn is_range_list(s: &str) -> bool {
    let number = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    s.split(',').all(|part| match part.split_once('-') {
        Some((lo, hi)) => number(lo) && number(hi),
        None => number(part),
    })
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
            assert!(k.key.starts_with(k.controller()));
        }
        assert_eq!(by_key("nope"), None);
        assert_eq!(by_file("memory_max"), None);
        assert_eq!(by_key("memory_swap_max").unwrap().controller(), "memory");
    }

    #[test]
    fn accepts_only_values_of_the_right_shape_and_range() {
        use KnobValue::*;
        let quota = |quota, period| CpuQuota { quota, period };
        let yes: &[(KnobKind, KnobValue)] = &[
            (KnobKind::Weight, Int(1)),
            (KnobKind::Weight, Int(10_000)),
            (KnobKind::IoWeight, Int(100)),
            (KnobKind::Int, Int(0)),
            (KnobKind::IntOrMax, Int(u64::MAX)),
            (KnobKind::IntOrMax, Max),
            (KnobKind::CpuMax, Max),
            (KnobKind::CpuMax, quota(1, 1)),
            (KnobKind::Bool, Bool(false)),
            (KnobKind::RangeList, Str("0-3,5".into())),
            (KnobKind::RangeList, Str("7".into())),
        ];
        let no: &[(KnobKind, KnobValue)] = &[
            (KnobKind::Weight, Int(0)),
            (KnobKind::Weight, Int(10_001)),
            (KnobKind::IoWeight, Max),
            (KnobKind::Int, Max),
            (KnobKind::IntOrMax, Bool(true)),
            (KnobKind::CpuMax, quota(0, 100_000)),
            (KnobKind::CpuMax, quota(1, 0)),
            (KnobKind::CpuMax, Int(5)),
            (KnobKind::Bool, Int(1)),
            (KnobKind::RangeList, Str(String::new())),
            (KnobKind::RangeList, Str("0-".into())),
            (KnobKind::RangeList, Str("0,,1".into())),
            (KnobKind::RangeList, Str("0-1-2".into())),
            (KnobKind::RangeList, Str("0-3;rm".into())),
            (KnobKind::RangeList, Str(" 1".into())),
        ];
        for (kind, value) in yes {
            assert!(kind.accepts(value), "{kind:?} {value:?}");
        }
        for (kind, value) in no {
            assert!(!kind.accepts(value), "{kind:?} {value:?}");
        }
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
            (KnobKind::Weight, KnobValue::Int(50)),
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
