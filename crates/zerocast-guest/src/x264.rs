//! x264, linked statically, through the C shim in `csrc/x264_shim.c`: the
//! shim is compiled against the installed `<x264.h>`, so the parameter and
//! picture structs never cross into Rust and cannot drift from the library.
//! Settings follow helix's software baseline (ultrafast, zerolatency,
//! baseline profile): see the shim.

use std::ffi::c_int;
use std::ptr::NonNull;

use anyhow::{bail, Result};

use zerocast_frame::I420;

/// x264's encoder handle, opaque to Rust.
#[repr(C)]
struct X264T {
    _opaque: [u8; 0],
}

extern "C" {
    fn zc_x264_open(
        width: c_int,
        height: c_int,
        fps_num: c_int,
        fps_den: c_int,
        bitrate_kbps: c_int,
        keyint: c_int,
    ) -> *mut X264T;
    fn zc_x264_encode(
        enc: *mut X264T,
        y: *const u8,
        u: *const u8,
        v: *const u8,
        y_stride: c_int,
        uv_stride: c_int,
        pts: i64,
        force_idr: c_int,
        out: *mut *mut u8,
        keyframe: *mut c_int,
    ) -> c_int;
    fn zc_x264_close(enc: *mut X264T);
}

/// One encoded picture, borrowed from the encoder until its next call.
pub struct AccessUnit<'a> {
    pub data: &'a [u8],
    pub keyframe: bool,
}

pub struct X264 {
    enc: NonNull<X264T>,
    width: u32,
    height: u32,
    frames: i64,
}

impl X264 {
    /// An encoder for `width` x `height` I420 pictures at `fps`, aiming at
    /// `bitrate_bps`; a keyframe every `keyint` frames (0 = only on request).
    pub fn new(width: u32, height: u32, fps: u32, bitrate_bps: u32, keyint: u32) -> Result<X264> {
        // SAFETY: the shim takes plain integers and returns an encoder it
        // allocated, or null.
        let enc = unsafe {
            zc_x264_open(
                int(width),
                int(height),
                int(fps.max(1)),
                1,
                int((bitrate_bps / 1000).max(1)),
                int(keyint),
            )
        };
        let Some(enc) = NonNull::new(enc) else {
            bail!("x264 refused {width}x{height} at {fps} fps, {bitrate_bps} bit/s");
        };
        Ok(X264 {
            enc,
            width,
            height,
            frames: 0,
        })
    }

    /// The picture size the encoder was opened for.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Encodes one picture of the size given to [`X264::new`]. `None` when
    /// x264 held the picture back (not with these settings).
    pub fn encode(&mut self, pic: &I420, force_keyframe: bool) -> Result<Option<AccessUnit<'_>>> {
        if (pic.width(), pic.height()) != (self.width, self.height) {
            bail!(
                "picture is {}x{}, the encoder was opened for {}x{}",
                pic.width(),
                pic.height(),
                self.width,
                self.height
            );
        }
        let (y, u, v) = (pic.y(), pic.u(), pic.v());
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut keyframe: c_int = 0;
        // SAFETY: `enc` is a live encoder; the planes hold a whole
        // `width` x `height` I420 picture at the strides passed (checked
        // above), and x264 only reads them during the call; `out` and
        // `keyframe` are live locals for the shim to fill.
        let size = unsafe {
            zc_x264_encode(
                self.enc.as_ptr(),
                y.as_ptr(),
                u.as_ptr(),
                v.as_ptr(),
                int(self.width),
                int(self.width / 2),
                self.frames,
                c_int::from(force_keyframe),
                &mut out,
                &mut keyframe,
            )
        };
        self.frames += 1;
        let Ok(size) = usize::try_from(size) else {
            bail!("x264_encoder_encode failed ({size})");
        };
        if size == 0 || out.is_null() {
            return Ok(None);
        }
        // SAFETY: x264 returned `size` bytes of back-to-back NAL units at
        // `out`, owned by the encoder and valid until its next call, which
        // the borrow of `self` in the result rules out.
        let data = unsafe { std::slice::from_raw_parts(out, size) };
        Ok(Some(AccessUnit {
            data,
            keyframe: keyframe != 0,
        }))
    }
}

/// `v` as a C `int`, saturating: x264 refuses sizes and rates that large
/// at open, so a width it accepted converts exactly.
fn int(v: u32) -> c_int {
    c_int::try_from(v).unwrap_or(c_int::MAX)
}

impl Drop for X264 {
    fn drop(&mut self) {
        // SAFETY: `enc` came from zc_x264_open and is closed once, here.
        unsafe { zc_x264_close(self.enc.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocast_frame::{Frame, PixelFormat};

    /// NAL unit types in an Annex B byte stream, and the SPS's profile_idc.
    fn nal_types(stream: &[u8]) -> (Vec<u8>, Option<u8>) {
        let (mut types, mut profile) = (Vec::new(), None);
        let mut i = 0;
        while i + 3 < stream.len() {
            if stream[i..i + 3] == [0, 0, 1] {
                let kind = stream[i + 3] & 0x1F;
                if kind == 7 {
                    profile = stream.get(i + 4).copied();
                }
                types.push(kind);
                i += 3;
            } else {
                i += 1;
            }
        }
        (types, profile)
    }

    #[test]
    fn one_picture_in_one_access_unit_out() {
        let (w, h) = (64, 48);
        let mut enc = X264::new(w, h, 30, 500_000, 0).unwrap();
        let mut pic = I420::default();
        for frame in 0..5u8 {
            let pixels: Vec<u8> = (0..=u8::MAX)
                .cycle()
                .take((w * h * 4) as usize)
                .map(|b| b.wrapping_add(frame * 40))
                .collect();
            let picture = Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &pixels).unwrap();
            pic.convert(&picture).unwrap();
            let force = frame == 3;
            let au = enc
                .encode(&pic, force)
                .unwrap()
                .expect("zerolatency gives a frame per picture");
            let (types, profile) = nal_types(au.data);
            let idr = frame == 0 || force;
            assert_eq!(au.keyframe, idr, "frame {frame}: {types:?}");
            if idr {
                // SPS, PPS and an IDR slice; baseline has no B-frames to reorder.
                assert!(
                    types.contains(&7) && types.contains(&8) && types.contains(&5),
                    "{types:?}"
                );
                assert_eq!(profile, Some(66), "baseline profile");
            } else {
                assert!(types.contains(&1) && !types.contains(&5), "{types:?}");
            }
        }
    }

    #[test]
    fn refuses_a_picture_of_another_size() {
        let mut enc = X264::new(32, 32, 30, 500_000, 0).unwrap();
        let mut pic = I420::default();
        let px = [0; 16 * 16 * 4];
        pic.convert(&Frame::new(16, 16, 64, PixelFormat::Xrgb8888, &px).unwrap())
            .unwrap();
        assert!(enc.encode(&pic, false).is_err());
    }
}
