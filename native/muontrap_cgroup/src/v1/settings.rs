//! The `:cgroup` settings on v1: which controller holds each, the files
//! that apply it, and reading it back from them.

use crate::knobs::KnobValue;
use crate::parse;

use super::{cpu_max, parse_limit, UNLIMITED};

/// `cpu.shares` for a v2 `cpu.weight` (default 100 ↔ 1024).
pub fn shares_from_weight(weight: u64) -> u64 {
    // Saturating: weights are checked (1..10000) before, but this is pub.
    weight.saturating_mul(1024) / 100
}

/// The v2 `cpu.weight` for `cpu.shares`; inverts [`shares_from_weight`].
pub fn weight_from_shares(shares: u64) -> u64 {
    // `shares` is read from a file: saturating, a huge one is the largest
    // weight (the clamp), not an overflow (a panic in debug builds, a
    // wrapped tiny weight in release ones).
    shares.saturating_mul(100).div_ceil(1024).clamp(1, 10_000)
}

/// The v1 controller whose hierarchy holds setting `key`, for the settings
/// that have a v1 equivalent.
pub fn knob_controller(key: &str) -> Option<&'static str> {
    Some(match key {
        "cpu_weight" | "cpu_max" => "cpu",
        "memory_max" | "memory_swap_max" => "memory",
        "pids_max" => "pids",
        "io_weight" => "blkio",
        "cpuset_cpus" => "cpuset",
        "cpuset_mems" => "cpuset",
        _ => return None,
    })
}

/// Why a setting valid on v2 cannot be written on v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The value is outside what the v1 file takes; says what it takes.
    OutOfRange(&'static str),
    /// v1 limits memory and swap together (`memory.memsw.limit_in_bytes`),
    /// so a swap limit needs an integer memory limit to add to.
    SwapNeedsMemoryMax,
    /// `key` has no v1 equivalent ([`knob_controller`] is `None`).
    NoEquivalent,
}

/// A v1 limit file's text for a v2 limit.
fn limit_text(value: &KnobValue) -> String {
    match value {
        KnobValue::Max => UNLIMITED.to_string(),
        other => other.to_file_text(),
    }
}

/// The v1 files and values that apply setting `key` = `value`, a value
/// already valid for its v2 file; `memory_max` is the same map's memory
/// limit, which memsw includes.
pub fn writes(
    key: &str,
    value: &KnobValue,
    memory_max: Option<&KnobValue>,
) -> Result<Vec<(&'static str, String)>, WriteError> {
    Ok(match (key, value) {
        ("cpu_weight", KnobValue::Int(w)) => {
            vec![("cpu.shares", shares_from_weight(*w).to_string())]
        }
        // A new group has no quota yet.
        ("cpu_max", KnobValue::Max) => cpu_max::writes(None, None, None),
        ("cpu_max", KnobValue::CpuQuota { quota, period }) => {
            cpu_max::writes(None, Some(*quota), Some(*period))
        }
        ("memory_max", v) => vec![("memory.limit_in_bytes", limit_text(v))],
        ("memory_swap_max", KnobValue::Int(swap)) => match memory_max {
            // u128: the sum of two u64 limits does not overflow.
            Some(KnobValue::Int(mem)) => vec![(
                "memory.memsw.limit_in_bytes",
                (u128::from(*mem) + u128::from(*swap)).to_string(),
            )],
            _ => return Err(WriteError::SwapNeedsMemoryMax),
        },
        ("memory_swap_max", v) => vec![("memory.memsw.limit_in_bytes", limit_text(v))],
        ("pids_max", v) => vec![("pids.max", v.to_file_text())],
        ("io_weight", KnobValue::Int(w)) if (10..=1000).contains(w) => {
            vec![("blkio.weight", w.to_string())]
        }
        ("io_weight", _) => {
            return Err(WriteError::OutOfRange(
                "an integer in 10..1000 on cgroup v1 (blkio.weight)",
            ))
        }
        ("cpuset_cpus", v) => vec![("cpuset.cpus", v.to_file_text())],
        ("cpuset_mems", v) => vec![("cpuset.mems", v.to_file_text())],
        _ => return Err(WriteError::NoEquivalent),
    })
}

