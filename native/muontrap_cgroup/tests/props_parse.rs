//! Property tests of the cgroup interface file parsers (docs/reliability.md,
//! "Fuzzing"): any text parses or fails without panic within a bound, and
//! parse(render(x)) == x for what the kernel writes.

use muontrap_cgroup::parse::*;
use muontrap_peak_alloc::{measure, PeakAlloc};
use proptest::collection::vec;
use proptest::prelude::*;

mod common;
use common::config;

/// The bounds below are measured with this.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Every parser's bound on `len` bytes of input: `PER_BYTE` per byte and
/// `FIXED`. The most is a vector of tokens: a 16-byte `&str` for as
/// little as 2 bytes of input (8 per byte), in a vector that at most
/// doubles as it grows, the old block live while it moves (3x). Measured:
/// at most 8.5 per byte on 3,000 cases.
const PER_BYTE: usize = 24;
const FIXED: usize = 256;

fn bound(text: &str) -> usize {
    PER_BYTE * text.len() + FIXED
}

/// Text worth parsing: the tokens the formats use, separators, and anything.
fn text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(
            &[
                "some",
                "full",
                "avg10=",
                "avg60=",
                "avg300=",
                "total=",
                "max",
                "default",
                "0",
                "1",
                "1.50",
                "-1",
                "+1",
                "inf",
                "NaN",
                "18446744073709551616",
                "0-3,5",
                "=",
            ][..]
        )
        .prop_map(String::from),
        "[0-9]{1,20}",
        ".{0,8}",
    ];
    let sep = prop::sample::select(&[" ", "\n", "\t", "", "  "][..]);
    vec((token, sep), 0..40).prop_map(|t| t.into_iter().map(|(a, b)| a + b).collect())
}

/// Every parser on `text`: no panic, each within `bound`.
fn parse_all(text: &str) -> Result<(), TestCaseError> {
    macro_rules! check {
        ($($f:ident),*) => {$(
            let (_, peak) = measure(|| $f(text));
            prop_assert!(peak <= bound(text), "{}: {} bytes for {:?}", stringify!($f), peak, text);
        )*};
    }
    check!(
        parse_u64,
        parse_limit,
        parse_bool,
        parse_cpu_max,
        parse_flat_keyed,
        parse_io_weight_default,
        parse_range_list,
        parse_psi
    );
    Ok(())
}

/// A PSI average as the kernel prints it (`%lu.%02lu`), and its value.
fn avg() -> impl Strategy<Value = (String, f64)> {
    (0u64..100_000).prop_map(|hundredths| {
        let s = format!("{}.{:02}", hundredths / 100, hundredths % 100);
        let v = s.parse().unwrap_or_default();
        (s, v)
    })
}

fn psi_line() -> impl Strategy<Value = (String, PsiLine)> {
    (avg(), avg(), avg(), any::<u64>()).prop_map(|((s10, a10), (s60, a60), (s300, a300), total)| {
        let text = format!("avg10={s10} avg60={s60} avg300={s300} total={total}");
        let line = PsiLine {
            avg10: a10,
            avg60: a60,
            avg300: a300,
            total,
        };
        (text, line)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_parses_within_bounds(t in text()) {
        parse_all(&t)?;
    }

    #[test]
    fn any_bytes_as_text_parse_within_bounds(t in ".{0,200}") {
        parse_all(&t)?;
    }

    /// `cpu.stat`, `memory.events`...: `key value` lines, blank lines
    /// anywhere, trailing newline or not.
    #[test]
    fn flat_keyed_round_trips(
        entries in vec(("[a-z_.]{1,16}", any::<u64>(), any::<bool>()), 0..24),
        trailing in any::<bool>(),
    ) {
        let mut text = String::new();
        for (k, v, blank) in &entries {
            text.push_str(&format!("{k} {v}\n"));
            if *blank {
                text.push('\n');
            }
        }
        if !trailing {
            text.pop();
        }
        let want: Vec<(String, u64)> = entries.into_iter().map(|(k, v, _)| (k, v)).collect();
        prop_assert_eq!(parse_flat_keyed(&text), Ok(want));
    }

    /// `some` and `full` lines, either or both (in either order).
    #[test]
    fn psi_round_trips(one in psi_line(), other in prop::option::of(psi_line()), swap in any::<bool>()) {
        let (some, full) = if swap { (other, Some(one)) } else { (Some(one), other) };
        let mut text = String::new();
        let mut lines = [("some", &some), ("full", &full)];
        if swap {
            lines.reverse();
        }
        for (kind, line) in lines {
            if let Some((l, _)) = line {
                text.push_str(&format!("{kind} {l}\n"));
            }
        }
        let want = Psi { some: some.map(|(_, l)| l), full: full.map(|(_, l)| l) };
        prop_assert_eq!(parse_psi(&text), Ok(want));
    }

    #[test]
    fn single_values_round_trip(n in any::<u64>(), m in any::<u64>(), b in any::<bool>(), nl in any::<bool>()) {
        let end = if nl { "\n" } else { "" };
        prop_assert_eq!(parse_u64(&format!("{n}{end}")), Ok(n));
        prop_assert_eq!(parse_limit(&format!("{n}{end}")), Ok(Limit::Value(n)));
        prop_assert_eq!(parse_limit(&format!("max{end}")), Ok(Limit::Max));
        prop_assert_eq!(parse_bool(&format!("{}{end}", u8::from(b))), Ok(b));
        prop_assert_eq!(
            parse_cpu_max(&format!("{n} {m}{end}")),
            Ok(CpuMax::Quota { quota: n, period: m })
        );
        prop_assert_eq!(parse_cpu_max(&format!("max {m}{end}")), Ok(CpuMax::Max));
        prop_assert_eq!(parse_io_weight_default(&format!("default {n}\n8:0 {m}{end}")), Ok(n));
    }

    #[test]
    fn range_lists_round_trip(ranges in vec((0u32..1024, 0u32..8), 1..8)) {
        let list: Vec<String> = ranges
            .iter()
            .map(|&(a, n)| if n == 0 { a.to_string() } else { format!("{a}-{}", a + n) })
            .collect();
        let list = list.join(",");
        prop_assert_eq!(parse_range_list(&format!("{list}\n")), Ok(Some(list)));
    }
}
