//! The read-only cgroup v2 files reported by `MuonTrap.Daemon.statistics/1`
//! under `:cgroup`, keyed by file name.

use crate::parse::{self, ParseError, Psi};

/// How a statistics file is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// A single unsigned integer.
    Int,
    /// `key value` lines.
    FlatKeyed,
    /// PSI `some`/`full` lines.
    Pressure,
}

/// One statistics file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub file: &'static str,
    pub kind: StatKind,
}

const fn stat(file: &'static str, kind: StatKind) -> Stat {
    Stat { file, kind }
}

/// All files reported by `statistics`, in documentation order.
pub const STATS: &[Stat] = &[
    stat("memory.current", StatKind::Int),
    stat("memory.peak", StatKind::Int),
    stat("memory.swap.current", StatKind::Int),
    stat("memory.events", StatKind::FlatKeyed),
    stat("memory.pressure", StatKind::Pressure),
    stat("cpu.stat", StatKind::FlatKeyed),
    stat("cpu.pressure", StatKind::Pressure),
    stat("io.pressure", StatKind::Pressure),
    stat("pids.current", StatKind::Int),
    stat("pids.peak", StatKind::Int),
    stat("pids.events", StatKind::FlatKeyed),
    stat("cgroup.stat", StatKind::FlatKeyed),
];

/// A parsed statistics value.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    Int(u64),
    Flat(Vec<(String, u64)>),
    Pressure(Psi),
}

impl StatKind {
    pub fn parse(self, text: &str) -> Result<StatValue, ParseError> {
        Ok(match self {
            StatKind::Int => StatValue::Int(parse::parse_u64(text)?),
            StatKind::FlatKeyed => StatValue::Flat(parse::parse_flat_keyed(text)?),
            StatKind::Pressure => StatValue::Pressure(parse::parse_psi(text)?),
        })
    }
}

impl StatValue {
    /// The value as its v2 file shows it.
    pub fn to_file_text(&self) -> String {
        match self {
            StatValue::Int(v) => format!("{v}\n"),
            StatValue::Flat(pairs) => pairs.iter().map(|(k, v)| format!("{k} {v}\n")).collect(),
            StatValue::Pressure(psi) => [("some", &psi.some), ("full", &psi.full)]
                .into_iter()
                .filter_map(|(name, line)| {
                    let l = line.as_ref()?;
                    Some(format!(
                        "{name} avg10={:.2} avg60={:.2} avg300={:.2} total={}\n",
                        l.avg10, l.avg60, l.avg300, l.total
                    ))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_unique() {
        for (i, s) in STATS.iter().enumerate() {
            assert!(
                STATS[i + 1..].iter().all(|o| o.file != s.file),
                "{}",
                s.file
            );
        }
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(StatKind::Int.parse("4096\n"), Ok(StatValue::Int(4096)));
        assert_eq!(
            StatKind::FlatKeyed.parse("nr_descendants 2\nnr_dying_descendants 0\n"),
            Ok(StatValue::Flat(vec![
                ("nr_descendants".into(), 2),
                ("nr_dying_descendants".into(), 0)
            ]))
        );
        let psi = StatKind::Pressure
            .parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
            .unwrap();
        assert!(matches!(
            psi,
            StatValue::Pressure(Psi {
                some: Some(_),
                full: None
            })
        ));
        assert!(StatKind::Int.parse("max\n").is_err());
        // What the kernel writes reads back the same.
        for (kind, text) in [
            (StatKind::Int, "4096\n"),
            (StatKind::FlatKeyed, "usage_usec 10\nuser_usec 7\n"),
            (
                StatKind::Pressure,
                "some avg10=0.12 avg60=1.00 avg300=0.00 total=42\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
            ),
        ] {
            assert_eq!(kind.parse(text).unwrap().to_file_text(), text);
        }
        assert!(StatKind::Pressure.parse("").is_err());
    }
}
