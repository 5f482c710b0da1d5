//! The binary form: round trips of any command, and arbitrary bytes
//! decoded without panic within an allocation bound (docs/reliability.md,
//! "Fuzzing").

use proptest::collection::vec;
use proptest::prelude::*;

use muontrap_peak_alloc::measure;

use crate::cli::props::config::{command, layout};
use crate::wire::{decode, encode, Wire, WireError, VERSION};
use crate::{
    Bytes, Capture, Command, EnvBlock, Hierarchy, IdSpec, Layout, Rlimit, Rlimits, Signal,
};

/// What decoding may allocate: every element takes at least one byte of
/// input and at most 48 bytes of memory (an environment pair) besides
/// the bytes it copies, so 64 per input byte and a little fixed.
fn bound(input: usize) -> usize {
    64 * input + 1024
}

#[test]
fn the_default_round_trips() {
    let c = Command::default();
    assert_eq!(decode(&encode(&c)), Ok(c));
}

#[test]
fn a_full_command_round_trips() {
    let c = Command {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), Bytes::from("echo hi")],
        capture: Capture::StdoutAndStderr,
        stop_signal: Signal(libc::SIGUSR1),
        uid: Some(IdSpec::Name("nobody".into())),
        supplementary_groups: Some(vec![IdSpec::Id(5), IdSpec::Name("a".into())]),
        umask: Some(0o22),
        nice: Some(-5),
        rlimits: Rlimits(vec![Rlimit {
            resource: crate::RESOURCES[3].1,
            soft: 1,
            hard: crate::INFINITY,
        }]),
        env: vec![("A".into(), None), ("B".into(), Some("".into()))],
        base_env: EnvBlock::from_latin1(b"PATH=/bin\0A=caf\xe9\0E=\0"),
        cgroup_path: Some("a/b".into()),
        cgroup_layout: Some(hybrid()),
        ..Command::default()
    };
    let bytes = encode(&c);
    assert_eq!(bytes[..4], VERSION.to_le_bytes());
    assert_eq!(decode(&bytes), Ok(c));
}

/// This machine's kind of host: v1 controllers, controller-less cgroup2.
fn hybrid() -> Layout {
    Layout {
        v2: Some(Hierarchy {
            version: 2,
            mount_point: "/sys/fs/cgroup/unified".into(),
            controllers: vec![],
            own: Some(String::new()),
        }),
        v1: vec![Hierarchy {
            version: 1,
            mount_point: "/sys/fs/cgroup/memory".into(),
            controllers: vec!["memory".into()],
            own: None,
        }],
    }
}

#[test]
fn a_layout_keeps_its_bytes() {
    let mut out = Vec::new();
    hybrid().v1[0].put(&mut out);
    let mut expected = vec![1];
    expected.extend(21u32.to_le_bytes());
    expected.extend(b"/sys/fs/cgroup/memory");
    expected.extend(1u32.to_le_bytes());
    expected.extend(6u32.to_le_bytes());
    expected.extend(b"memory");
    expected.push(0);
    assert_eq!(out, expected);
}

#[test]
fn a_hierarchy_version_other_than_1_or_2_is_refused() {
    let c = Command {
        cgroup_layout: Some(hybrid()),
        ..Command::default()
    };
    let plain = encode(&Command::default());
    let mut bytes = encode(&c);
    // The layout is the only difference: its first hierarchy's version
    // follows the option byte of the layout and that of its v2.
    let at = plain
        .iter()
        .zip(&bytes)
        .position(|(a, b)| a != b)
        .expect("the layout is encoded")
        + 2;
    assert_eq!(bytes[at], 2);
    bytes[at] = 3;
    assert_eq!(decode(&bytes), Err(WireError::Tag("cgroup version", 3)));
}

#[test]
fn the_version_follows_the_fields() {
    assert!(Command::LAYOUT.starts_with("program:Bytes;args:Vec<Bytes>;"));
    assert!(Command::LAYOUT.ends_with("window:u32;"));
    assert!(Command::LAYOUT.contains("cgroup_layout:Option<Layout>;"));
    assert_ne!(VERSION, 0);
}

#[test]
fn refuses_other_versions_truncation_and_trailing_bytes() {
    let mut bytes = encode(&Command::default());
    assert_eq!(decode(&[]), Err(WireError::Truncated));
    assert_eq!(decode(&bytes[..bytes.len() - 1]), Err(WireError::Truncated));
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(WireError::Trailing(1)));
    bytes[0] ^= 1;
    assert!(matches!(decode(&bytes), Err(WireError::Version(_))));
    assert!(decode(&bytes).unwrap_err().to_string().contains("version"));
}

#[test]
fn an_environment_entry_without_its_equals_sign_is_refused() {
    let good = Command {
        base_env: EnvBlock::from_pairs([("A", "1")]),
        ..Command::default()
    };
    let bytes = encode(&good);
    let at = bytes
        .windows(4)
        .position(|w| w == b"A=1\0")
        .expect("the entry is in the encoding");
    let mut bad = bytes.clone();
    bad[at + 1] = b'_';
    assert_eq!(decode(&bad), Err(WireError::BadEnv));
    bad[at + 1] = b'=';
    bad[at + 3] = b'1';
    assert_eq!(decode(&bad), Err(WireError::BadEnv));
    assert_eq!(decode(&bytes), Ok(good));
}

#[test]
fn a_count_larger_than_the_input_allocates_nothing() {
    // Version, then a program claiming 4 GiB.
    let mut bytes = VERSION.to_le_bytes().to_vec();
    bytes.extend([0xff, 0xff, 0xff, 0xff, b'x']);
    let (result, peak) = measure(|| decode(&bytes));
    assert_eq!(result, Err(WireError::Truncated));
    assert!(peak <= bound(bytes.len()), "{peak}");
}

proptest! {
    #[test]
    fn any_command_round_trips(c in command()) {
        prop_assert_eq!(decode(&encode(&c)), Ok(c));
    }

    /// With a layout always there (`command()` has one half the time).
    #[test]
    fn any_command_with_a_layout_round_trips(c in command(), l in layout()) {
        let c = Command { cgroup_layout: Some(l), ..c };
        prop_assert_eq!(decode(&encode(&c)), Ok(c));
    }

    /// A valid encoding with bytes flipped: no panic, and memory within
    /// `bound`.
    #[test]
    fn damaged_encodings_decode_within_bounds(
        c in command(),
        flips in vec(any::<(usize, u8)>(), 1..4),
    ) {
        let mut bytes = encode(&c);
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        check_bounded(&bytes)?;
    }

    /// Any bytes after the version byte.
    #[test]
    fn any_bytes_decode_within_bounds(bytes in vec(any::<u8>(), 0..256)) {
        let mut input = VERSION.to_le_bytes().to_vec();
        input.extend(bytes);
        check_bounded(&input)?;
    }
}

fn check_bounded(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, peak) = measure(|| decode(bytes));
    prop_assert!(
        peak <= bound(bytes.len()),
        "{} bytes for {} of input",
        peak,
        bytes.len()
    );
    if let Err(e) = result {
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}
