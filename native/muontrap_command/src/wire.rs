//! The binary form of a [`Command`] (docs/protocol.md, "The command
//! value"): a version (4 bytes), then each field in declaration order.
//! Integers are little-endian and fixed-width; byte strings, strings and
//! lists a u32 length or count, then their contents; an `Option` a 0 or 1
//! byte, then the value if 1; an enum one tag byte. Hand-written rather
//! than serde: the port binary ships on small boards.
//!
//! Decoding never panics, refuses trailing bytes, and allocates at most a
//! small multiple of the input: every element takes at least one byte, so
//! no count can reserve more than what is left to read.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::{
    Bytes, Capture, CgroupWrites, Command, EnvBlock, Hierarchy, IdSpec, Layout, Names, Notify,
    Resource, Rlimit, Rlimits, Signal,
};

/// The format's version: a hash (FNV-1a) of the fields' names and types
/// in order, so any change of a field changes it, with nobody to remember
/// a bump. The NIF and the port binary come from the same build: another
/// version means a stale port binary.
pub const VERSION: u32 = fnv1a(Command::LAYOUT.as_bytes());

const fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
}

/// The largest encoded command the port binary reads: far above the
/// kernel's limit on arguments and environment (a quarter of the stack
/// limit, 2 MiB by default), which `execve` enforces anyway.
pub const MAX_ENCODED: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Truncated,
    Version(u32),
    Tag(&'static str, u8),
    NotUtf8,
    Trailing(usize),
    /// An environment entry without its `=` or its NUL.
    BadEnv,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid command value: ")?;
        match self {
            WireError::Truncated => f.write_str("truncated"),
            WireError::Version(v) => write!(
                f,
                "version {v:08x}, expected {VERSION:08x} (a port binary from another build?)"
            ),
            WireError::Tag(what, t) => write!(f, "unknown {what} tag {t}"),
            WireError::NotUtf8 => f.write_str("a string is not UTF-8"),
            WireError::BadEnv => f.write_str("an environment entry is not NAME=VALUE"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the end"),
        }
    }
}

/// What is left to decode.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self) -> Result<usize, WireError> {
        let n = u32::take(self)? as usize;
        // Each element takes at least a byte: a larger count is a lie.
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }
}

/// A type's binary form.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// `cmd` with its version byte.
pub fn encode(cmd: &Command) -> Vec<u8> {
    // A usual command (an environment of a few KB) in one allocation.
    let mut out = Vec::with_capacity(4096);
    VERSION.put(&mut out);
    cmd.put(&mut out);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Command, WireError> {
    let mut r = Reader { buf: bytes };
    match u32::take(&mut r)? {
        VERSION => {}
        v => return Err(WireError::Version(v)),
    }
    let cmd = Command::take(&mut r)?;
    match r.buf.len() {
        0 => Ok(cmd),
        n => Err(WireError::Trailing(n)),
    }
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
        }
    )*};
}
int!(u8, u32, i32, u64);

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(WireError::Tag("bool", t)),
        }
    }
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    // Lengths fit in u32: the NIF's input is bounded by the BEAM's
    // memory, and a value this large would be refused by execve.
    (b.len() as u32).put(out);
    out.extend_from_slice(b);
}

fn take_bytes<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], WireError> {
    let n = r.len()?;
    r.bytes(n)
}

impl Wire for Bytes {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.0.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Bytes(OsString::from_vec(take_bytes(r)?.to_vec())))
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let b = take_bytes(r)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| WireError::NotUtf8)
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(None),
            1 => T::take(r).map(Some),
            t => Err(WireError::Tag("option", t)),
        }
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        (self.len() as u32).put(out);
        for v in self {
            v.put(out);
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let n = r.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::take(r)?);
        }
        Ok(v)
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok((A::take(r)?, B::take(r)?))
    }
}

/// Tag bytes, in the order of the variants.
const CAPTURES: [Capture; 4] = [
    Capture::None,
    Capture::Stdout,
    Capture::StdoutAndStderr,
    Capture::StderrOnly,
];

impl Wire for Capture {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let t = r.u8()?;
        CAPTURES
            .get(usize::from(t))
            .copied()
            .ok_or(WireError::Tag("capture", t))
    }
}

impl Wire for IdSpec {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            IdSpec::Id(n) => {
                out.push(0);
                n.put(out);
            }
            IdSpec::Name(s) => {
                out.push(1);
                s.put(out);
            }
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u8()? {
            0 => u32::take(r).map(IdSpec::Id),
            1 => String::take(r).map(IdSpec::Name),
            t => Err(WireError::Tag("id", t)),
        }
    }
}

impl Wire for Rlimit {
    fn put(&self, out: &mut Vec<u8>) {
        // The resource by its index in the table both sides share.
        let index = crate::RESOURCES
            .iter()
            .position(|(_, r)| *r == self.resource)
            .unwrap_or(usize::MAX);
        out.push(index as u8);
        self.soft.put(out);
        self.hard.put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let t = r.u8()?;
        let resource: Resource = match crate::RESOURCES.get(usize::from(t)) {
            Some((_, res)) => *res,
            None => return Err(WireError::Tag("rlimit", t)),
        };
        Ok(Rlimit {
            resource,
            soft: u64::take(r)?,
            hard: u64::take(r)?,
        })
    }
}

/// Newtypes: the binary form of what they wrap.
macro_rules! newtype {
    ($($t:ident),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                self.0.put(out);
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
                Wire::take(r).map($t)
            }
        }
    )*};
}
newtype!(Signal, Rlimits, Names, Notify);

/// The entries as one byte string, checked as they are taken.
impl Wire for EnvBlock {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        EnvBlock::from_entries(take_bytes(r)?.to_vec()).ok_or(WireError::BadEnv)
    }
}

impl Wire for CgroupWrites {
    fn put(&self, out: &mut Vec<u8>) {
        self.controllers.put(out);
        self.settings.put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(CgroupWrites {
            controllers: Wire::take(r)?,
            settings: Wire::take(r)?,
        })
    }
}

impl Wire for PathBuf {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_os_str().as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(PathBuf::from(OsString::from_vec(take_bytes(r)?.to_vec())))
    }
}

/// muontrap_cgroup's type, given its binary form here (the crate that
/// defines `Wire`), field by field.
impl Wire for Hierarchy {
    fn put(&self, out: &mut Vec<u8>) {
        self.version.put(out);
        self.mount_point.put(out);
        self.controllers.put(out);
        self.own.put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = match u8::take(r)? {
            v @ (1 | 2) => v,
            t => return Err(WireError::Tag("cgroup version", t)),
        };
        Ok(Hierarchy {
            version,
            mount_point: Wire::take(r)?,
            controllers: Wire::take(r)?,
            own: Wire::take(r)?,
        })
    }
}

impl Wire for Layout {
    fn put(&self, out: &mut Vec<u8>) {
        self.v2.put(out);
        self.v1.put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Layout {
            v2: Wire::take(r)?,
            v1: Wire::take(r)?,
        })
    }
}
