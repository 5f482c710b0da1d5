//! The environment a program starts from, in the form `execve` takes it:
//! `NAME=VALUE` entries, each followed by a NUL. It goes from the BEAM to
//! the supervisor as one byte string, and the supervisor points `envp`
//! into it: no pair of strings is made per variable on either side
//! (docs/performance.md, round 17).
//!
//! `MuonTrap.PortBinary` packs `:os.env/0`'s lists into that form with
//! `:erlang.iolist_to_binary/1`, one byte per code point; the NIF turns
//! code points from 128 into UTF-8 (`List.to_string/1`'s encoding). An
//! environment with a code point above 255 cannot be packed so and comes
//! as pairs of binaries instead. A name never holds `=` (`os:putenv/2`
//! refuses one), so an entry splits at its first `=`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `NAME=VALUE\0` entries, in order. Every entry holds a `=`; nothing
/// holds a NUL but the terminators. Empty: no variable at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvBlock(Vec<u8>);

impl EnvBlock {
    /// `bytes` if they are well formed: empty, or entries that each hold
    /// a `=` and end with a NUL.
    pub fn from_entries(bytes: Vec<u8>) -> Option<EnvBlock> {
        let Some((&0, body)) = bytes.split_last() else {
            return bytes.is_empty().then(EnvBlock::default);
        };
        body.split(|&b| b == 0)
            .all(|entry| entry.contains(&b'='))
            .then_some(EnvBlock(bytes))
    }

    /// `packed` (entries as above, one byte per code point below 256),
    /// with code points from 128 encoded in UTF-8.
    pub fn from_latin1(packed: &[u8]) -> Option<EnvBlock> {
        if packed.is_ascii() {
            return EnvBlock::from_entries(packed.to_vec());
        }
        let mut utf8 = Vec::with_capacity(packed.len() + packed.len() / 4);
        let mut buf = [0u8; 2];
        for &b in packed {
            utf8.extend_from_slice(char::from(b).encode_utf8(&mut buf).as_bytes());
        }
        EnvBlock::from_entries(utf8)
    }

    /// The `(name, value)` pairs as one block; `None` if a name is
    /// empty or holds a `=`, or either holds a NUL.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Option<EnvBlock>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            if name.is_empty() || name.contains(&b'=') || name.contains(&0) || value.contains(&0) {
                return None;
            }
            out.extend_from_slice(name);
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(0);
        }
        Some(EnvBlock(out))
    }

    /// The entries and their terminators, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Each `NAME=VALUE`, without its NUL.
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.0.split_last().map_or(&[][..], |(_, body)| body);
        body.split(|&b| b == 0).filter(|_| !self.0.is_empty())
    }

    /// The value of the first entry named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&OsStr> {
        self.entries()
            .find(|e| entry_name(e) == name)
            .map(|e| OsStr::from_bytes(&e[name.len() + 1..]))
    }
}

/// An entry's name: what comes before its first `=`.
pub fn entry_name(entry: &[u8]) -> &[u8] {
    let end = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    &entry[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn entries(block: &EnvBlock) -> Vec<String> {
        block
            .entries()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    }

    #[test]
    fn ascii_and_latin1_code_points() {
        let block = EnvBlock::from_latin1(b"A=1\0B=caf\xe9\0C==x\0").expect("well formed");
        assert_eq!(entries(&block), ["A=1", "B=café", "C==x"]);
        assert_eq!(block.get(b"B"), Some(OsStr::new("café")));
        assert_eq!(block.get(b"C"), Some(OsStr::new("=x")));
        assert_eq!(block.get(b"D"), None);
        assert_eq!(EnvBlock::from_latin1(b""), Some(EnvBlock::default()));
        assert_eq!(EnvBlock::default().entries().count(), 0);
        // An empty name: os:putenv("", "x") makes one.
        let block = EnvBlock::from_latin1(b"=x\0A=\0").expect("well formed");
        assert_eq!(entries(&block), ["=x", "A="]);
        assert_eq!(block.get(b""), Some(OsStr::new("x")));
        assert_eq!(block.get(b"A"), Some(OsStr::new("")));
    }

    #[test]
    fn an_entry_without_its_equals_sign_or_its_nul_is_refused() {
        for bad in [&b"A\0"[..], b"A=1", b"A=1\0B\0", b"\0", b"A=1\0\0"] {
            assert_eq!(EnvBlock::from_entries(bad.to_vec()), None, "{bad:?}");
        }
    }

    #[test]
    fn pairs_become_entries_and_bad_names_are_refused() {
        let block = EnvBlock::from_pairs([("A", "1"), ("B", "x=y")]).expect("good");
        assert_eq!(block.as_bytes(), b"A=1\0B=x=y\0");
        assert_eq!(EnvBlock::from_pairs([("A=B", "1")]), None);
        assert_eq!(EnvBlock::from_pairs([("", "1")]), None);
        assert_eq!(EnvBlock::from_pairs([("A", "1\0")]), None);
        assert_eq!(
            EnvBlock::from_pairs(Vec::<(&str, &str)>::new()),
            Some(EnvBlock::default())
        );
    }

    proptest! {
        #[test]
        fn latin1_packs_decode_as_their_pairs(pairs in vec(("[a-zA-Z_][^\u{0}=]{0,6}", "[^\u{0}]{0,8}").prop_map(|(a, b): (String, String)| {
            let latin1 = |s: String| s.chars().map(|c| char::from((c as u32 % 255 + 1) as u8)).filter(|&c| c != '=').collect::<String>();
            (latin1(a), latin1(b))
        }), 0..6)) {
            let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(a, _)| !a.is_empty()).collect();
            let mut packed = Vec::new();
            for (name, value) in &pairs {
                packed.extend(name.chars().map(|c| c as u8));
                packed.push(b'=');
                packed.extend(value.chars().map(|c| c as u8));
                packed.push(0);
            }
            let got = EnvBlock::from_latin1(&packed).expect("well formed");
            let want = EnvBlock::from_pairs(pairs.iter().map(|(a, b)| (a.as_bytes(), b.as_bytes())));
            prop_assert_eq!(Some(&got), want.as_ref());
            for (name, value) in &pairs {
                let first = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                prop_assert_eq!(got.get(name.as_bytes()), first.map(OsStr::new));
                let entry = format!("{name}={value}");
                prop_assert!(got.entries().any(|e| e == entry.as_bytes()));
            }
        }

        #[test]
        fn any_bytes_are_taken_whole_or_refused(bytes in vec(any::<u8>(), 0..64)) {
            if let Some(block) = EnvBlock::from_entries(bytes.clone()) {
                prop_assert_eq!(block.entries().count(), bytes.iter().filter(|&&b| b == 0).count());
                prop_assert!(block.entries().all(|e| e.contains(&b'=') && !e.contains(&0)));
                prop_assert_eq!(block.as_bytes(), &bytes[..]);
            }
        }
    }
}
