use super::*;
use muontrap_wire::frame::{TAG_SIGNAL, TAG_TERMINATE};

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
fn decodes_signal_requests_split_anywhere() {
    let mut stream = vec![0, 0, 0, 5, TAG_SIGNAL, 0, 0, 0, 1];
    stream.extend_from_slice(&[0, 0, 0, 1, TAG_TERMINATE]);
    stream.extend_from_slice(&[0, 0, 0, 5, TAG_SIGNAL, 0x12, 0x34, 0x56, 0x78]);
    let want = vec![
        Inbound::Signal(1),
        Inbound::Terminate,
        Inbound::Signal(0x1234_5678),
    ];
    for chunk in 1..stream.len() {
        let mut d = FrameDecoder::default();
        let mut got = Vec::new();
        for part in stream.chunks(chunk) {
            d.push(part);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, want, "chunk {chunk}");
    }
    // Any u32 is decoded; the relay judges the number.
    let mut d = FrameDecoder::default();
    d.push(&[0, 0, 0, 5, TAG_SIGNAL, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(d.next_message(), Ok(Some(Inbound::Signal(u32::MAX))));
}

#[test]
fn a_signal_body_must_be_four_bytes() {
    for len in [1u32, 2, 4, 6, 9] {
        let mut d = FrameDecoder::default();
        let mut m = len.to_be_bytes().to_vec();
        m.push(TAG_SIGNAL);
        m.extend(std::iter::repeat_n(0, len as usize - 1));
        d.push(&m);
        let want = ProtocolError::BadLength {
            tag: TAG_SIGNAL,
            len,
        };
        assert_eq!(d.next_message(), Err(want.clone()), "len {len}");
        assert_eq!(
            want.to_string(),
            format!("protocol error: message with tag 5 has bad length {len}")
        );
    }
    // Refused at the header, before the body is in.
    let mut d = FrameDecoder::default();
    d.push(&[0, 0, 0, 6, TAG_SIGNAL]);
    assert!(d.next_message().is_err());
}

#[test]
fn encodes_signaled() {
    assert_eq!(encode_signaled(Signaled::Sent), [0, 0, 0, 2, 10, 0]);
    assert_eq!(encode_signaled(Signaled::NotRunning), [0, 0, 0, 2, 10, 1]);
    assert_eq!(encode_signaled(Signaled::Refused), [0, 0, 0, 2, 10, 2]);
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
