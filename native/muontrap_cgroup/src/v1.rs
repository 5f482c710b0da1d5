//! cgroup v1 files under their v2 names: the settings of the `:cgroup`
//! option (written, and read back by `cgroup_config`), the statistics
//! reported by `statistics`, and both by v2 file name for `cgget` and
//! `cgset` (`v2_names`).
//!
//! Both directions of every conversion live here, so each is the exact
//! inverse of the other (`cpu.shares = weight * 1024 / 100` rounded down,
//! read back rounded up).

use crate::knobs::KnobValue;
use crate::parse::ParseError;

pub mod cpu_max;
mod settings;
mod stats;
mod v2_names;

pub use settings::WriteError;
pub use settings::{knob_controller, read_knob, shares_from_weight, weight_from_shares, writes};
pub use stats::{read_stat, stat_controller};
pub use v2_names::{mapped_controller, read_v2_text, v2_writes, SetError};

/// v1 reports "no limit" as the largest page-aligned counter value
/// (`9223372036854771712` with 4 KiB pages); anything this big is `max`.
const UNLIMITED_FROM: u64 = 1 << 62;

/// What v1 reads back; v2 says `max` instead.
const UNLIMITED: &str = "-1";

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

#[cfg(test)]
fn files(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit("104857600\n"), Ok(KnobValue::Int(104_857_600)));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(KnobValue::Max));
        assert_eq!(parse_limit("-1\n"), Ok(KnobValue::Max));
        assert!(parse_limit("max").is_err());
        assert!(parse_limit("").is_err());
    }
}
