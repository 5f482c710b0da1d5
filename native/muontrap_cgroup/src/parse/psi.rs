//! PSI pressure files (`memory.pressure`, `cpu.pressure`, `io.pressure`).

use super::{int_token, ParseError};

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
pub(super) mod tests {
    use super::*;

    pub(in crate::parse) const PSI: &str = "some avg10=1.50 avg60=0.25 avg300=0.00 total=12345\n\
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
}
