//! `cpu.max` on v1: two files, `cpu.cfs_quota_us` and `cpu.cfs_period_us`,
//! and the order to write them in so that the kernel accepts every step.
//!
//! v2 takes quota and period in one write. On v1 each file is a write of
//! its own, and the kernel checks the pair as it stands after each one
//! (`tg_set_cfs_bandwidth`): a group's ratio quota / period must not
//! exceed its parent's, nor fall below that of a sub-group with a quota of
//! its own. Both the old and the new pair pass; the pair in between is
//! the new value of one file with the old value of the other.

use crate::parse;

use super::{int, UNLIMITED};

pub const QUOTA: &str = "cpu.cfs_quota_us";
pub const PERIOD: &str = "cpu.cfs_period_us";

/// What the two files hold, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// `None`: no limit (`-1`, v2's `max`).
    pub quota: Option<u64>,
    pub period: u64,
}

impl CpuMax {
    /// The text v2's `cpu.max` shows for it.
    pub fn v2_text(&self) -> String {
        match self.quota {
            Some(quota) => format!("{quota} {}\n", self.period),
            None => format!("max {}\n", self.period),
        }
    }
}

/// Reads both files; `None` when either is missing or malformed.
pub fn read(read: &dyn Fn(&str) -> Option<String>) -> Option<CpuMax> {
    let quota = int(&read(QUOTA)?).ok()?;
    let period = parse::parse_u64(&read(PERIOD)?).ok()?;
    Some(CpuMax {
        // Any negative quota is unlimited to the kernel.
        quota: u64::try_from(quota).ok(),
        period,
    })
}

/// The writes that give a group whose quota is `old_quota` (`None`: no
/// limit) the quota `quota` and, when given, the period `period`, in an
/// order the kernel accepts at every step.
///
/// The pair in between never has a higher ratio than both the old and the
/// new pair, so it never gives the group more CPU than before or after and
/// never crosses a parent's limit that the new pair is within:
/// - to no limit, the quota goes first: no limit is valid with any period;
/// - from no limit, the period goes first, for the same reason;
/// - a lower quota goes first, a higher one last.
///
/// When quota and period move the same way, the pair in between has a
/// lower ratio than both: a sub-group of this group with a quota of its own
/// between the two could refuse it. Only a detour through no limit would
/// avoid that, lifting the group's limit for a moment; groups a daemon's
/// command makes with their own CPU quotas are not worth that.
pub fn writes(
    old_quota: Option<u64>,
    quota: Option<u64>,
    period: Option<u64>,
) -> Vec<(&'static str, String)> {
    let quota_text = quota.map_or_else(|| UNLIMITED.to_string(), |q| q.to_string());
    let Some(period) = period else {
        return vec![(QUOTA, quota_text)];
    };
    let quota_first = match (old_quota, quota) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(old), Some(new)) => new < old,
    };
    let quota = (QUOTA, quota_text);
    let period = (PERIOD, period.to_string());
    if quota_first {
        vec![quota, period]
    } else {
        vec![period, quota]
    }
}

#[cfg(test)]
mod tests {
    use super::super::files;
    use super::*;

    #[test]
    fn reads_both_files() {
        let f = files(&[(QUOTA, "20000\n"), (PERIOD, "100000\n")]);
        let got = read(&|name: &str| f.get(name).cloned());
        let want = CpuMax {
            quota: Some(20000),
            period: 100000,
        };
        assert_eq!(got, Some(want));
        assert_eq!(want.v2_text(), "20000 100000\n");
        let f = files(&[(QUOTA, "-1\n"), (PERIOD, "50000\n")]);
        let got = read(&|name: &str| f.get(name).cloned()).unwrap();
        assert_eq!(got.v2_text(), "max 50000\n");
        let f = files(&[(QUOTA, "-1\n")]);
        assert_eq!(read(&|name: &str| f.get(name).cloned()), None);
    }

    /// The kernel's check of one group's pair against a parent's limit
    /// (its ratio) and a sub-group's quota (its ratio), as
    /// `tg_cfs_schedulable_down` does on v1, in exact fractions.
    fn valid(quota: Option<u64>, period: u64, parent: (u64, u64), child: (u64, u64)) -> bool {
        let Some(quota) = quota else { return true };
        let ratio = u128::from(quota) * u128::from(parent.1);
        let within_parent = ratio <= u128::from(parent.0) * u128::from(period);
        let above_child =
            u128::from(quota) * u128::from(child.1) >= u128::from(child.0) * u128::from(period);
        within_parent && above_child
    }

    /// Applies `writes` to `(quota, period)`, checking every step.
    fn apply(
        mut state: (Option<u64>, u64),
        writes: &[(&str, String)],
        parent: (u64, u64),
        child: (u64, u64),
    ) -> bool {
        for (file, text) in writes {
            match *file {
                QUOTA => state.0 = text.parse::<u64>().ok(),
                _ => state.1 = text.parse().unwrap(),
            }
            if !valid(state.0, state.1, parent, child) {
                return false;
            }
        }
        true
    }

    /// Every move between pairs under a parent's limit, as tight as both
    /// pairs allow, passes at every step; the other order fails whenever
    /// the two files move the same way.
    #[test]
    fn every_step_stays_within_the_parents_limit() {
        let values = [1_000u64, 5_000, 10_000, 50_000, 100_000, 1_000_000];
        let no_child = (0, 1);
        for q0 in values {
            for p0 in values {
                for q1 in values {
                    for p1 in values {
                        // The larger of the two ratios: the tightest parent.
                        let parent = if q0 * p1 >= q1 * p0 {
                            (q0, p0)
                        } else {
                            (q1, p1)
                        };
                        let w = writes(Some(q0), Some(q1), Some(p1));
                        let moves = format!("{q0}/{p0} -> {q1}/{p1}");
                        assert!(apply((Some(q0), p0), &w, parent, no_child), "{moves}");
                        let mut reversed = w.clone();
                        reversed.reverse();
                        let same_way = (q1 < q0 && p1 < p0) || (q1 > q0 && p1 > p0);
                        let ok = apply((Some(q0), p0), &reversed, parent, no_child);
                        assert_eq!(ok, !same_way, "reversed {moves}");
                    }
                }
            }
        }
    }

    #[test]
    fn to_and_from_no_limit() {
        let parent = (50_000, 100_000);
        let no_child = (0, 1);
        // From no limit to half of a longer period: the quota first would
        // be a whole period's worth.
        let w = writes(None, Some(100_000), Some(200_000));
        assert_eq!(w[0], (PERIOD, "200000".to_string()));
        assert!(apply((None, 100_000), &w, parent, no_child));
        let w = writes(Some(50_000), None, Some(10_000));
        assert_eq!(w[0], (QUOTA, "-1".to_string()));
        assert!(apply((Some(50_000), 100_000), &w, parent, no_child));
        assert_eq!(
            writes(Some(1), Some(5), None),
            [(QUOTA, "5".to_string())],
            "without a period, the group's is kept"
        );
        assert_eq!(writes(None, None, None), [(QUOTA, "-1".to_string())]);
    }

    /// Opposite moves pass a sub-group's quota too; same-way moves are the
    /// documented exception.
    #[test]
    fn sub_groups_are_respected_when_the_files_move_apart() {
        let parent = (1, 1);
        let child = (50_000, 100_000);
        let w = writes(Some(50_000), Some(60_000), Some(80_000));
        assert!(apply((Some(50_000), 100_000), &w, parent, child));
        let w = writes(Some(50_000), Some(60_000), Some(120_000));
        assert!(!apply((Some(50_000), 100_000), &w, parent, child));
    }
}
