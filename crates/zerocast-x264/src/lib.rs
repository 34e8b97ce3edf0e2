//! x264, linked statically, through the C shim in `csrc/x264_shim.c`: the
//! shim is compiled against the installed `<x264.h>`, so x264's parameter
//! and picture structs never cross into Rust and cannot drift from the
//! library. Two users: the guest agent's baseline ([`Config::baseline`],
//! helix's software path) and the host's x264 backend in `zerocast-encode`.
//!
//! Every encoder is tuned for latency (see the shim): zerolatency, no
//! B-frames, no lookahead, one picture in and one access unit out,
//! constrained baseline profile, SPS/PPS before every keyframe.
//!
//! Built without libx264-dev (see build.rs), [`available`] is false and
//! every [`X264::open`] fails with [`Error::NotBuilt`].

use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use zerocast_frame::I420;

/// x264's encoder handle, opaque to Rust.
#[repr(C)]
struct X264T {
    _opaque: [u8; 0],
}

/// `struct zc_x264_config` in the shim, field for field.
#[repr(C)]
struct RawConfig {
    width: c_int,
    height: c_int,
    fps_num: c_int,
    fps_den: c_int,
    preset: *const c_char,
    threads: c_int,
    qp: c_int,
    bitrate_kbps: c_int,
    vbv_buffer_kbit: c_int,
    keyint: c_int,
    constant_blocks: c_int,
    subpel_refine: c_int,
    p8x8: c_int,
    umh: c_int,
}

// SAFETY: declared as defined in csrc/x264_shim.c, which build.rs compiles
// and links into this crate.
unsafe extern "C" {
    fn zc_x264_open(config: *const RawConfig) -> *mut X264T;
    fn zc_x264_set_bitrate(
        enc: *mut X264T,
        bitrate_kbps: c_int,
        vbv_max_kbps: c_int,
        vbv_buffer_kbit: c_int,
    ) -> c_int;
    fn zc_x264_encode(
        enc: *mut X264T,
        y: *const u8,
        u: *const u8,
        v: *const u8,
        y_stride: c_int,
        uv_stride: c_int,
        pts: i64,
        force_idr: c_int,
        qp: c_int,
        constant: *const u8,
        out: *mut *mut u8,
        keyframe: *mut c_int,
    ) -> c_int;
    fn zc_x264_build() -> c_int;
    fn zc_x264_close(enc: *mut X264T);
    fn zc_x264_available() -> c_int;
}

/// The x264 API version (`X264_BUILD`, e.g. 164) linked in; 0 without x264.
pub fn build() -> i32 {
    // SAFETY: returns a compile-time constant.
    unsafe { zc_x264_build() }
}

/// Whether this build has x264 (libx264-dev was found when it was compiled).
pub fn available() -> bool {
    // SAFETY: returns a compile-time constant.
    unsafe { zc_x264_available() != 0 }
}

/// Macroblocks (16x16) of a `width` x `height` picture, the length of
/// [`X264::encode`]'s `constant` flags.
pub fn macroblocks(width: u32, height: u32) -> usize {
    width.div_ceil(16) as usize * height.div_ceil(16) as usize
}

/// What x264 refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this build of zerocast has no x264: install libx264-dev (scripts/install-deps.sh) and rebuild")]
    NotBuilt,
    #[error("x264 refused to open {width}x{height} ({rate})")]
    Open {
        width: u32,
        height: u32,
        rate: String,
    },
    #[error("picture is {got_width}x{got_height}, the encoder was opened for {width}x{height}")]
    WrongSize {
        got_width: u32,
        got_height: u32,
        width: u32,
        height: u32,
    },
    #[error("{got} constant-macroblock flags for a picture of {want} macroblocks")]
    ConstantBlocks { got: usize, want: usize },
    #[error("x264_encoder_encode failed ({0})")]
    Encode(i32),
    #[error("x264 refused the new bitrate ({0})")]
    Reconfig(i32),
    #[error("a bitrate can only be changed on an encoder opened with one")]
    NotBitrate,
}

/// How an encoder spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Every picture at this QP (1..=51: QP 0 would be lossless, which the
    /// baseline profile cannot carry), or at the one given to
    /// [`X264::encode`].
    ConstantQp(u8),
    /// x264's average bitrate control under a VBV of `vbv_buffer_kbit`
    /// (filled at the bitrate).
    Bitrate { kbps: u32, vbv_buffer_kbit: u32 },
}