/// Reads setting `key` from v1 files; `read(file)` returns a file of the
/// group (from the hierarchy that file's controller lives in). `None` when
/// a file is missing or malformed, or `key` has no v1 equivalent.
pub fn read_knob(key: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<KnobValue> {
    match key {
        "cpu_weight" => {
            let shares = parse::parse_u64(&read("cpu.shares")?).ok()?;
            Some(KnobValue::Int(weight_from_shares(shares)))
        }
        "cpu_max" => {
            let cpu = cpu_max::read(read)?;
            Some(match cpu.quota {
                Some(quota) => KnobValue::CpuQuota {
                    quota,
                    period: cpu.period,
                },
                None => KnobValue::Max,
            })
        }
        "memory_max" => parse_limit(&read("memory.limit_in_bytes")?).ok(),
        "memory_swap_max" => {
            // memsw limits memory + swap together.
            let memsw = parse_limit(&read("memory.memsw.limit_in_bytes")?).ok()?;
            let mem = parse_limit(&read("memory.limit_in_bytes")?).ok()?;
            Some(match (memsw, mem) {
                (KnobValue::Int(both), KnobValue::Int(mem)) => {
                    KnobValue::Int(both.saturating_sub(mem))
                }
                _ => KnobValue::Max,
            })
        }
        "pids_max" => match parse::parse_limit(&read("pids.max")?).ok()? {
            parse::Limit::Max => Some(KnobValue::Max),
            parse::Limit::Value(v) => Some(KnobValue::Int(v)),
        },
        "io_weight" => Some(KnobValue::Int(
            parse::parse_u64(&read("blkio.weight")?).ok()?,
        )),
        "cpuset_cpus" | "cpuset_mems" => {
            let file = if key == "cpuset_cpus" {
                "cpuset.cpus"
            } else {
                "cpuset.mems"
            };
            parse::parse_range_list(&read(file)?)
                .ok()?
                .map(KnobValue::Str)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::files;
    use super::*;

    #[test]
    fn shares_round_trip_every_weight() {
        for w in 1..=10_000 {
            let s = shares_from_weight(w);
            assert!((2..=262_144).contains(&s), "{w} -> {s}");
            assert_eq!(weight_from_shares(s), w);
        }
        assert_eq!(shares_from_weight(100), 1024);
        assert_eq!(weight_from_shares(2), 1);
        assert_eq!(weight_from_shares(262_144), 10_000);
    }

    /// Found by tests/props_v1.rs: a `cpu.shares` above u64::MAX / 100
    /// overflowed.
    #[test]
    fn huge_shares_are_the_largest_weight() {
        assert_eq!(weight_from_shares(u64::MAX), 10_000);
        assert_eq!(weight_from_shares(u64::MAX / 100 + 1), 10_000);
        assert_eq!(shares_from_weight(u64::MAX), u64::MAX / 100);
        let f = files(&[("cpu.shares", "18446744073709551615\n")]);
        let read = |name: &str| f.get(name).cloned();
        assert_eq!(read_knob("cpu_weight", &read), Some(KnobValue::Int(10_000)));
    }

    #[test]
    fn knobs() {
        let f = files(&[
            ("cpu.shares", "512\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("memory.limit_in_bytes", "1048576\n"),
            ("memory.memsw.limit_in_bytes", "3145728\n"),
            ("pids.max", "max\n"),
            ("cpuset.cpus", "0-1\n"),
            ("cpuset.mems", "\n"),
        ]);
        let read = |name: &str| f.get(name).cloned();
        assert_eq!(read_knob("cpu_weight", &read), Some(KnobValue::Int(50)));
        assert_eq!(read_knob("cpu_max", &read), Some(KnobValue::Max));
        assert_eq!(
            read_knob("memory_max", &read),
            Some(KnobValue::Int(1 << 20))
        );
        assert_eq!(
            read_knob("memory_swap_max", &read),
            Some(KnobValue::Int(2 << 20))
        );
        assert_eq!(read_knob("pids_max", &read), Some(KnobValue::Max));
        assert_eq!(
            read_knob("cpuset_cpus", &read),
            Some(KnobValue::Str("0-1".into()))
        );
        assert_eq!(read_knob("cpuset_mems", &read), None);
        assert_eq!(read_knob("io_weight", &read), None);
        assert_eq!(read_knob("memory_high", &read), None);
        let quota = files(&[
            ("cpu.cfs_quota_us", "20000\n"),
            ("cpu.cfs_period_us", "100000\n"),
        ]);
        let read = |name: &str| quota.get(name).cloned();
        assert_eq!(
            read_knob("cpu_max", &read),
            Some(KnobValue::CpuQuota {
                quota: 20000,
                period: 100000
            })
        );
        assert_eq!(knob_controller("memory_max"), Some("memory"));
        assert_eq!(knob_controller("memory_oom_group"), None);
    }

    #[test]
    fn writes_invert_reads() {
        let quota = KnobValue::CpuQuota {
            quota: 20_000,
            period: 100_000,
        };
        let mem = KnobValue::Int(1 << 20);
        let cases: &[(&str, KnobValue)] = &[
            ("cpu_weight", KnobValue::Int(50)),
            ("cpu_max", quota),
            ("memory_max", KnobValue::Int(1 << 20)),
            ("memory_max", KnobValue::Max),
            ("memory_swap_max", KnobValue::Int(2 << 20)),
            ("pids_max", KnobValue::Int(10)),
            ("pids_max", KnobValue::Max),
            ("io_weight", KnobValue::Int(100)),
            ("cpuset_cpus", KnobValue::Str("0-1".into())),
        ];
        for (key, value) in cases {
            // What a fresh group holds, then what the writes change.
            let mut f: Vec<(&str, String)> = vec![
                ("cpu.cfs_quota_us", "-1".into()),
                ("cpu.cfs_period_us", "100000".into()),
                ("memory.limit_in_bytes", "1048576".into()),
            ];
            f.extend(writes(key, value, Some(&mem)).unwrap());
            let read = |name: &str| {
                let (_, text) = f.iter().rev().find(|(n, _)| *n == name)?;
                Some(format!("{text}\n"))
            };
            assert_eq!(read_knob(key, &read).as_ref(), Some(value), "{key}");
        }
    }

    #[test]
    fn writes_what_v1_files_take() {
        let w = |key, value| writes(key, &value, None);
        assert_eq!(
            w("cpu_weight", KnobValue::Int(100)),
            Ok(vec![("cpu.shares", "1024".into())])
        );
        assert_eq!(
            w("cpu_max", KnobValue::Max),
            Ok(vec![("cpu.cfs_quota_us", "-1".into())])
        );
        assert_eq!(
            w("memory_swap_max", KnobValue::Max),
            Ok(vec![("memory.memsw.limit_in_bytes", "-1".into())])
        );
        assert_eq!(
            w("memory_swap_max", KnobValue::Int(1)),
            Err(WriteError::SwapNeedsMemoryMax)
        );
        assert_eq!(
            writes(
                "memory_swap_max",
                &KnobValue::Int(u64::MAX),
                Some(&KnobValue::Int(u64::MAX))
            ),
            Ok(vec![(
                "memory.memsw.limit_in_bytes",
                "36893488147419103230".into()
            )])
        );
        assert_eq!(
            w("pids_max", KnobValue::Max),
            Ok(vec![("pids.max", "max".into())])
        );
        assert_eq!(
            w("io_weight", KnobValue::Int(1000)),
            Ok(vec![("blkio.weight", "1000".into())])
        );
        assert!(matches!(
            w("io_weight", KnobValue::Int(5)),
            Err(WriteError::OutOfRange(_))
        ));
        assert_eq!(
            w("memory_high", KnobValue::Int(1)),
            Err(WriteError::NoEquivalent)
        );
    }
}
