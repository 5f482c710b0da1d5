//! The BEAM's environment as the NIF receives it from
//! `MuonTrap.PortBinary`: one binary, each name and value followed by a
//! NUL, each byte one code point below 256. `:erlang.iolist_to_binary/1`
//! makes it from `:os.env/0`'s lists in one call; converting the lists
//! one by one took a large share of a start (docs/performance.md,
//! round 13). An environment with a code point above 255 cannot be packed
//! so and comes as pairs of binaries instead.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use crate::Bytes;

/// The `(name, value)` pairs of `packed`, code points from 128 encoded in
/// UTF-8 (as `List.to_string/1` encodes them); `None` unless every name
/// and value ends with a NUL.
pub fn unpack_latin1(packed: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let Some((&0, body)) = packed.split_last() else {
        return packed.is_empty().then(Vec::new);
    };
    let mut fields = body.split(|&b| b == 0).map(utf8_of_latin1);
    let mut pairs = Vec::new();
    while let Some(name) = fields.next() {
        pairs.push((name, fields.next()?));
    }
    Some(pairs)
}

fn utf8_of_latin1(field: &[u8]) -> Bytes {
    if field.is_ascii() {
        return Bytes(OsString::from_vec(field.to_vec()));
    }
    let text: String = field.iter().map(|&b| char::from(b)).collect();
    Bytes(OsString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn pack(pairs: &[(String, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            for s in [name, value] {
                out.extend(s.chars().map(|c| c as u8));
                out.push(0);
            }
        }
        out
    }

    #[test]
    fn ascii_and_latin1_code_points() {
        let packed = b"A\x001\x00B\x00caf\xe9\x00";
        let pairs = unpack_latin1(packed).expect("well formed");
        assert_eq!(
            pairs,
            vec![("A".into(), "1".into()), ("B".into(), "café".into())]
        );
        assert_eq!(unpack_latin1(b""), Some(vec![]));
        assert_eq!(
            unpack_latin1(b"A\x00\x00"),
            Some(vec![("A".into(), "".into())])
        );
    }

    #[test]
    fn a_name_without_its_value_or_its_nul_is_refused() {
        assert_eq!(unpack_latin1(b"A\x00"), None);
        assert_eq!(unpack_latin1(b"A\x001"), None);
        assert_eq!(unpack_latin1(b"A\x001\x00B\x00"), None);
    }

    proptest! {
        #[test]
        fn unpacks_what_was_packed(pairs in vec(("[^\u{0}]{0,8}", "[^\u{0}]{0,8}").prop_map(|(a, b): (String, String)| {
            let latin1 = |s: String| s.chars().map(|c| char::from((c as u32 % 255 + 1) as u8)).collect::<String>();
            (latin1(a), latin1(b))
        }), 0..6)) {
            let got = unpack_latin1(&pack(&pairs)).expect("well formed");
            let want: Vec<(Bytes, Bytes)> = pairs.iter().map(|(a, b)| (a.as_str().into(), b.as_str().into())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn any_bytes_unpack_or_are_refused(bytes in vec(any::<u8>(), 0..64)) {
            if let Some(pairs) = unpack_latin1(&bytes) {
                prop_assert_eq!(bytes.iter().filter(|&&b| b == 0).count(), pairs.len() * 2);
            }
        }
    }
}
