//! Property tests of the settings and statistics read back from cgroup
//! files (docs/reliability.md, "Fuzzing"), v2 and v1: whatever the files
//! hold, no panic.

use std::collections::HashMap;

use muontrap_cgroup::knobs::KNOBS;
use muontrap_cgroup::stats::STATS;
use muontrap_cgroup::v1::{read_knob, read_stat, read_v2_text, v2_writes};
use proptest::collection::vec;
use proptest::prelude::*;

mod common;
use common::config;

/// Every file the v1 readers open.
const V1_FILES: &[&str] = &[
    "cpu.shares",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "pids.max",
    "blkio.weight",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.memsw.usage_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "cpuacct.usage",
    "cpuacct.stat",
    "pids.current",
    "pids.events",
];

/// File contents worth reading: numbers of every size and sign, `max`,
/// flat-keyed lines, anything.
fn contents() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| format!("{n}\n")),
        any::<i64>().prop_map(|n| format!("{n}\n")),
        Just("max\n".to_string()),
        vec(("[a-z_]{1,8}", any::<u64>()), 0..4)
            .prop_map(|l| l.iter().map(|(k, v)| format!("{k} {v}\n")).collect()),
        ".{0,24}",
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any contents in any file: every setting and statistic reads back
    /// (or not) without a panic, v2 and v1; under their v2 names too, and
    /// any value written to any of them (cgget/cgset on v1).
    #[test]
    fn any_file_contents_read_without_panic(
        texts in vec(prop::option::of(contents()), V1_FILES.len()),
        v2 in contents(),
    ) {
        let files: HashMap<&str, String> = V1_FILES
            .iter()
            .zip(texts)
            .filter_map(|(f, t)| Some((*f, t?)))
            .collect();
        let read = |f: &str| files.get(f).cloned();
        for k in KNOBS {
            let _ = k.kind.parse(&v2);
            let _ = read_knob(k.key, &read);
            let _ = read_v2_text(k.file, &read);
            let _ = v2_writes(k.file, &v2, &read);
        }
        for s in STATS {
            let _ = s.kind.parse(&v2);
            let _ = read_stat(s.file, &read);
            let _ = read_v2_text(s.file, &read);
            let _ = v2_writes(s.file, &v2, &read);
        }
    }
}
