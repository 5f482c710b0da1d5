//! Reading cgroup v1 files under their v2 names: the settings reported by
//! `cgroup_config` and the statistics reported by `statistics`.
//!
//! The write direction (v2 key → v1 file) lives in `MuonTrap.Cgroup`; the
//! conversions here are its exact inverses (`cpu.shares = weight * 1024 /
//! 100` rounded down, read back rounded up).

use crate::knobs::KnobValue;
use crate::parse::{self, ParseError};
use crate::stats::StatValue;

/// v1 reports "no limit" as the largest page-aligned counter value
/// (`9223372036854771712` with 4 KiB pages); anything this big is `max`.
const UNLIMITED_FROM: u64 = 1 << 62;

/// `USER_HZ`, the unit of `cpuacct.stat`; fixed by the kernel ABI.
const USER_HZ: u64 = 100;

/// `cpu.shares` for a v2 `cpu.weight` (default 100 ↔ 1024).
pub fn shares_from_weight(weight: u64) -> u64 {
    weight * 1024 / 100
}

/// The v2 `cpu.weight` for `cpu.shares`; inverts [`shares_from_weight`].
pub fn weight_from_shares(shares: u64) -> u64 {
    (shares * 100).div_ceil(1024).clamp(1, 10_000)
}

fn int(text: &str) -> Result<i64, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    t.parse().map_err(|_| ParseError::BadLine(1))
}

/// A v1 byte or count limit: `-1` or a huge value means `max`.
pub fn parse_limit(text: &str) -> Result<KnobValue, ParseError> {
    let v = int(text)?;
    Ok(match u64::try_from(v) {
        Ok(v) if v < UNLIMITED_FROM => KnobValue::Int(v),
        _ => KnobValue::Max,
    })
}

/// The v2 settings that have a v1 equivalent, with the controller whose
/// hierarchy holds it.
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
            let quota = int(&read("cpu.cfs_quota_us")?).ok()?;
            let period = parse::parse_u64(&read("cpu.cfs_period_us")?).ok()?;
            Some(match u64::try_from(quota) {
                Ok(quota) => KnobValue::CpuQuota { quota, period },
                Err(_) => KnobValue::Max,
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

/// The controller a v2 statistics file comes from on v1, if it has an
/// equivalent there.
pub fn stat_controller(file: &str) -> Option<&'static str> {
    Some(match file {
        "memory.current" | "memory.peak" | "memory.swap.current" | "memory.events" => "memory",
        "cpu.stat" => "cpuacct",
        "pids.current" | "pids.events" => "pids",
        _ => return None,
    })
}

fn u64_of(read: &dyn Fn(&str) -> Option<String>, file: &str) -> Option<u64> {
    parse::parse_u64(&read(file)?).ok()
}

/// Reads statistics file `file` (a v2 name) from v1 files.
pub fn read_stat(file: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<StatValue> {
    match file {
        "memory.current" => u64_of(read, "memory.usage_in_bytes").map(StatValue::Int),
        "memory.peak" => u64_of(read, "memory.max_usage_in_bytes").map(StatValue::Int),
        "memory.swap.current" => {
            let both = u64_of(read, "memory.memsw.usage_in_bytes")?;
            let mem = u64_of(read, "memory.usage_in_bytes")?;
            Some(StatValue::Int(both.saturating_sub(mem)))
        }
        "memory.events" => {
            let mut events = vec![("max".to_string(), u64_of(read, "memory.failcnt")?)];
            if let Some(oom) = read("memory.oom_control") {
                let pairs = parse::parse_flat_keyed(&oom).unwrap_or_default();
                if let Some((_, n)) = pairs.iter().find(|(k, _)| k == "oom_kill") {
                    events.push(("oom_kill".to_string(), *n));
                }
            }
            Some(StatValue::Flat(events))
        }
        "cpu.stat" => {
            let usage_ns = u64_of(read, "cpuacct.usage")?;
            let mut stat = vec![("usage_usec".to_string(), usage_ns / 1000)];
            if let Some(text) = read("cpuacct.stat") {
                for (k, ticks) in parse::parse_flat_keyed(&text).unwrap_or_default() {
                    let usec = ticks.saturating_mul(1_000_000 / USER_HZ);
                    match k.as_str() {
                        "user" => stat.push(("user_usec".to_string(), usec)),
                        "system" => stat.push(("system_usec".to_string(), usec)),
                        _ => {}
                    }
                }
            }
            if let Some(text) = read("cpu.stat") {
                for (k, v) in parse::parse_flat_keyed(&text).unwrap_or_default() {
                    match k.as_str() {
                        "nr_periods" | "nr_throttled" => stat.push((k, v)),
                        "throttled_time" => stat.push(("throttled_usec".to_string(), v / 1000)),
                        _ => {}
                    }
                }
            }
            Some(StatValue::Flat(stat))
        }
        "pids.current" => u64_of(read, "pids.current").map(StatValue::Int),
        "pids.events" => Some(StatValue::Flat(
            parse::parse_flat_keyed(&read("pids.events")?).ok()?,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn files(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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

    #[test]
    fn limits() {
        assert_eq!(parse_limit("104857600\n"), Ok(KnobValue::Int(104_857_600)));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(KnobValue::Max));
        assert_eq!(parse_limit("-1\n"), Ok(KnobValue::Max));
        assert!(parse_limit("max").is_err());
        assert!(parse_limit("").is_err());
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
    fn stats() {
        let f = files(&[
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.failcnt", "3\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
            ),
            ("cpuacct.usage", "2500000\n"),
            ("cpuacct.stat", "user 1\nsystem 2\n"),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 4\nthrottled_time 7000\n",
            ),
            ("pids.current", "3\n"),
            ("pids.events", "max 2\n"),
        ]);
        let read = |name: &str| f.get(name).cloned();
        assert_eq!(
            read_stat("memory.current", &read),
            Some(StatValue::Int(4096))
        );
        assert_eq!(read_stat("memory.peak", &read), Some(StatValue::Int(8192)));
        assert_eq!(read_stat("memory.swap.current", &read), None);
        assert_eq!(
            read_stat("memory.events", &read),
            Some(StatValue::Flat(vec![
                ("max".into(), 3),
                ("oom_kill".into(), 1)
            ]))
        );
        assert_eq!(
            read_stat("cpu.stat", &read),
            Some(StatValue::Flat(vec![
                ("usage_usec".into(), 2500),
                ("user_usec".into(), 10_000),
                ("system_usec".into(), 20_000),
                ("nr_periods".into(), 10),
                ("nr_throttled".into(), 4),
                ("throttled_usec".into(), 7),
            ]))
        );
        assert_eq!(read_stat("pids.current", &read), Some(StatValue::Int(3)));
        assert_eq!(
            read_stat("pids.events", &read),
            Some(StatValue::Flat(vec![("max".into(), 2)]))
        );
        assert_eq!(read_stat("cgroup.stat", &read), None);
        assert_eq!(stat_controller("cpu.stat"), Some("cpuacct"));
    }
}
