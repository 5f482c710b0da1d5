//! Property tests of the wire formats (docs/reliability.md, "Fuzzing"):
//! the Erlang -> port decoder on any bytes split anywhere, decode(encode(x))
//! in both directions, and the plain-mode acks and window.

use muontrap_peak_alloc::measure;
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// The most `read_stdin` reads at once (lifecycle/stdin.rs), hence the
/// largest push the relay makes.
const READ: usize = 4096;

/// The longest valid message (SIGNAL): what can stay buffered, less a byte,
/// once every complete message is taken out.
const LONGEST: usize = HEADER_LEN + 4;

/// The decoder's bound, whatever the stream: its buffer holds a push and
/// the start of one message (4,104 bytes); growing it at most doubles the
/// capacity (8,208), and while it moves the old block is live too.
const DECODER_PEAK: usize = 3 * (READ + LONGEST - 1);

/// A message as the NIF encodes it for `MuonTrap.Protocol` (`terminate/0`,
/// `signal/1`), framed as Erlang's `{:packet, 4}` does.
fn erlang_encode(m: &Inbound) -> Vec<u8> {
    let body = m.encode();
    [&(body.len() as u32).to_be_bytes()[..], &body].concat()
}

fn inbound() -> impl Strategy<Value = Inbound> {
    prop_oneof![
        Just(Inbound::Terminate),
        any::<u32>().prop_map(Inbound::Signal)
    ]
}

/// Streams worth decoding: a long run of valid messages (up to several
/// reads' worth), then valid messages, headers with a plausible length and any
/// tag, and short runs of anything, in any order.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop_oneof![
        inbound().prop_map(|m| erlang_encode(&m)),
        (0u32..12, any::<u8>()).prop_map(|(len, tag)| {
            let mut h = len.to_be_bytes().to_vec();
            h.push(tag);
            h
        }),
        vec(any::<u8>(), 0..12),
    ];
    // A few messages repeated: as long as many, much cheaper to generate.
    let run = (vec(inbound(), 1..8), 0usize..600).prop_map(|(m, n)| {
        m.iter()
            .flat_map(erlang_encode)
            .collect::<Vec<u8>>()
            .repeat(n)
    });
    (run, vec(segment, 0..64)).prop_map(|(run, s): (Vec<u8>, _)| [run, s.concat()].concat())
}

/// Read sizes: at least one byte, at most what `read_stdin` reads.
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    vec(1..=READ, 1..8)
}

/// The relay's use of the decoder: push each read, take out every
/// complete message, stop at the first error (stdin is then Garbled).
/// Returns the error, if any, and the most bytes left buffered between
/// reads. `got` is reserved by the caller, so that only the decoder's own
/// allocations are measured.
fn feed(stream: &[u8], chunks: &[usize], got: &mut Vec<Inbound>) -> (Option<ProtocolError>, usize) {
    let mut d = FrameDecoder::default();
    let mut rest = stream;
    let mut most_buffered = 0;
    for &size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at(size.min(rest.len()));
        rest = later;
        d.push(now);
        loop {
            match d.next_message() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(e) => return (Some(e), most_buffered),
            }
        }
        most_buffered = most_buffered.max(d.buf.len());
    }
    (None, most_buffered)
}

/// Port -> Erlang messages, as `Output` sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outbound {
    Started(u32),
    Exit(u32),
    Error(String),
    ExecError(u32),
    Notify(Vec<(String, String)>),
    Watchdog(u8),
    Signaled(Signaled),
}

/// The frame `Output` writes for `m` (output.rs: the same calls with the
/// same tags; ERROR's `muontrap: ` prefix is part of the text here).
fn port_encode(m: &Outbound) -> Vec<u8> {
    match m {
        Outbound::Started(pid) => encode_u32(TAG_STARTED, *pid).to_vec(),
        Outbound::Exit(status) => encode_u32(TAG_EXIT, *status).to_vec(),
        Outbound::Error(line) => encode(TAG_ERROR, line.as_bytes()),
        Outbound::ExecError(errno) => encode_u32(TAG_EXEC_ERROR, *errno).to_vec(),
        Outbound::Notify(pairs) => {
            let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            encode(TAG_NOTIFY, lines.join("\n").as_bytes())
        }
        Outbound::Watchdog(reason) => encode(TAG_WATCHDOG, &[*reason]),
        Outbound::Signaled(s) => encode_signaled(*s).to_vec(),
    }
}

/// `MuonTrap.Protocol.decode/1` (lib/muontrap/protocol.ex), clause by
/// clause, on one frame without its length; `None` where it raises.
fn elixir_decode(frame: &[u8]) -> Option<Outbound> {
    let u32_body = |b: &[u8]| <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes);
    let (&tag, body) = frame.split_first()?;
    Some(match (tag, body) {
        (TAG_STARTED, b) => Outbound::Started(u32_body(b)?),
        (TAG_EXIT, b) => Outbound::Exit(u32_body(b)?),
        (TAG_ERROR, b) => Outbound::Error(String::from_utf8(b.to_vec()).ok()?),
        (TAG_EXEC_ERROR, b) => Outbound::ExecError(u32_body(b)?),
        // `assignments/1`: split on every "\n", each line at its first "=",
        // lines without one dropped.
        (TAG_NOTIFY, b) => Outbound::Notify(
            std::str::from_utf8(b)
                .ok()?
                .split('\n')
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        (TAG_WATCHDOG, [r @ (1 | 2)]) => Outbound::Watchdog(*r),
        (TAG_SIGNALED, [0]) => Outbound::Signaled(Signaled::Sent),
        (TAG_SIGNALED, [1]) => Outbound::Signaled(Signaled::NotRunning),
        (TAG_SIGNALED, [2]) => Outbound::Signaled(Signaled::Refused),
        _ => return None,
    })
}

