//! Property test of the `/proc/<pid>/stat` parser (docs/reliability.md,
//! "Fuzzing"): the command name is the process's to choose, so any bytes
//! there must leave the fields after it readable, and nothing may panic.

use muontrap_peak_alloc::measure;
use proptest::collection::vec;
use proptest::prelude::*;

use super::parse_stat;

/// What the kernel writes after `pid (comm) `: state, ppid, pgrp and the
/// rest, decimal numbers.
fn tail() -> impl Strategy<Value = (u8, i32, i32, Vec<i64>)> {
    let state = prop::sample::select(&b"RSDZTtXI"[..]);
    (state, 0..=i32::MAX, 0..=i32::MAX, vec(any::<i64>(), 0..40))
}

proptest! {
    /// Any command name (up to the kernel's 15 bytes, anything but NUL):
    /// the ppid and pgrp after it come out right, without allocating.
    #[test]
    fn any_command_name_leaves_the_fields_readable(
        pid in 1..=i32::MAX,
        comm in vec(1..=u8::MAX, 0..=15),
        (state, ppid, pgrp, rest) in tail(),
    ) {
        let mut stat = format!("{pid} (").into_bytes();
        stat.extend(&comm);
        stat.extend(format!(") {} {ppid} {pgrp}", state as char).into_bytes());
        for n in rest {
            stat.extend(format!(" {n}").into_bytes());
        }
        stat.push(b'\n');
        let (parsed, peak) = measure(|| parse_stat(&stat));
        prop_assert_eq!(peak, 0);
        prop_assert_eq!(parsed, Some((ppid, pgrp)));
    }

    /// Any bytes at all: no panic, no allocation.
    #[test]
    fn any_bytes_parse_without_panic(stat in vec(any::<u8>(), 0..200)) {
        let (_, peak) = measure(|| parse_stat(&stat));
        prop_assert_eq!(peak, 0);
    }
}
