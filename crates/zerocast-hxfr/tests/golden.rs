//! Byte vectors written by hand from helix's packed structs
//! (`helix-frame-export.h`, `api/pkg/drm/protocol.go`): if these pass, our
//! bytes are helix's bytes.

use bytes::{Bytes, BytesMut};
use zerocast_hxfr::*;

fn encoded(session_id: u16, message: Message) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode(&Packet::new(session_id, message), &mut b);
    b.to_vec()
}

fn decoded(bytes: &[u8], limits: Limits) -> Packet {
    let mut b = BytesMut::from(bytes);
    let p = Decoder::new(limits).decode(&mut b).unwrap().unwrap();
    assert!(b.is_empty(), "decoder left {} bytes", b.len());
    p
}

fn header(t: u8, session: u16, len: u32) -> Vec<u8> {
    let mut h = b"HXFR".to_vec();
    h.push(t);
    h.push(0);
    h.extend_from_slice(&session.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h
}

#[test]
fn header_magic_is_hxfr_on_the_wire() {
    assert_eq!(MAGIC.to_le_bytes(), *b"HXFR");
    assert_eq!(encoded(0, Message::Ping), header(0x10, 0, 0));
}

#[test]
fn frame_request_is_44_bytes_at_helix_offsets() {
    let req = FrameRequest {
        resource_id: 0x11223344,
        width: 1920,
        height: 1080,
        format: 0x34325241,
        stride: 7680,
        pts_ns: 0x0102030405060708,
        duration_ns: 16_666_667,
        force_keyframe: true,
    };
    let mut want = header(0x01, 7, 44);
    want.extend_from_slice(&[0x44, 0x33, 0x22, 0x11]); // 0x0C resource_id
    want.extend_from_slice(&1920u32.to_le_bytes()); // 0x10
    want.extend_from_slice(&1080u32.to_le_bytes()); // 0x14
    want.extend_from_slice(&[0x41, 0x52, 0x32, 0x34]); // 0x18 'AR24'
    want.extend_from_slice(&7680u32.to_le_bytes()); // 0x1C
    want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]); // 0x20 pts
    want.extend_from_slice(&16_666_667i64.to_le_bytes()); // 0x28
    want.push(1); // 0x30 force_keyframe
    want.extend_from_slice(&[0; 7]); // 0x31 reserved
    assert_eq!(want.len(), 56);
    assert_eq!(encoded(7, Message::FrameRequest(req)), want);
    assert_eq!(
        decoded(&want, Limits::HOST).message,
        Message::FrameRequest(req)
    );
}

#[test]
fn frame_response_single_entry_matches_go_reader() {
    let au = [0u8, 0, 0, 1, 0x65, 0xAA];
    let mut want = header(0x02, 3, 28 + 6);
    want.extend_from_slice(&(-5i64).to_le_bytes()); // 0x0C pts
    want.extend_from_slice(&9i64.to_le_bytes()); // 0x14 dts
    want.extend_from_slice(&[1, 0, 0, 0]); // 0x1C is_keyframe + reserved[3]
    want.extend_from_slice(&1u32.to_le_bytes()); // 0x20 nal_count
    want.extend_from_slice(&6u32.to_le_bytes()); // 0x24 nal_size
    want.extend_from_slice(&au); // 0x28
    let mut fast = BytesMut::new();
    encode_frame_response(&mut fast, 3, -5, 9, true, &au);
    assert_eq!(fast.to_vec(), want);
    let prefix = frame_response_prefix(3, -5, 9, true, au.len());
    assert_eq!(prefix[..], want[..FRAME_RESPONSE_PREFIX_LEN]);
    assert_eq!(want[FRAME_RESPONSE_PREFIX_LEN..], au);
    let msg = Message::FrameResponse(FrameResponse {
        pts_ns: -5,
        dts_ns: 9,
        is_keyframe: true,
        nals: vec![Bytes::copy_from_slice(&au)],
    });
    assert_eq!(encoded(3, msg.clone()), want);
    assert_eq!(decoded(&want, Limits::CLIENT).message, msg);
}

#[test]
fn config_req_is_28_bytes() {
    let c = ConfigReq {
        width: 1920,
        height: 1080,
        bitrate_bps: 8_000_000,
        fps_num: 60,
        fps_den: 1,
        profile: 66,
        level: 40,
        realtime: true,
    };
    let mut want = header(0x04, 0, 28);
    for v in [1920u32, 1080, 8_000_000, 60, 1] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    want.extend_from_slice(&[66, 40, 1, 0, 0, 0, 0, 0]);
    assert_eq!(encoded(0, Message::ConfigReq(c)), want);
    assert_eq!(decoded(&want, Limits::HOST).message, Message::ConfigReq(c));
}

