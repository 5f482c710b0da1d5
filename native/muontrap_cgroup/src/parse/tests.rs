use super::psi::tests::PSI;
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
fn cpu_max_as_written() {
    assert_eq!(parse_cpu_max_write("max\n"), Ok((None, None)));
    assert_eq!(parse_cpu_max_write("max 50000"), Ok((None, Some(50000))));
    assert_eq!(parse_cpu_max_write("20000"), Ok((Some(20000), None)));
    assert_eq!(
        parse_cpu_max_write(" 20000 100000\n"),
        Ok((Some(20000), Some(100000)))
    );
    assert_eq!(parse_cpu_max_write(""), Err(ParseError::Empty));
    for bad in ["-1", "max max", "1 2 3", "x", "1 x", "+5"] {
        assert!(parse_cpu_max_write(bad).is_err(), "{bad:?}");
    }
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
