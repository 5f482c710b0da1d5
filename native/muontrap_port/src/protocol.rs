//! Wire formats (pure): framed message encoding/decoding, plain-mode ack
//! decoding and output window accounting. See `docs/protocol.md`.
//!
//! Framed mode carries no output (it goes into a handed-over pipe), so
//! tags 1 and 2 (DATA, DATA_STDERR) are never sent and the Erlang side
//! sends no acks: tag 1 (ACK) is as unknown as any other.

use std::fmt;

// Port -> Erlang tags.
pub const TAG_STARTED: u8 = 3;
pub const TAG_EXIT: u8 = 4;
pub const TAG_ERROR: u8 = 5;
/// `u32` errno of a failed exec of the program; ERROR and EXIT follow.
pub const TAG_EXEC_ERROR: u8 = 7;
/// sd_notify state changes: UTF-8 `KEY=VALUE` lines.
pub const TAG_NOTIFY: u8 = 8;
/// One byte, why the watchdog fired; termination and EXIT follow.
pub const TAG_WATCHDOG: u8 = 9;

// Erlang -> port tags.
pub const TAG_TERMINATE: u8 = 4;

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

/// A decoded message from the Erlang side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Terminate,
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
        let (expected_len, msg) = match tag {
            TAG_TERMINATE => (1, Inbound::Terminate),
            _ => return Err(ProtocolError::UnknownTag(tag)),
        };
        if len != expected_len {
            return Err(ProtocolError::BadLength { tag, len });
        }
        let total = 4 + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
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
mod tests {
    use super::*;

    #[test]
    fn encodes_messages() {
        assert_eq!(encode_header(TAG_ERROR, 3), [0, 0, 0, 4, 5]);
        assert_eq!(
            encode_u32(TAG_EXIT, 0x0102_0304),
            [0, 0, 0, 5, 4, 1, 2, 3, 4]
        );
        assert_eq!(encode_u32(TAG_STARTED, 7), [0, 0, 0, 5, 3, 0, 0, 0, 7]);
        assert_eq!(encode(TAG_ERROR, b"oops"), b"\0\0\0\x05\x05oops");
        assert_eq!(encode(TAG_ERROR, b""), [0, 0, 0, 1, 5]);
        assert_eq!(encode_header(TAG_EXIT, 65536), [0, 1, 0, 1, 4]);
    }

    #[test]
    fn decodes_whole_and_split_messages() {
        let mut stream = Vec::new();
        for _ in 0..3 {
            stream.extend_from_slice(&[0, 0, 0, 1, TAG_TERMINATE]);
        }
        // Every split point, including byte-at-a-time.
        for chunk in 1..stream.len() {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            for part in stream.chunks(chunk) {
                d.push(part);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, vec![Inbound::Terminate; 3], "chunk {chunk}");
        }
    }

    #[test]
    fn partial_frame_waits() {
        let mut d = FrameDecoder::default();
        d.push(&[0, 0, 0]);
        assert_eq!(d.next_message(), Ok(None));
        d.push(&[1]);
        assert_eq!(d.next_message(), Ok(None));
        d.push(&[TAG_TERMINATE, 0]);
        assert_eq!(d.next_message(), Ok(Some(Inbound::Terminate)));
        // The start of the next message stays buffered.
        assert_eq!(d.next_message(), Ok(None));
        d.push(&[0, 0, 1, TAG_TERMINATE]);
        assert_eq!(d.next_message(), Ok(Some(Inbound::Terminate)));
    }

    #[test]
    fn decode_errors() {
        let cases: Vec<(Vec<u8>, ProtocolError)> = vec![
            (vec![0, 0, 0, 0], ProtocolError::EmptyMessage),
            (vec![0, 0, 0, 1, 9], ProtocolError::UnknownTag(9)),
            (vec![0, 0, 0, 1, 0], ProtocolError::UnknownTag(0)),
            // The retired ACK, with its old (valid then) length.
            (
                vec![0, 0, 0, 5, 1, 0, 0, 0, 7],
                ProtocolError::UnknownTag(1),
            ),
            // Never implemented: STDIN and STDIN_EOF.
            (vec![0, 0, 0, 3, 2], ProtocolError::UnknownTag(2)),
            (vec![0, 0, 0, 1, 3], ProtocolError::UnknownTag(3)),
            (
                vec![0, 0, 0, 2, TAG_TERMINATE],
                ProtocolError::BadLength {
                    tag: TAG_TERMINATE,
                    len: 2,
                },
            ),
            (vec![0, 1, 0, 1], ProtocolError::TooLong(65537)),
            (
                vec![0xff, 0xff, 0xff, 0xff],
                ProtocolError::TooLong(u32::MAX),
            ),
        ];
        for (bytes, want) in cases {
            let mut d = FrameDecoder::default();
            d.push(&bytes);
            assert_eq!(d.next_message(), Err(want.clone()), "{bytes:?}");
            assert!(want.to_string().starts_with("protocol error: "));
        }
    }

    #[test]
    fn plain_acks() {
        assert_eq!(plain_ack_total(&[]), 0);
        assert_eq!(plain_ack_total(&[0]), 1);
        assert_eq!(plain_ack_total(&[255, 15]), 272);
    }

    #[test]
    fn window_accounting() {
        let mut w = Window::new(16);
        assert_eq!(w.available(), 16);
        w.sent(10);
        assert_eq!(w.available(), 6);
        w.sent(6);
        assert_eq!(w.available(), 0);
        assert_eq!(w.ack(4), Ok(()));
        assert_eq!(w.available(), 4);
        assert_eq!(w.ack(12), Ok(()));
        assert_eq!(w.available(), 16);
        assert_eq!(w.ack(0), Ok(()));
    }

    #[test]
    fn over_ack_is_an_error() {
        let mut w = Window::new(16);
        assert_eq!(
            w.ack(1),
            Err(ProtocolError::OverAck {
                acked: 1,
                outstanding: 0
            })
        );
        w.sent(5);
        assert_eq!(
            w.ack(6),
            Err(ProtocolError::OverAck {
                acked: 6,
                outstanding: 5
            })
        );
        // A failed ack changes nothing.
        assert_eq!(w.available(), 11);
        let mut big = Window::new(u32::MAX);
        big.sent(u32::MAX as usize);
        assert_eq!(big.ack(u64::from(u32::MAX)), Ok(()));
    }
}
