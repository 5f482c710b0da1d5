//! Wire formats (pure): framed message encoding/decoding, plain-mode ack
//! decoding and output window accounting. See `docs/protocol.md`.
//!
//! Framed mode carries no output (it goes into a handed-over pipe).
//! The tags and bodies themselves are `muontrap_wire::frame`'s, which the
//! NIF decodes and encodes with for the Elixir side.

use std::fmt;

pub use muontrap_wire::frame::{
    Signaled, ToPort as Inbound, TAG_ERROR, TAG_EXEC_ERROR, TAG_EXIT, TAG_NOTIFY, TAG_SIGNALED,
    TAG_STARTED, TAG_WATCHDOG,
};

/// Length prefix plus tag.
pub const HEADER_LEN: usize = 5;

/// No valid inbound message is this long; refusing early avoids buffering
/// garbage from a confused peer.
const MAX_INBOUND_LEN: u32 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    OverAck { acked: u64, outstanding: u64 },
    UnknownTag(u8),
    EmptyMessage,
    BadLength { tag: u8, len: u32 },
    TooLong(u32),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::OverAck { acked, outstanding } => write!(
                f,
                "protocol error: acknowledged {acked} bytes but only {outstanding} are outstanding"
            ),
            ProtocolError::UnknownTag(t) => write!(f, "protocol error: unknown message tag {t}"),
            ProtocolError::EmptyMessage => write!(f, "protocol error: empty message"),
            ProtocolError::BadLength { tag, len } => {
                write!(
                    f,
                    "protocol error: message with tag {tag} has bad length {len}"
                )
            }
            ProtocolError::TooLong(len) => {
                write!(f, "protocol error: message length {len} is too long")
            }
        }
    }
}

/// Writes the length prefix and tag for a message with `body_len` bytes
/// after the tag.
pub fn encode_header(tag: u8, body_len: usize) -> [u8; HEADER_LEN] {
    // Bodies are a u32 or a short error line.
    let len = u32::try_from(body_len + 1).unwrap_or(u32::MAX);
    let l = len.to_be_bytes();
    [l[0], l[1], l[2], l[3], tag]
}

/// A message whose body is one big-endian u32 (STARTED, EXIT).
pub fn encode_u32(tag: u8, value: u32) -> [u8; HEADER_LEN + 4] {
    let mut m = [0; HEADER_LEN + 4];
    m[..HEADER_LEN].copy_from_slice(&encode_header(tag, 4));
    m[HEADER_LEN..].copy_from_slice(&value.to_be_bytes());
    m
}

pub fn encode(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER_LEN + body.len());
    m.extend_from_slice(&encode_header(tag, body.len()));
    m.extend_from_slice(body);
    m
}

/// SIGNALED with its one-byte body.
pub fn encode_signaled(reply: Signaled) -> [u8; HEADER_LEN + 1] {
    let h = encode_header(TAG_SIGNALED, 1);
    [h[0], h[1], h[2], h[3], h[4], reply as u8]
}

/// Reassembles framed messages from arbitrarily split reads.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    /// Errors are detected as soon as the header is in, without waiting for
    /// the body.
    pub fn next_message(&mut self) -> Result<Option<Inbound>, ProtocolError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len == 0 {
            return Err(ProtocolError::EmptyMessage);
        }
        if len > MAX_INBOUND_LEN {
            return Err(ProtocolError::TooLong(len));
        }
        let Some(&tag) = self.buf.get(4) else {
            return Ok(None);
        };
        let Some(expected_len) = Inbound::frame_len(tag) else {
            return Err(ProtocolError::UnknownTag(tag));
        };
        if len != expected_len {
            return Err(ProtocolError::BadLength { tag, len });
        }
        let total = 4 + len as usize;
        let Some(frame) = self.buf.get(4..total) else {
            return Ok(None);
        };
        let msg = Inbound::decode(frame).ok_or(ProtocolError::BadLength { tag, len })?;
        self.buf.drain(..total);
        Ok(Some(msg))
    }
}

/// Plain mode: each stdin byte `b` acknowledges `b + 1` output bytes.
pub fn plain_ack_total(bytes: &[u8]) -> u64 {
    bytes.iter().map(|&b| u64::from(b) + 1).sum()
}

/// Output bytes sent but not yet acknowledged, bounded by the window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    size: u64,
    outstanding: u64,
}

impl Window {
    pub fn new(size: u32) -> Window {
        Window {
            size: u64::from(size),
            outstanding: 0,
        }
    }

    /// How many more bytes may be sent now.
    pub fn available(&self) -> usize {
        usize::try_from(self.size - self.outstanding).unwrap_or(usize::MAX)
    }

    pub fn sent(&mut self, n: usize) {
        // Callers never send more than `available()`; saturate anyway so a
        // bug cannot underflow `available`.
        self.outstanding = (self.outstanding + n as u64).min(self.size);
    }

    pub fn ack(&mut self, n: u64) -> Result<(), ProtocolError> {
        if n > self.outstanding {
            return Err(ProtocolError::OverAck {
                acked: n,
                outstanding: self.outstanding,
            });
        }
        self.outstanding -= n;
        Ok(())
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