/// Named x264 speed presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
}

impl Preset {
    /// The name x264 knows it by.
    pub fn name(self) -> &'static CStr {
        match self {
            Preset::Ultrafast => c"ultrafast",
            Preset::Superfast => c"superfast",
            Preset::Veryfast => c"veryfast",
        }
    }
}

/// What an encoder is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub width: u32,
    pub height: u32,
    /// Frames per second, `num / den`: x264's rate control counts frames.
    pub fps: (u32, u32),
    pub preset: Preset,
    /// Sliced threads (each picture cut into this many slices); 0 lets
    /// x264 pick one per core.
    pub threads: u32,
    pub rate: Rate,
    /// A keyframe every this many frames; 0 = only on request.
    pub keyint: u32,
    /// Pictures may come with the macroblocks that did not change, which
    /// x264 then skips without analysing them ([`X264::encode`]).
    pub constant_blocks: bool,
    /// x264's sub-pixel refinement level (`subme`, 0..=11) instead of the
    /// preset's.
    pub subpel_refine: Option<u8>,
    /// P macroblocks may also be split into 8x8 partitions (x264's
    /// `p8x8`), besides the preset's partitions.
    pub p8x8: bool,
    /// Uneven multi-hexagon motion search (x264's `umh`), which finds a
    /// scroll or a dragged window that the presets' diamond misses,
    /// instead of the preset's.
    pub umh: bool,
}

impl Config {
    /// Helix's software baseline (GStreamer x264enc speed-preset=ultrafast
    /// tune=zerolatency, baseline profile), aiming at `bitrate_bps` with
    /// one second of VBV.
    pub fn baseline(width: u32, height: u32, fps: u32, bitrate_bps: u32, keyint: u32) -> Config {
        let kbps = (bitrate_bps / 1000).max(1);
        Config {
            width,
            height,
            fps: (fps.max(1), 1),
            preset: Preset::Ultrafast,
            threads: 0,
            rate: Rate::Bitrate {
                kbps,
                vbv_buffer_kbit: kbps,
            },
            keyint,
            constant_blocks: false,
            subpel_refine: None,
            p8x8: false,
            umh: false,
        }
    }
}

/// One encoded picture, borrowed from the encoder until its next call.
pub struct AccessUnit<'a> {
    pub data: &'a [u8],
    pub keyframe: bool,
}

/// An open x264 encoder for pictures of one size.
pub struct X264 {
    enc: NonNull<X264T>,
    config: Config,
    frames: i64,
}

// SAFETY: an x264 encoder has no affinity to the thread that opened it; it
// must only not be used from two threads at once, which `&mut self` on
// every call rules out.
unsafe impl Send for X264 {}

impl X264 {
    pub fn open(config: Config) -> Result<X264, Error> {
        if !available() {
            return Err(Error::NotBuilt);
        }
        let (qp, bitrate_kbps, vbv_buffer_kbit) = match config.rate {
            Rate::ConstantQp(qp) => (c_int::from(qp.clamp(1, 51)), 0, 0),
            Rate::Bitrate {
                kbps,
                vbv_buffer_kbit,
            } => (-1, int(kbps.max(1)), int(vbv_buffer_kbit.max(1))),
        };
        let raw = RawConfig {
            width: int(config.width),
            height: int(config.height),
            fps_num: int(config.fps.0.max(1)),
            fps_den: int(config.fps.1.max(1)),
            preset: config.preset.name().as_ptr(),
            threads: int(config.threads),
            qp,
            bitrate_kbps,
            vbv_buffer_kbit,
            keyint: int(config.keyint),
            constant_blocks: c_int::from(config.constant_blocks),
            subpel_refine: config.subpel_refine.map_or(-1, |s| c_int::from(s.min(11))),
            p8x8: c_int::from(config.p8x8),
            umh: c_int::from(config.umh),
        };
        // SAFETY: `raw` is a live `zc_x264_config` (same layout, see
        // `RawConfig`) whose preset points at a NUL-terminated static
        // string; the shim only reads it during the call and returns an
        // encoder it allocated, or null.
        let enc = unsafe { zc_x264_open(&raw) };
        let Some(enc) = NonNull::new(enc) else {
            return Err(Error::Open {
                width: config.width,
                height: config.height,
                rate: format!("{:?}, {:?}", config.rate, config.preset),
            });
        };
        Ok(X264 {
            enc,
            config,
            frames: 0,
        })
    }

