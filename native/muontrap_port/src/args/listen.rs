//! `--listen-fdnames NAMES`: the names systemd would put in
//! `LISTEN_FDNAMES`, one per handed-over LISTEN socket. Their count is
//! checked against the descriptors once they arrive (`handover.rs`).

use super::ArgError;

/// systemd's limit for a file descriptor name.
const MAX_NAME: usize = 255;

/// Colon-separated names, each 1 to 255 printable ASCII bytes other than
/// ':' (as systemd's `fdname_is_valid`, which the program may apply).
pub(super) fn parse_fdnames(value: &str) -> Result<Vec<String>, ArgError> {
    let bad = |reason: String| ArgError::BadListenFdnames {
        value: value.to_string(),
        reason,
    };
    let mut names = Vec::new();
    for (i, name) in value.split(':').enumerate() {
        let n = i + 1;
        if name.is_empty() {
            return Err(bad(format!("name {n} is empty")));
        }
        if name.len() > MAX_NAME {
            return Err(bad(format!("name {n} is longer than {MAX_NAME} bytes")));
        }
        if !name.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad(format!(
                "name {n} has a character other than printable ASCII (no spaces)"
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Parsed};
    use super::*;
    use std::ffi::OsString;

    fn names(v: &str) -> Result<Vec<String>, ArgError> {
        parse_fdnames(v)
    }

    fn reason(v: &str) -> String {
        match names(v) {
            Err(ArgError::BadListenFdnames { value, reason }) => {
                assert_eq!(value, v);
                reason
            }
            other => panic!("{v:?}: {other:?}"),
        }
    }

    #[test]
    fn valid_names() {
        assert_eq!(names("http"), Ok(vec!["http".to_string()]));
        assert_eq!(
            names("http:https:x"),
            Ok(vec!["http".into(), "https".into(), "x".into()])
        );
        // The whole printable range but ':' is allowed, duplicates too.
        let every: String = (0x21u8..=0x7e)
            .filter(|&b| b != b':')
            .map(char::from)
            .collect();
        assert_eq!(names(&every), Ok(vec![every.clone()]));
        assert_eq!(names("a:a"), Ok(vec!["a".into(), "a".into()]));
        let longest = "n".repeat(MAX_NAME);
        assert_eq!(names(&longest), Ok(vec![longest.clone()]));
    }

    #[test]
    fn invalid_names() {
        for (v, want) in [
            ("", "name 1 is empty"),
            (":", "name 1 is empty"),
            ("a:", "name 2 is empty"),
            ("a::b", "name 2 is empty"),
            (":a", "name 1 is empty"),
            (
                "a b",
                "name 1 has a character other than printable ASCII (no spaces)",
            ),
            (
                "a:b\tc",
                "name 2 has a character other than printable ASCII (no spaces)",
            ),
            (
                "a:\u{7f}",
                "name 2 has a character other than printable ASCII (no spaces)",
            ),
            (
                "caf\u{e9}",
                "name 1 has a character other than printable ASCII (no spaces)",
            ),
        ] {
            assert_eq!(reason(v), want, "{v:?}");
        }
        let long = format!("a:{}", "n".repeat(MAX_NAME + 1));
        assert_eq!(reason(&long), "name 2 is longer than 255 bytes");
        assert_eq!(
            names("a b").unwrap_err().to_string(),
            "invalid --listen-fdnames 'a b': name 1 has a character other than \
             printable ASCII (no spaces)"
        );
    }

    fn run(a: &[&str]) -> Result<Parsed, ArgError> {
        parse(&a.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn on_the_command_line() {
        let Ok(Parsed::Run(cfg)) = run(&["--handover", "h", "--listen-fdnames=a:b", "x"]) else {
            panic!("refused");
        };
        assert_eq!(cfg.listen_fdnames, Some(vec!["a".into(), "b".into()]));
        let Ok(Parsed::Run(cfg)) = run(&["--handover", "h", "x"]) else {
            panic!("refused");
        };
        assert_eq!(cfg.listen_fdnames, None);
        assert_eq!(
            run(&["--listen-fdnames", "a", "x"]),
            Err(ArgError::NeedsHandover("--listen-fdnames"))
        );
        assert_eq!(
            ArgError::NeedsHandover("--listen-fdnames").to_string(),
            "--listen-fdnames needs --handover"
        );
        let twice = [
            "--handover",
            "h",
            "--listen-fdnames",
            "a",
            "--listen-fdnames",
            "a",
            "x",
        ];
        assert_eq!(run(&twice), Err(ArgError::Duplicate("--listen-fdnames")));
        assert!(matches!(
            run(&["--handover", "h", "--listen-fdnames", "a::b", "x"]),
            Err(ArgError::BadListenFdnames { .. })
        ));
        // A value, even when it looks like an option.
        assert!(matches!(
            run(&["--handover", "h", "--listen-fdnames", "--framed", "x"]),
            Ok(Parsed::Run(_))
        ));
    }
}
