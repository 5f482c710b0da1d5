//! Parsers for the cgroup v2 interface file formats.
//!
//! Input is whatever the kernel (or a test, or a truncated read) handed us,
//! so every parser returns an error instead of panicking on bad data.
//! Malformed content is always an error, never silently skipped: a half
//! parsed stat map would look valid to callers while being wrong.

use std::fmt;

/// Why a cgroup file's contents couldn't be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The file was empty or only whitespace where a value was required.
    Empty,
    /// A token that should have been an unsigned integer.
    BadInteger(String),
    /// A token that should have been a finite decimal number.
    BadFloat(String),
    /// A value that should have been `0` or `1`.
    BadBool(String),
    /// A line that doesn't have the expected shape (1-based line number).
    BadLine(usize),
    /// A required field is missing (e.g. PSI `total`, io.weight `default`).
    MissingField(&'static str),
    /// Extra tokens after a single value.
    TrailingData,
    /// A character not allowed in a cpuset range list.
    BadRangeList(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty value"),
            ParseError::BadInteger(s) => write!(f, "invalid integer {s:?}"),
            ParseError::BadFloat(s) => write!(f, "invalid number {s:?}"),
            ParseError::BadBool(s) => write!(f, "invalid boolean {s:?}, expected 0 or 1"),
            ParseError::BadLine(n) => write!(f, "malformed line {n}"),
            ParseError::MissingField(name) => write!(f, "missing field {name:?}"),
            ParseError::TrailingData => f.write_str("unexpected data after value"),
            ParseError::BadRangeList(s) => write!(f, "invalid range list {s:?}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A limit that may be the literal `max` (no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Max,
    Value(u64),
}

/// `cpu.max`: either unlimited or `quota` µs of CPU per `period` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMax {
    Max,
    Quota { quota: u64, period: u64 },
}

/// One line of a PSI pressure file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// A PSI pressure file. `full` is absent for `cpu.pressure` on older
/// kernels, so both halves are optional.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    pub some: Option<PsiLine>,
    pub full: Option<PsiLine>,
}

/// Returns the single whitespace-separated token in `text`.
fn single_token(text: &str) -> Result<&str, ParseError> {
    let mut tokens = text.split_whitespace();
    let first = tokens.next().ok_or(ParseError::Empty)?;
    if tokens.next().is_some() {
        return Err(ParseError::TrailingData);
    }
    Ok(first)
}

fn int_token(token: &str) -> Result<u64, ParseError> {
    // `u64::from_str` accepts a leading '+', which the kernel never writes.
    if token.starts_with('+') {
        return Err(ParseError::BadInteger(token.to_string()));
    }
    token
        .parse()
        .map_err(|_| ParseError::BadInteger(token.to_string()))
}

/// A file holding one unsigned integer, e.g. `memory.current` (`"123\n"`).
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    int_token(single_token(text)?)
}

fn limit_token(token: &str) -> Result<Limit, ParseError> {
    if token == "max" {
        Ok(Limit::Max)
    } else {
        int_token(token).map(Limit::Value)
    }
}

/// A file holding `max` or an integer, e.g. `memory.max`, `pids.max`.
pub fn parse_limit(text: &str) -> Result<Limit, ParseError> {
    limit_token(single_token(text)?)
}

/// A `0`/`1` file such as `cpu.idle` or `memory.oom.group`.
pub fn parse_bool(text: &str) -> Result<bool, ParseError> {
    match single_token(text)? {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(ParseError::BadBool(other.to_string())),
    }
}

/// `cpu.max`: `"$QUOTA $PERIOD"` where quota may be `max`. A bare `max`
/// (the form accepted on write) is tolerated too.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, ParseError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    match tokens.as_slice() {
        [] => Err(ParseError::Empty),
        ["max"] => Ok(CpuMax::Max),
        ["max", period] => int_token(period).map(|_| CpuMax::Max),
        [quota, period] => Ok(CpuMax::Quota {
            quota: int_token(quota)?,
            period: int_token(period)?,
        }),
        [_] => Err(ParseError::MissingField("period")),
        _ => Err(ParseError::TrailingData),
    }
}