/// `{:packet, 4}` on the Erlang side: whole frames out of a byte stream.
fn erlang_frames(mut stream: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while let Some((len, rest)) = stream.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let (frame, rest) = rest.split_at(len.min(rest.len()));
        frames.push(frame);
        stream = rest;
    }
    frames
}

fn outbound() -> impl Strategy<Value = Outbound> {
    // NOTIFY keys and values as the coalescer writes them: a key has no
    // "=" and no newline, a value no newline (notify/parse.rs splits
    // datagrams at newlines).
    let pair = ("[A-Z_]{0,20}", "[^\n]{0,40}");
    prop_oneof![
        any::<u32>().prop_map(Outbound::Started),
        any::<u32>().prop_map(Outbound::Exit),
        ".{0,200}".prop_map(Outbound::Error),
        any::<u32>().prop_map(Outbound::ExecError),
        vec(pair, 0..8).prop_map(Outbound::Notify),
        (1u8..=2).prop_map(Outbound::Watchdog),
        prop_oneof![
            Just(Signaled::Sent),
            Just(Signaled::NotRunning),
            Just(Signaled::Refused)
        ]
        .prop_map(Outbound::Signaled),
    ]
}

proptest! {
    #[test]
    fn erlang_to_port_round_trips(msgs in vec(inbound(), 0..64), chunks in chunks()) {
        let stream: Vec<u8> = msgs.iter().flat_map(erlang_encode).collect();
        let mut got = Vec::with_capacity(msgs.len());
        let (error, most_buffered) = feed(&stream, &chunks, &mut got);
        prop_assert_eq!(error, None);
        prop_assert_eq!(got, msgs);
        prop_assert!(most_buffered < LONGEST);
    }

    /// Any bytes: no panic, the same messages and error however the
    /// stream is split, at most a message's start left buffered, and the
    /// decoder's memory within `DECODER_PEAK`.
    #[test]
    fn any_stream_decodes_alike_split_anywhere(stream in stream(), chunks in chunks()) {
        let mut got = Vec::with_capacity(stream.len() / HEADER_LEN);
        let ((error, most_buffered), peak) = measure(|| feed(&stream, &chunks, &mut got));
        prop_assert!(peak <= DECODER_PEAK, "{} bytes", peak);
        prop_assert!(most_buffered < LONGEST);
        let mut whole = Vec::new();
        let whole_error = feed(&stream, &[usize::MAX], &mut whole).0;
        prop_assert_eq!(error, whole_error);
        prop_assert_eq!(got, whole);
    }

    #[test]
    fn port_to_erlang_round_trips(msgs in vec(outbound(), 0..32), split in any::<prop::sample::Index>()) {
        let stream: Vec<u8> = msgs.iter().flat_map(port_encode).collect();
        // Erlang reassembles frames however the bytes arrived; a frame cut
        // at the end of a read is completed by the next one.
        let cut = split.index(stream.len() + 1);
        let joined = [&stream[..cut], &stream[cut..]].concat();
        let decoded: Vec<Option<Outbound>> =
            erlang_frames(&joined).into_iter().map(elixir_decode).collect();
        let want: Vec<Option<Outbound>> = msgs.into_iter().map(Some).collect();
        prop_assert_eq!(decoded, want);
    }

    /// Each stdin byte `b` acknowledges `b + 1`: no allocation, and a
    /// stream split anywhere acknowledges the same total.
    #[test]
    fn plain_acks_add_up(bytes in vec(any::<u8>(), 0..READ * 2), split in any::<prop::sample::Index>()) {
        let (total, peak) = measure(|| plain_ack_total(&bytes));
        prop_assert_eq!(peak, 0);
        let want: u64 = bytes.iter().map(|&b| u64::from(b) + 1).sum();
        prop_assert_eq!(total, want);
        let (a, b) = bytes.split_at(split.index(bytes.len() + 1));
        prop_assert_eq!(plain_ack_total(a) + plain_ack_total(b), total);
    }

    /// Any sends and acks: the window never over- or underflows, and an
    /// over-ack is refused exactly when it exceeds what is outstanding,
    /// changing nothing.
    #[test]
    fn window_follows_sends_and_acks(
        size in muontrap_command::MIN_WINDOW..=u32::MAX,
        ops in vec((any::<bool>(), any::<u64>(), any::<prop::sample::Index>()), 0..64),
    ) {
        let mut w = Window::new(size);
        let mut outstanding = 0u64;
        for (send, raw, pick) in ops {
            if send {
                let n = pick.index(w.available() + 1);
                w.sent(n);
                outstanding += n as u64;
            } else {
                // Half the acks within what is outstanding, half anything.
                let n = if raw % 2 == 0 { pick.index(outstanding as usize + 1) as u64 } else { raw };
                let r = w.ack(n);
                prop_assert_eq!(r.is_err(), n > outstanding);
                if r.is_ok() {
                    outstanding -= n;
                }
            }
            prop_assert_eq!(w.available() as u64, u64::from(size) - outstanding);
        }
    }
}
