//! `MuonTrap.Daemon.cgget/2` and `cgset/3` by v2 file name on v1: a
//! setting of the knob table or a file of the statistics table whose
//! controller is bound to v1 is read from, and written to, the v1 files
//! the `:cgroup` option and `statistics/1` use, through the same
//! conversions, and shown as the v2 file shows it.

use crate::knobs::{self, Knob, KnobKind, KnobValue};
use crate::parse;

use super::{cpu_max, knob_controller, read_knob, read_stat, stat_controller, writes};

/// The v1 controller holding the files that v2 file `file` maps to, for
/// the files mapped at all: a file of either table with a v1 equivalent.
pub fn mapped_controller(file: &str) -> Option<&'static str> {
    knobs::by_file(file)
        .and_then(|k| knob_controller(k.key))
        .or_else(|| stat_controller(file))
}

/// The text v2 file `file` would hold, from the v1 files `read` returns
/// (from the hierarchy of each file's controller). `None` when `file` is
/// not mapped, or a v1 file is missing or malformed; and for an empty
/// cpuset list, which has no value (the v1 file reads the same).
pub fn read_v2_text(file: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let Some(knob) = knobs::by_file(file) else {
        return read_stat(file, read).map(|v| v.to_file_text());
    };
    match knob.kind {
        // KnobValue::Max does not keep the period, which v2 shows.
        KnobKind::CpuMax => cpu_max::read(read).map(|c| c.v2_text()),
        KnobKind::IoWeight => {
            read_knob(knob.key, read).map(|v| format!("default {}\n", v.to_file_text()))
        }
        _ => read_knob(knob.key, read).map(|v| format!("{}\n", v.to_file_text())),
    }
}

/// Why [`v2_writes`] gives no writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// `file` is no setting with a v1 equivalent: write it as named.
    NotMapped,
    /// Not a value the `:cgroup` option takes for the setting, or not one
    /// its v1 files can hold (see [`super::WriteError`]).
    Invalid,
}