/// A flat-keyed file (`"key value\n"` per line, e.g. `cpu.stat`), in file
/// order. Blank lines are ignored; any other line that isn't exactly a key
/// and an unsigned integer fails the whole parse.
pub fn parse_flat_keyed(text: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            [] => {}
            [key, value] => {
                let value = int_token(value).map_err(|_| ParseError::BadLine(i + 1))?;
                out.push(((*key).to_string(), value));
            }
            _ => return Err(ParseError::BadLine(i + 1)),
        }
    }
    Ok(out)
}

/// `io.weight`: `"default 100\n"` optionally followed by per-device
/// `"MAJ:MIN WEIGHT"` lines. Returns the default weight.
pub fn parse_io_weight_default(text: &str) -> Result<u64, ParseError> {
    parse_flat_keyed(text)?
        .into_iter()
        .find(|(k, _)| k == "default")
        .map(|(_, v)| v)
        .ok_or(ParseError::MissingField("default"))
}

/// `cpuset.cpus`/`cpuset.mems`: a range list such as `"0-3,5"`. Returns
/// `None` for an empty file, which means "inherit from parent" (unset).
pub fn parse_range_list(text: &str) -> Result<Option<String>, ParseError> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
    {
        return Err(ParseError::BadRangeList(s.to_string()));
    }
    Ok(Some(s.to_string()))
}

fn float_token(token: &str) -> Result<f64, ParseError> {
    // Rust also parses "inf"/"NaN"; the kernel never writes them and they
    // can't be represented as Erlang floats.
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParseError::BadFloat(token.to_string())),
    }
}

fn parse_psi_fields(fields: &[&str], line_no: usize) -> Result<PsiLine, ParseError> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let (key, value) = field.split_once('=').ok_or(ParseError::BadLine(line_no))?;
        match key {
            "avg10" => avg10 = Some(float_token(value)?),
            "avg60" => avg60 = Some(float_token(value)?),
            "avg300" => avg300 = Some(float_token(value)?),
            "total" => total = Some(int_token(value)?),
            // Unknown fields are ignored so a newer kernel doesn't break us.
            _ => {}
        }
    }
    Ok(PsiLine {
        avg10: avg10.ok_or(ParseError::MissingField("avg10"))?,
        avg60: avg60.ok_or(ParseError::MissingField("avg60"))?,
        avg300: avg300.ok_or(ParseError::MissingField("avg300"))?,
        total: total.ok_or(ParseError::MissingField("total"))?,
    })
}

