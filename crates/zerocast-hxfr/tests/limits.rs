//! Hostile and broken input: every case is an error, never a panic, and
//! nothing is allocated for a payload before its size passed the limits.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use zerocast_hxfr::*;

fn header(t: u8, len: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_slice(
        &Header {
            msg_type: t,
            flags: 0,
            session_id: 0,
            payload_size: len,
        }
        .to_bytes(),
    );
    b
}

#[test]
fn oversized_payload_is_fatal_before_buffering() {
    let mut b = header(0x01, Limits::HOST.max_payload + 1);
    let cap = b.capacity();
    let e = Decoder::new(Limits::HOST).decode(&mut b).unwrap_err();
    assert!(matches!(e, DecodeError::PayloadTooLarge { .. }) && e.is_fatal());
    assert_eq!(b.capacity(), cap, "no buffer growth for a refused payload");
    assert_eq!(Decoder::new(Limits::HOST).wanted(&b), 0);
}

#[test]
fn bad_magic_is_fatal() {
    let mut b = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    let e = Decoder::new(Limits::HOST).decode(&mut b).unwrap_err();
    assert!(matches!(e, DecodeError::BadMagic(_)) && e.is_fatal());
}

#[test]
fn short_payload_and_unknown_type_are_skipped() {
    let d = Decoder::new(Limits::HOST);
    let mut b = header(0x01, 4);
    b.put_u32_le(9);
    b.put_slice(&header(0x77, 2));
    b.put_u16_le(0);
    b.put_slice(&header(0x10, 0));
    let e = d.decode(&mut b).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::ShortPayload {
                got: 4,
                need: 44,
                ..
            }
        ) && !e.is_fatal()
    );
    assert_eq!(
        d.decode(&mut b).unwrap_err(),
        DecodeError::UnknownType(0x77)
    );
    assert_eq!(d.decode(&mut b).unwrap().unwrap().message, Message::Ping);
    assert_eq!(d.decode(&mut b).unwrap(), None);
}

#[test]
fn nal_count_and_sizes_are_checked() {
    let d = Decoder::new(Limits::CLIENT);
    let mut b = header(0x02, 24);
    b.put_bytes(0, 20);
    b.put_u32_le(u32::MAX);
    assert!(matches!(
        d.decode(&mut b),
        Err(DecodeError::TooManyNals { .. })
    ));

    let mut b = header(0x02, 24 + 4 + 2);
    b.put_bytes(0, 20);
    b.put_u32_le(1);
    b.put_u32_le(1000);
    b.put_u16_le(0);
    assert_eq!(d.decode(&mut b), Err(DecodeError::NalOverrun { index: 0 }));

    let mut b = header(0x02, 24 + 2);
    b.put_bytes(0, 20);
    b.put_u32_le(2);
    b.put_u16_le(0);
    assert_eq!(d.decode(&mut b), Err(DecodeError::NalOverrun { index: 0 }));
}

#[test]
fn partial_input_waits_and_says_how_much() {
    let mut full = BytesMut::new();
    encode(
        &Packet::new(1, Message::Subscribe { scanout_id: 1 }),
        &mut full,
    );
    let d = Decoder::new(Limits::HOST);
    for cut in 0..full.len() {
        let mut part = BytesMut::from(&full[..cut]);
        assert_eq!(d.decode(&mut part).unwrap(), None);
        // Before the header is complete only the header's size is known.
        let want = if cut < HEADER_LEN {
            HEADER_LEN - cut
        } else {
            full.len() - cut
        };
        assert_eq!(d.wanted(&part), want);
    }
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<[u32; 5]>(), any::<i64>(), any::<i64>(), any::<bool>()).prop_map(
            |(v, pts, dur, k)| {
                Message::FrameRequest(FrameRequest {
                    resource_id: v[0],
                    width: v[1],
                    height: v[2],
                    format: v[3],
                    stride: v[4],
                    pts_ns: pts,
                    duration_ns: dur,
                    force_keyframe: k,
                })
            }
        ),
        (
            any::<i64>(),
            any::<i64>(),
            any::<bool>(),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
        )
            .prop_map(|(pts, dts, k, nals)| Message::FrameResponse(FrameResponse {
                pts_ns: pts,
                dts_ns: dts,
                is_keyframe: k,
                nals: nals.into_iter().map(Into::into).collect(),
            })),
        (any::<[u32; 5]>(), any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(v, p, l, r)| {
            Message::ConfigReq(ConfigReq {
                width: v[0],
                height: v[1],
                bitrate_bps: v[2],
                fps_num: v[3],
                fps_den: v[4],
                profile: p,
                level: l,
                realtime: r,
            })
        }),
        Just(Message::KeyframeReq),
        Just(Message::ConfigResp),
        Just(Message::Ping),
        Just(Message::Pong),
        any::<[u32; 4]>().prop_map(|v| Message::EnableScanout(EnableScanout {
            scanout_id: v[0],
            width: v[1],
            height: v[2],
            refresh: v[3],
        })),
        any::<u32>().prop_map(|scanout_id| Message::DisableScanout { scanout_id }),
        (any::<u32>(), any::<bool>(), "[a-zA-Z0-9-]{0,63}").prop_map(|(id, ok, c)| {
            Message::ScanoutResp(ScanoutResp {
                scanout_id: id,
                success: ok,
                connector: c,
            })
        }),
        any::<u32>().prop_map(|scanout_id| Message::Subscribe { scanout_id }),
        (any::<u32>(), any::<bool>()).prop_map(|(id, ok)| Message::SubscribeResp(SubscribeResp {
            scanout_id: id,
            success: ok
        })),
        (any::<i32>(), "[ -~]{0,255}")
            .prop_map(|(code, message)| Message::Error(ErrorMsg { code, message })),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips_in_a_stream(msgs in proptest::collection::vec((any::<u16>(), arb_message()), 1..8), chunk in 1usize..64) {
        let mut wire = BytesMut::new();
        for (s, m) in &msgs {
            encode(&Packet::new(*s, m.clone()), &mut wire);
        }
        // Feed the bytes in small chunks, as a socket would.
        let d = Decoder::new(Limits::CLIENT);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.put_slice(piece);
            while let Some(p) = d.decode(&mut buf).unwrap() {
                out.push((p.session_id, p.message));
            }
        }
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for limits in [Limits::HOST, Limits::CLIENT] {
            let mut buf = BytesMut::from(&bytes[..]);
            let d = Decoder::new(limits);
            for _ in 0..64 {
                match d.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break,
                    Err(_) => continue,
                }
            }
        }
    }
}

#[test]
fn strings_that_are_not_utf8_survive_a_round_trip() {
    // Found by the fuzzer: U+FFFD is three bytes, wider than the byte it replaces.
    let mut b = header(0xFF, 260);
    b.put_i32_le(-1);
    b.put_bytes(0xFF, 256);
    let first = Decoder::new(Limits::CLIENT)
        .decode(&mut b)
        .unwrap()
        .unwrap();
    let mut again = BytesMut::new();
    encode(&first, &mut again);
    let second = Decoder::new(Limits::CLIENT)
        .decode(&mut again)
        .unwrap()
        .unwrap();
    assert_eq!(first, second);
}