/// The v1 writes, in order, that set v2 file `file` to `text` (in the
/// forms the v2 file takes when written); `read` reads the group's current
/// v1 files, which some settings depend on.
pub fn v2_writes(
    file: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, SetError> {
    let knob = knobs::by_file(file)
        .filter(|k| knob_controller(k.key).is_some())
        .ok_or(SetError::NotMapped)?;
    if knob.kind == KnobKind::CpuMax {
        return cpu_max_writes(text, read);
    }
    let value = written_value(knob, text).ok_or(SetError::Invalid)?;
    // v1 limits memory and swap together: the swap limit is added to the
    // memory limit in force.
    let memory_max = match knob.key {
        "memory_swap_max" => read_knob("memory_max", read),
        _ => None,
    };
    writes(knob.key, &value, memory_max.as_ref()).map_err(|_| SetError::Invalid)
}

fn cpu_max_writes(
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, SetError> {
    let (quota, period) = parse::parse_cpu_max_write(text).map_err(|_| SetError::Invalid)?;
    if quota == Some(0) || period == Some(0) {
        return Err(SetError::Invalid);
    }
    // Unreadable files make the writes fail anyway; their order then is
    // the one for a group without a quota.
    let old_quota = cpu_max::read(read).and_then(|c| c.quota);
    Ok(cpu_max::writes(old_quota, quota, period))
}

/// `text` as a value of `knob`, in a form its v2 file takes, if valid.
fn written_value(knob: &Knob, text: &str) -> Option<KnobValue> {
    let value = match knob.kind {
        // `N` or `default N`; per-device weights have no v1 equivalent.
        KnobKind::IoWeight => match text.split_whitespace().collect::<Vec<_>>()[..] {
            [w] | ["default", w] => KnobValue::Int(parse::parse_u64(w).ok()?),
            _ => return None,
        },
        kind => kind.parse(text).ok()??,
    };
    knob.kind.accepts(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A v1 group's files; writes change them as the kernel would store
    /// the text (without checking it).
    struct Group(HashMap<String, String>);

    impl Group {
        fn new(pairs: &[(&str, &str)]) -> Self {
            Group(super::super::files(pairs))
        }

        fn get(&self, file: &str) -> Option<String> {
            read_v2_text(file, &|name: &str| self.0.get(name).cloned())
        }

        fn set(&mut self, file: &str, text: &str) -> Result<(), SetError> {
            let files = self.0.clone();
            let w = v2_writes(file, text, &|name: &str| files.get(name).cloned())?;
            for (name, text) in w {
                self.0.insert(name.to_string(), format!("{text}\n"));
            }
            Ok(())
        }
    }

    fn fresh() -> Group {
        Group::new(&[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "4096\n"),
            ("pids.max", "max\n"),
            ("blkio.weight", "100\n"),
            ("cpuset.cpus", "0-1\n"),
            ("cpuset.mems", "\n"),
        ])
    }

    #[test]
    fn reads_show_the_v2_text() {
        let g = fresh();
        let get = |file| g.get(file);
        assert_eq!(get("cpu.weight").as_deref(), Some("100\n"));
        assert_eq!(get("cpu.max").as_deref(), Some("max 100000\n"));
        assert_eq!(get("memory.max").as_deref(), Some("max\n"));
        assert_eq!(get("memory.swap.max").as_deref(), Some("max\n"));
        assert_eq!(get("memory.current").as_deref(), Some("4096\n"));
        assert_eq!(get("pids.max").as_deref(), Some("max\n"));
        assert_eq!(get("io.weight").as_deref(), Some("default 100\n"));
        assert_eq!(get("cpuset.cpus").as_deref(), Some("0-1\n"));
        // Empty: the caller reads the v1 file of the same name.
        assert_eq!(get("cpuset.mems"), None);
        // Not in either table, or not mapped to v1.
        assert_eq!(get("memory.high"), None);
        assert_eq!(get("memory.limit_in_bytes"), None);
        assert_eq!(get("cgroup.procs"), None);
    }

    #[test]
    fn writes_convert_and_read_back() {
        let mut g = fresh();
        let cases = [
            ("cpu.weight", "50", "50\n", "cpu.shares", "512\n"),
            (
                "cpu.max",
                "20000 50000\n",
                "20000 50000\n",
                "cpu.cfs_quota_us",
                "20000\n",
            ),
            ("cpu.max", "max", "max 50000\n", "cpu.cfs_quota_us", "-1\n"),
            (
                "cpu.max",
                "30000",
                "30000 50000\n",
                "cpu.cfs_period_us",
                "50000\n",
            ),
            (
                "cpu.max",
                "max 100000",
                "max 100000\n",
                "cpu.cfs_period_us",
                "100000\n",
            ),
            (
                "memory.max",
                "1048576",
                "1048576\n",
                "memory.limit_in_bytes",
                "1048576\n",
            ),
            (
                "memory.swap.max",
                "1024",
                "1024\n",
                "memory.memsw.limit_in_bytes",
                "1049600\n",
            ),
            (
                "memory.swap.max",
                "max",
                "max\n",
                "memory.memsw.limit_in_bytes",
                "-1\n",
            ),
            (
                "memory.max",
                "max\n",
                "max\n",
                "memory.limit_in_bytes",
                "-1\n",
            ),
            ("pids.max", "10", "10\n", "pids.max", "10\n"),
            (
                "io.weight",
                "default 200",
                "default 200\n",
                "blkio.weight",
                "200\n",
            ),
            ("io.weight", "300", "default 300\n", "blkio.weight", "300\n"),
            ("cpuset.cpus", "1", "1\n", "cpuset.cpus", "1\n"),
        ];
        for (file, text, v2, v1_file, v1) in cases {
            assert_eq!(g.set(file, text), Ok(()), "{file} {text:?}");
            assert_eq!(g.get(file).as_deref(), Some(v2), "{file} {text:?}");
            assert_eq!(g.0[v1_file], v1, "{file} {text:?}");
        }
    }

    #[test]
    fn refuses_what_the_option_refuses() {
        let mut g = fresh();
        for (file, text) in [
            ("cpu.weight", "0"),
            ("cpu.weight", "max"),
            ("cpu.max", "0 100000"),
            ("cpu.max", "1000 0"),
            ("cpu.max", "-1"),
            ("memory.max", "1G"),
            ("memory.max", ""),
            ("io.weight", "5"),
            ("io.weight", "8:0 100"),
            ("cpuset.cpus", "0-3;x"),
            ("cpuset.cpus", ""),
            // Unlimited memory: no memory limit to add the swap to.
            ("memory.swap.max", "1024"),
        ] {
            assert_eq!(g.set(file, text), Err(SetError::Invalid), "{file} {text:?}");
        }
        for file in [
            "memory.high",
            "memory.current",
            "cpu.stat",
            "cpu.cfs_quota_us",
        ] {
            assert_eq!(g.set(file, "1"), Err(SetError::NotMapped), "{file}");
        }
    }

    #[test]
    fn a_lower_quota_goes_first() {
        let mut g = fresh();
        g.set("cpu.max", "50000 100000").unwrap();
        let files = g.0.clone();
        let read = |name: &str| files.get(name).cloned();
        let w = v2_writes("cpu.max", "5000 10000", &read).unwrap();
        assert_eq!(w[0], ("cpu.cfs_quota_us", "5000".to_string()));
        let w = v2_writes("cpu.max", "100000 200000", &read).unwrap();
        assert_eq!(w[0], ("cpu.cfs_period_us", "200000".to_string()));
    }

    #[test]
    fn controllers() {
        assert_eq!(mapped_controller("memory.max"), Some("memory"));
        assert_eq!(mapped_controller("memory.current"), Some("memory"));
        assert_eq!(mapped_controller("cpu.stat"), Some("cpuacct"));
        assert_eq!(mapped_controller("io.weight"), Some("blkio"));
        assert_eq!(mapped_controller("memory.high"), None);
        assert_eq!(mapped_controller("memory.pressure"), None);
        assert_eq!(mapped_controller("memory.usage_in_bytes"), None);
    }
}