    /// An encoder for `width` x `height` I420 pictures at `fps`, aiming at
    /// `bitrate_bps`; a keyframe every `keyint` frames (0 = only on
    /// request): [`Config::baseline`].
    pub fn new(
        width: u32,
        height: u32,
        fps: u32,
        bitrate_bps: u32,
        keyint: u32,
    ) -> Result<X264, Error> {
        X264::open(Config::baseline(width, height, fps, bitrate_bps, keyint))
    }

    /// The picture size the encoder was opened for.
    pub fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    /// What the encoder was opened with (the rate as last set).
    pub fn config(&self) -> Config {
        self.config
    }

    /// A new bitrate and VBV for an encoder opened with
    /// [`Rate::Bitrate`], from the next picture on. `vbv_max_kbps` is the
    /// rate the VBV fills at.
    pub fn set_bitrate(
        &mut self,
        kbps: u32,
        vbv_max_kbps: u32,
        vbv_buffer_kbit: u32,
    ) -> Result<(), Error> {
        if !matches!(self.config.rate, Rate::Bitrate { .. }) {
            return Err(Error::NotBitrate);
        }
        // SAFETY: `enc` is a live encoder, used by no other call now
        // (`&mut self`); the shim passes plain integers to x264.
        let rc = unsafe {
            zc_x264_set_bitrate(
                self.enc.as_ptr(),
                int(kbps.max(1)),
                int(vbv_max_kbps.max(1)),
                int(vbv_buffer_kbit.max(1)),
            )
        };
        if rc < 0 {
            return Err(Error::Reconfig(rc));
        }
        self.config.rate = Rate::Bitrate {
            kbps,
            vbv_buffer_kbit,
        };
        Ok(())
    }

