use super::*;

fn encoded(m: &ToBeam<'_>) -> Vec<u8> {
    let mut v = vec![m.tag()];
    m.put_body(&mut v);
    v
}

#[test]
fn port_messages_round_trip() {
    let all = [
        ToBeam::Started(256),
        ToBeam::Exit(0),
        ToBeam::Exit(u32::MAX),
        ToBeam::Error(b"muontrap: no"),
        ToBeam::Error(b""),
        ToBeam::ExecError(2),
        ToBeam::Notify(b"READY=1\nSTATUS=up"),
        ToBeam::Watchdog(Watchdog::Timeout),
        ToBeam::Watchdog(Watchdog::Trigger),
        ToBeam::Signaled(Signaled::Sent),
        ToBeam::Signaled(Signaled::NotRunning),
        ToBeam::Signaled(Signaled::Refused),
    ];
    for m in all {
        assert_eq!(ToBeam::decode(&encoded(&m)), Some(m), "{m:?}");
    }
}

#[test]
fn port_messages_keep_their_bytes() {
    // docs/protocol.md's table: a changed tag or body byte is a changed
    // protocol, on purpose or not.
    assert_eq!(encoded(&ToBeam::Started(256)), [3, 0, 0, 1, 0]);
    assert_eq!(encoded(&ToBeam::Exit(3)), [4, 0, 0, 0, 3]);
    assert_eq!(encoded(&ToBeam::Error(b"x")), [5, b'x']);
    assert_eq!(encoded(&ToBeam::ExecError(2)), [7, 0, 0, 0, 2]);
    assert_eq!(encoded(&ToBeam::Notify(b"A=1")), [8, b'A', b'=', b'1']);
    assert_eq!(encoded(&ToBeam::Watchdog(Watchdog::Timeout)), [9, 1]);
    assert_eq!(encoded(&ToBeam::Watchdog(Watchdog::Trigger)), [9, 2]);
    assert_eq!(encoded(&ToBeam::Signaled(Signaled::Sent)), [10, 0]);
    assert_eq!(encoded(&ToBeam::Signaled(Signaled::NotRunning)), [10, 1]);
    assert_eq!(encoded(&ToBeam::Signaled(Signaled::Refused)), [10, 2]);
    assert_eq!(ToPort::Terminate.encode(), [4]);
    assert_eq!(ToPort::Signal(1).encode(), [5, 0, 0, 0, 1]);
}

#[test]
fn malformed_port_messages_are_refused() {
    for bad in [
        &[][..],
        &[1, b'x'],
        &[2, b'x'],
        &[6],
        &[11],
        &[3, 0, 0, 1],
        &[4, 0, 0, 0, 0, 0],
        &[7],
        &[9],
        &[9, 0],
        &[9, 3],
        &[9, 1, 1],
        &[10, 3],
        &[10],
    ] {
        assert_eq!(ToBeam::decode(bad), None, "{bad:?}");
    }
}

#[test]
fn requests_round_trip_and_match_their_lengths() {
    for m in [
        ToPort::Terminate,
        ToPort::Signal(0),
        ToPort::Signal(u32::MAX),
    ] {
        let frame = m.encode();
        assert_eq!(ToPort::decode(&frame), Some(m));
        assert_eq!(ToPort::frame_len(frame[0]), Some(frame.len() as u32));
    }
    for bad in [&[][..], &[1], &[2, 0], &[3], &[4, 0], &[5, 0, 0, 0]] {
        assert_eq!(ToPort::decode(bad), None, "{bad:?}");
    }
    assert_eq!(ToPort::frame_len(1), None);
}

#[test]
fn assignments_split_at_the_first_equals() {
    let pairs: Vec<_> = assignments(b"READY=1\nSTATUS=a=b\nnoequals\n=v\nK=").collect();
    assert_eq!(
        pairs,
        [
            (&b"READY"[..], &b"1"[..]),
            (b"STATUS", b"a=b"),
            (b"", b"v"),
            (b"K", b""),
        ]
    );
    assert_eq!(assignments(b"").count(), 0);
}
