//! Property tests of the command-line parser (docs/reliability.md,
//! "Fuzzing"): any words parse without panic within a bound, and a valid
//! command line, in any
//! order and spelling, parses back into what it was made from
//! (`config.rs` makes the configurations, `spell.rs` the command lines).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use muontrap_peak_alloc::measure;

pub(crate) mod config;
mod spell;

use proptest::collection::vec;
use proptest::prelude::*;
use spell::{argv, options, style};

use super::*;

/// `parse`'s bound: `BYTES_FACTOR` bytes per byte of input and
/// `WORD_COST` per word (the `Config` copies every word it keeps, some
/// through a String, into vectors that double as they grow) plus `FIXED`
/// for the longest error text (an unknown `--rlimit` lists every
/// resource: about 600 bytes with its arguments). Measured: at most half
/// of this on 20,000 cases.
const BYTES_FACTOR: usize = 4;
const WORD_COST: usize = 64;
const FIXED: usize = 1024;

fn bound(argv: &[OsString]) -> usize {
    let bytes: usize = argv.iter().map(|w| w.len()).sum();
    BYTES_FACTOR * bytes + WORD_COST * argv.len() + FIXED
}

/// Words worth parsing: our options in every spelling, values of the
/// kinds they take, and anything at all, UTF-8 or not.
fn word() -> impl Strategy<Value = OsString> {
    let name = prop::sample::select(
        OPTIONS
            .iter()
            .flat_map(|(long, short, _)| [*long, *short])
            .filter(|n| !n.is_empty())
            .chain(["--", "-", "--frame", "-x"])
            .collect::<Vec<_>>(),
    );
    let value = prop::sample::select(
        &[
            "0",
            "1",
            "16",
            "15",
            "4294967295",
            "4294967296",
            "-5",
            "+5",
            "20",
            "077",
            "0777",
            "1777",
            "TERM",
            "sigkill",
            "RTMIN+2",
            "RTMAX-99",
            "nofile=1:2",
            "nofile=2:1",
            "as=infinity",
            "x=",
            "=",
            "a/b",
            "../a",
            "memory",
            "memory.max=1M",
            "a::b",
            "http",
            "root",
            "1,wheel",
            "",
            "muontrap-1-a",
            "A=b",
            "=x",
        ][..],
    );
    prop_oneof![
        3 => name.clone().prop_map(OsString::from),
        1 => (name, value.clone()).prop_map(|(n, v)| OsString::from(format!("{n}={v}"))),
        3 => value.prop_map(OsString::from),
        1 => ".{0,12}".prop_map(OsString::from),
        1 => vec(any::<u8>(), 0..12).prop_map(OsString::from_vec),
    ]
}

proptest! {
    /// Any words: no panic, an error text for every refusal, memory
    /// within `bound`.
    #[test]
    fn any_words_parse_within_bounds(argv in vec(word(), 0..24)) {
        let (parsed, peak) = measure(|| parse(&argv));
        prop_assert!(peak <= bound(&argv), "{} bytes, bound {}", peak, bound(&argv));
        match parsed {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    /// parse(render(config)) == config, options in any order and spelling.
    #[test]
    fn valid_command_lines_parse_back(
        (c, st, opts) in (config::config(), style()).prop_flat_map(|(c, st)| {
            let opts = options(&c, &st);
            (Just(c), Just(st), Just(opts).prop_shuffle())
        }),
    ) {
        let argv = argv(&c, &st, &opts);
        prop_assert_eq!(parse(&argv), Ok(Parsed::Run(Box::new(c))));
    }
}
