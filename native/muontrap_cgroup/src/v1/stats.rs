//! The statistics files on v1, read under their v2 names.

use crate::parse;
use crate::stats::StatValue;

/// `USER_HZ`, the unit of `cpuacct.stat`; fixed by the kernel ABI.
const USER_HZ: u64 = 100;

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
    use super::super::files;
    use super::*;

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