#[test]
fn scanout_messages() {
    let mut want = header(0x30, 2, 4);
    want.extend_from_slice(&2u32.to_le_bytes());
    assert_eq!(encoded(2, Message::Subscribe { scanout_id: 2 }), want);

    let mut want = header(0x31, 2, 8);
    want.extend_from_slice(&[2, 0, 0, 0, 1, 0, 0, 0]);
    let m = Message::SubscribeResp(SubscribeResp {
        scanout_id: 2,
        success: true,
    });
    assert_eq!(encoded(2, m.clone()), want);
    assert_eq!(decoded(&want, Limits::CLIENT).message, m);

    let mut want = header(0x20, 0, 16);
    for v in [1u32, 1280, 800, 60] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    let e = EnableScanout {
        scanout_id: 1,
        width: 1280,
        height: 800,
        refresh: 60,
    };
    assert_eq!(encoded(0, Message::EnableScanout(e)), want);

    let mut want = header(0x22, 0, 72);
    want.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    let mut connector = b"Virtual-2".to_vec();
    connector.resize(64, 0);
    want.extend_from_slice(&connector);
    let r = ScanoutResp {
        scanout_id: 1,
        success: true,
        connector: "Virtual-2".into(),
    };
    assert_eq!(encoded(0, Message::ScanoutResp(r.clone())), want);
    assert_eq!(
        decoded(&want, Limits::CLIENT).message,
        Message::ScanoutResp(r)
    );

    let mut want = header(0x21, 0, 4);
    want.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(encoded(0, Message::DisableScanout { scanout_id: 1 }), want);
}

#[test]
fn error_is_code_and_256_byte_c_string() {
    let mut want = header(0xFF, 1, 260);
    want.extend_from_slice(&(-2i32).to_le_bytes());
    let mut text = b"resource 9 not found".to_vec();
    text.resize(256, 0);
    want.extend_from_slice(&text);
    let m = Message::Error(ErrorMsg {
        code: -2,
        message: "resource 9 not found".into(),
    });
    assert_eq!(encoded(1, m.clone()), want);
    assert_eq!(decoded(&want, Limits::CLIENT).message, m);
    assert_eq!(ErrorCode::from_code(-2), ErrorCode::ResourceNotFound);
    assert_eq!(ErrorCode::NotConfigured.code(), -6);
    assert_eq!(ErrorCode::Internal.code(), -99);
}

#[test]
fn empty_messages() {
    for (m, t) in [
        (Message::KeyframeReq, 0x03),
        (Message::ConfigResp, 0x05),
        (Message::Ping, 0x10),
        (Message::Pong, 0x11),
    ] {
        assert_eq!(encoded(4, m.clone()), header(t, 4, 0));
        assert_eq!(decoded(&header(t, 4, 0), Limits::HOST).message, m);
    }
}

/// zerocast's extension, not helix's: the cursor for a subscriber that set
/// FLAG_CURSOR on its SUBSCRIBE. Little-endian and packed like the rest.
#[test]
fn cursor_messages() {
    let mut want = b"HXFR".to_vec();
    want.extend_from_slice(&[0x30, FLAG_CURSOR, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    let p = decoded(&want, Limits::HOST);
    assert_eq!(
        (p.flags, p.message),
        (FLAG_CURSOR, Message::Subscribe { scanout_id: 0 })
    );

    // A 2x1 image.
    let mut want = header(0x50, 0, 8 + 2 * 4);
    want.extend_from_slice(&[1, 0, 0, 0, 2, 0, 1, 0]);
    want.extend_from_slice(&[10, 20, 30, 255, 40, 50, 60, 0]);
    let image = Message::CursorImage(CursorImage {
        hot_x: 1,
        hot_y: 0,
        width: 2,
        height: 1,
        rgba: Bytes::from_static(&[10, 20, 30, 255, 40, 50, 60, 0]),
    });
    assert_eq!(encoded(0, image.clone()), want);
    assert_eq!(decoded(&want, Limits::CLIENT).message, image);

    let mut want = header(0x51, 0, 12);
    want.extend_from_slice(&[1, 0, 0, 0]);
    want.extend_from_slice(&(-3i32).to_le_bytes());
    want.extend_from_slice(&800i32.to_le_bytes());
    let position = Message::CursorPosition(CursorPosition {
        visible: true,
        x: -3,
        y: 800,
    });
    assert_eq!(encoded(0, position.clone()), want);
    assert_eq!(decoded(&want, Limits::CLIENT).message, position);

    // A size outside 1..=128, a hotspot outside, pixels unlike the size.
    for (fixed, pixels) in [
        ([0u8, 0, 0, 0, 0, 0, 1, 0], 0usize),
        ([2, 0, 0, 0, 2, 0, 1, 0], 8),
        ([0, 0, 0, 0, 2, 0, 1, 0], 7),
    ] {
        let len = u32::try_from(8 + pixels).unwrap();
        let mut bad = header(0x50, 0, len);
        bad.extend_from_slice(&fixed);
        bad.resize(bad.len() + pixels, 0);
        let err = Decoder::new(Limits::CLIENT)
            .decode(&mut BytesMut::from(&bad[..]))
            .unwrap_err();
        assert!(matches!(err, DecodeError::CursorImage(_)), "{err}");
        assert!(!err.is_fatal());
    }
}
