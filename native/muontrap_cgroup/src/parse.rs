//! Parsers for the cgroup v2 interface file formats.
//!
//! Input is whatever the kernel (or a test, or a truncated read) handed us,
//! so every parser returns an error instead of panicking on bad data.
//! Malformed content is always an error, never silently skipped: a half
//! parsed stat map would look valid to callers while being wrong.

use std::fmt;

mod psi;
#[cfg(test)]
mod tests;

pub use psi::{parse_psi, Psi, PsiLine};

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

/// `cpu.max` as written: `"$QUOTA [$PERIOD]"`, quota `max` or an integer.
/// Returns the quota (`None` for `max`) and the period, `None` when left
/// out: the kernel then keeps the group's period.
pub fn parse_cpu_max_write(text: &str) -> Result<(Option<u64>, Option<u64>), ParseError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let (quota, period) = match tokens.as_slice() {
        [] => return Err(ParseError::Empty),
        [quota] => (*quota, None),
        [quota, period] => (*quota, Some(int_token(period)?)),
        _ => return Err(ParseError::TrailingData),
    };
    match limit_token(quota)? {
        Limit::Max => Ok((None, period)),
        Limit::Value(q) => Ok((Some(q), period)),
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