/// A PSI file (`memory.pressure` etc.):
/// `"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull ...\n"`.
pub fn parse_psi(text: &str) -> Result<Psi, ParseError> {
    let mut psi = Psi::default();
    for (i, line) in text.lines().enumerate() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some((kind, fields)) = tokens.split_first() else {
            continue;
        };
        let parsed = parse_psi_fields(fields, i + 1)?;
        match *kind {
            "some" => psi.some = Some(parsed),
            "full" => psi.full = Some(parsed),
            _ => return Err(ParseError::BadLine(i + 1)),
        }
    }
    if psi.some.is_none() && psi.full.is_none() {
        return Err(ParseError::Empty);
    }
    Ok(psi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_u64("123\n"), Ok(123));
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("18446744073709551615\n"), Ok(u64::MAX));
        assert_eq!(parse_u64(""), Err(ParseError::Empty));
        assert_eq!(parse_u64("\n"), Err(ParseError::Empty));
        assert_eq!(parse_u64("1 2"), Err(ParseError::TrailingData));
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("+1").is_err());
        assert!(parse_u64("12a").is_err());
        assert!(parse_u64("18446744073709551616").is_err());
        assert!(parse_u64("max").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("max\n"), Ok(Limit::Max));
        assert_eq!(parse_limit("1048576\n"), Ok(Limit::Value(1_048_576)));
        assert!(parse_limit("maximum").is_err());
        assert!(parse_limit("").is_err());
        assert!(parse_limit("max max").is_err());
    }

    #[test]
    fn bools() {
        assert_eq!(parse_bool("0\n"), Ok(false));
        assert_eq!(parse_bool("1\n"), Ok(true));
        assert!(parse_bool("2").is_err());
        assert!(parse_bool("true").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(CpuMax::Max));
        assert_eq!(parse_cpu_max("max"), Ok(CpuMax::Max));
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Ok(CpuMax::Quota {
                quota: 50000,
                period: 100000
            })
        );
        assert_eq!(
            parse_cpu_max("50000"),
            Err(ParseError::MissingField("period"))
        );
        assert!(parse_cpu_max("").is_err());
        assert!(parse_cpu_max("max x").is_err());
        assert!(parse_cpu_max("1 2 3").is_err());
        assert!(parse_cpu_max("x 100000").is_err());
    }

    #[test]
    fn flat_keyed() {
        let text = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n";
        assert_eq!(
            parse_flat_keyed(text),
            Ok(vec![
                ("usage_usec".to_string(), 1234),
                ("user_usec".to_string(), 1000),
                ("system_usec".to_string(), 234),
            ])
        );
        assert_eq!(parse_flat_keyed(""), Ok(vec![]));
        assert_eq!(
            parse_flat_keyed("a 1\n\nb 2"),
            Ok(vec![("a".into(), 1), ("b".into(), 2)])
        );
        assert_eq!(parse_flat_keyed("a 1\nb\n"), Err(ParseError::BadLine(2)));
        assert_eq!(parse_flat_keyed("a 1 2\n"), Err(ParseError::BadLine(1)));
        assert_eq!(parse_flat_keyed("a x\n"), Err(ParseError::BadLine(1)));
    }

    #[test]
    fn io_weight() {
        assert_eq!(parse_io_weight_default("default 100\n"), Ok(100));
        assert_eq!(parse_io_weight_default("default 250\n8:0 50\n"), Ok(250));
        assert_eq!(
            parse_io_weight_default("8:0 50\n"),
            Err(ParseError::MissingField("default"))
        );
        assert!(parse_io_weight_default("").is_err());
        assert!(parse_io_weight_default("default\n").is_err());
    }

    #[test]
    fn range_lists() {
        assert_eq!(parse_range_list("0-3,5\n"), Ok(Some("0-3,5".to_string())));
        assert_eq!(parse_range_list("\n"), Ok(None));
        assert_eq!(parse_range_list(""), Ok(None));
        assert!(parse_range_list("0-3;rm").is_err());
    }

    const PSI: &str = "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n\
                       full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n";

    #[test]
    fn psi() {
        let psi = parse_psi(PSI).unwrap();
        assert_eq!(
            psi.some,
            Some(PsiLine {
                avg10: 1.5,
                avg60: 0.25,
                avg300: 0.0,
                total: 12345
            })
        );
        assert_eq!(psi.full.map(|f| f.total), Some(7));
        let some_only = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(some_only.full.is_none());
    }

    #[test]
    fn psi_malformed() {
        assert_eq!(parse_psi(""), Err(ParseError::Empty));
        assert!(parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00\n").is_err());
        assert!(parse_psi("other avg10=0 avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_psi("some avg10=x avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_psi("some avg10=inf avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_psi("some avg10=NaN avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_psi("some avg10 avg60=0 avg300=0 total=0\n").is_err());
        assert!(parse_psi("some avg10=0 avg60=0 avg300=0 total=-1\n").is_err());
        // Unknown fields are tolerated.
        assert!(parse_psi("some avg10=0 avg60=0 avg300=0 total=0 avg900=1\n").is_ok());
    }

    /// Every prefix of valid input must return without panicking.
    #[test]
    fn truncated_inputs_never_panic() {
        let inputs = [
            PSI,
            "usage_usec 1234\nuser_usec 1000\n",
            "max 100000\n",
            "default 100\n8:0 50\n",
            "18446744073709551615\n",
            "0-3,5\n",
        ];
        for input in inputs {
            for end in 0..=input.len() {
                let s = &input[..end];
                let _ = parse_psi(s);
                let _ = parse_flat_keyed(s);
                let _ = parse_cpu_max(s);
                let _ = parse_io_weight_default(s);
                let _ = parse_u64(s);
                let _ = parse_limit(s);
                let _ = parse_bool(s);
                let _ = parse_range_list(s);
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let junk = [
            "\0\0\0",
            "=",
            "some =",
            "some a=b=c",
            "\u{feff}1",
            "é 1",
            "  \t\n \n",
        ];
        for s in junk {
            let _ = parse_psi(s);
            let _ = parse_flat_keyed(s);
            let _ = parse_cpu_max(s);
            let _ = parse_u64(s);
        }
    }
}