    /// Encodes one picture of the size the encoder was opened for, at
    /// `qp` when given (else the rate control's). `None` when x264 held
    /// the picture back (not with these settings).
    ///
    /// `constant`, for an encoder opened with [`Config::constant_blocks`]:
    /// a byte per macroblock in raster order ([`macroblocks`] of them), 1
    /// where this picture is the same as the previous one. x264 codes those
    /// as skips without analysing them, unless the reference there is
    /// coarser than `qp` (so a refinement still refines). Ignored by other
    /// encoders.
    pub fn encode(
        &mut self,
        pic: &I420,
        force_keyframe: bool,
        qp: Option<u8>,
        constant: Option<&[u8]>,
    ) -> Result<Option<AccessUnit<'_>>, Error> {
        let (width, height) = self.size();
        if (pic.width(), pic.height()) != (width, height) {
            return Err(Error::WrongSize {
                got_width: pic.width(),
                got_height: pic.height(),
                width,
                height,
            });
        }
        let want = macroblocks(width, height);
        if let Some(flags) = constant.filter(|f| f.len() != want) {
            return Err(Error::ConstantBlocks {
                got: flags.len(),
                want,
            });
        }
        let (y, u, v) = (pic.y(), pic.u(), pic.v());
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut keyframe: c_int = 0;
        // SAFETY: `enc` is a live encoder, used by no other call now
        // (`&mut self`); the planes hold a whole `width` x `height` I420
        // picture at the strides passed (size checked above; I420 planes
        // are tightly packed), and x264 only reads them during the call
        // (it copies the picture in); `constant`, if any, holds a flag for
        // every macroblock (checked above) and x264 reads it only during the
        // call (no lookahead, no frame threads; the shim's free callback
        // makes x264 drop it at the end); `out` and `keyframe` are live
        // locals for the shim to fill.
        let size = unsafe {
            zc_x264_encode(
                self.enc.as_ptr(),
                y.as_ptr(),
                u.as_ptr(),
                v.as_ptr(),
                int(width),
                int(width / 2),
                self.frames,
                c_int::from(force_keyframe),
                qp.map_or(-1, |qp| c_int::from(qp.min(51))),
                constant.map_or(std::ptr::null(), <[u8]>::as_ptr),
                &mut out,
                &mut keyframe,
            )
        };
        self.frames += 1;
        let Ok(size) = usize::try_from(size) else {
            return Err(Error::Encode(size));
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
/// at open, so a value it accepted converts exactly.
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
                .encode(&pic, force, None, None)
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
    fn constant_blocks_are_skipped_without_a_look() {
        let (w, h) = (64, 48);
        let open = || {
            X264::open(Config {
                rate: Rate::ConstantQp(26),
                constant_blocks: true,
                ..Config::baseline(w, h, 30, 500_000, 0)
            })
            .unwrap()
        };
        let picture = |seed: u8| {
            let px: Vec<u8> = (0..w * h * 4)
                .map(|i| u8::try_from(i % 256).unwrap().wrapping_mul(seed))
                .collect();
            let mut pic = I420::default();
            pic.convert(&Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap())
                .unwrap();
            pic
        };
        let (first, second) = (picture(3), picture(7));
        let size_of_second = |flags: Option<&[u8]>| {
            let mut enc = open();
            // At one QP: x264 only skips a block whose reference is as fine.
            enc.encode(&first, false, Some(26), None).unwrap().unwrap();
            let au = enc
                .encode(&second, false, Some(26), flags)
                .unwrap()
                .unwrap();
            assert!(!au.keyframe);
            au.data.len()
        };
        // Told (wrongly) that nothing changed, x264 skips every block: a
        // few bytes, where the real change costs a picture's worth.
        let all = vec![1; macroblocks(w, h)];
        let (skipped, coded) = (size_of_second(Some(&all)), size_of_second(None));
        assert!(
            skipped < 32 && coded > 10 * skipped,
            "{skipped} B against {coded} B"
        );
        let mut enc = open();
        assert!(matches!(
            enc.encode(&first, false, None, Some(&all[1..])),
            Err(Error::ConstantBlocks { got: 11, want: 12 })
        ));
    }

    #[test]
    fn refuses_a_picture_of_another_size() {
        let mut enc = X264::new(32, 32, 30, 500_000, 0).unwrap();
        let mut pic = I420::default();
        let px = [0; 16 * 16 * 4];
        pic.convert(&Frame::new(16, 16, 64, PixelFormat::Xrgb8888, &px).unwrap())
            .unwrap();
        assert!(matches!(
            enc.encode(&pic, false, None, None),
            Err(Error::WrongSize { .. })
        ));
    }

    #[test]
    fn a_constant_qp_encoder_codes_each_picture_at_the_qp_it_is_given() {
        let (w, h) = (64, 48);
        let px: Vec<u8> = (0..w * h * 4)
            .map(|i| u8::try_from(i * 7 % 251).unwrap())
            .collect();
        let mut pic = I420::default();
        pic.convert(&Frame::new(w, h, w * 4, PixelFormat::Xrgb8888, &px).unwrap())
            .unwrap();
        let keyframe_at = |qp: u8| {
            let mut enc = X264::open(Config {
                rate: Rate::ConstantQp(26),
                ..Config::baseline(w, h, 30, 500_000, 0)
            })
            .unwrap();
            enc.encode(&pic, true, Some(qp), None)
                .unwrap()
                .unwrap()
                .data
                .len()
        };
        // Clamped to the range x264's default I/P/B ratios span around the
        // constant (23..=29), QP 4 would be coded at 23 and QP 50 at 29.
        let at = [4, 23, 29, 50].map(keyframe_at);
        assert!(
            at[0] * 2 > at[1] * 3 && at[3] * 2 < at[2],
            "keyframe bytes at QP 4, 23, 29, 50: {at:?}"
        );
    }

    #[test]
    fn only_a_bitrate_encoder_takes_a_new_bitrate() {
        let mut enc = X264::new(32, 32, 30, 500_000, 0).unwrap();
        enc.set_bitrate(900, 900, 450).unwrap();
        let mut qp = X264::open(Config {
            rate: Rate::ConstantQp(0),
            ..Config::baseline(32, 32, 30, 500_000, 0)
        })
        .expect("QP 0 is coded at 1: baseline has no lossless");
        assert!(matches!(
            qp.set_bitrate(900, 900, 450),
            Err(Error::NotBitrate)
        ));
    }
}
