//! Request/response mode: FRAME_REQUEST names a resource; the host checks
//! the request against the resource it really has, encodes it with that
//! session's encoder and answers FRAME_RESPONSE or ERROR.

use std::sync::Arc;

use bytes::Bytes;
use zerocast_encode::{new_encoder, EncoderKind, EncoderSettings, Quality, VideoEncoder};
use zerocast_frame::{Damage, Frame, PixelFormat};
use zerocast_hxfr::{ErrorCode, FrameRequest};
use zerocast_pipeline::{ResourceError, ResourceReader};

use crate::budget::{EncoderMemory, Reservation};

/// An HXFR ERROR to send back: the code and a message that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
        }
    }
}

/// One encoded answer to a FRAME_REQUEST.
#[derive(Debug, Clone)]
pub struct EncodedReply {
    pub keyframe: bool,
    pub access_unit: Bytes,
}

/// One session's encoder (a guest's stream, by session id).
pub struct Session {
    encoder: Box<dyn VideoEncoder>,
    force_keyframe: bool,
    out: Vec<u8>,
    memory: Arc<EncoderMemory>,
    /// The picture size paid for, and the payment.
    held: Option<((u32, u32), Reservation)>,
}

impl Session {
    /// The encoder's memory is paid from `memory` once the picture size is
    /// known (at the first request), before anything is allocated for it.
    pub fn new(
        kind: EncoderKind,
        settings: EncoderSettings,
        memory: Arc<EncoderMemory>,
    ) -> Result<Self, ErrorReply> {
        let encoder = new_encoder(kind, settings)
            .map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string()))?;
        Ok(Session {
            encoder,
            force_keyframe: true,
            out: Vec::new(),
            memory,
            held: None,
        })
    }

    /// Pays for encoding `size` pictures, giving back what a former size held.
    fn pay_for(&mut self, size: (u32, u32)) -> Result<(), ErrorReply> {
        if self.held.as_ref().is_some_and(|(held, _)| *held == size) {
            return Ok(());
        }
        self.held = None;
        let reservation = self
            .memory
            .reserve(EncoderMemory::estimate(size.0, size.1))
            .map_err(|e| ErrorReply::new(ErrorCode::Internal, e.to_string()))?;
        self.held = Some((size, reservation));
        Ok(())
    }

    pub fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    pub fn reconfigure(&mut self, settings: EncoderSettings) -> Result<(), ErrorReply> {
        self.encoder
            .reconfigure(settings)
            .map_err(|e| ErrorReply::new(ErrorCode::EncodeFailed, e.to_string()))
    }

    pub fn settings(&self) -> EncoderSettings {
        self.encoder.settings()
    }

    /// Encodes the resource a request names. Blocking: run it off the
    /// async runtime.
    pub fn encode(
        &mut self,
        req: &FrameRequest,
        resources: &dyn ResourceReader,
    ) -> Result<EncodedReply, ErrorReply> {
        let mut outcome = Err(ErrorReply::new(
            ErrorCode::Internal,
            "resource was not read",
        ));
        let force = self.force_keyframe || req.force_keyframe;
        let read = resources.read(req.resource_id, &mut |frame| {
            outcome = check_request(req, &frame).and_then(|()| {
                self.pay_for((frame.width(), frame.height()))?;
                self.out.clear();
                self.encoder
                    // A request names a resource, not what changed in it.
                    .encode(
                        &frame,
                        &Damage::full(),
                        force,
                        Quality::Motion,
                        &mut self.out,
                    )
                    .map_err(|e| ErrorReply::new(ErrorCode::EncodeFailed, e.to_string()))
            });
        });
        match read {
            Err(e @ ResourceError::NotFound(_)) => {
                return Err(ErrorReply::new(ErrorCode::ResourceNotFound, e.to_string()))
            }
            Err(e @ ResourceError::NoPixels(_)) => {
                return Err(ErrorReply::new(
                    ErrorCode::NoShareableSurface,
                    e.to_string(),
                ))
            }
            Ok(()) => {}
        }
        let encoded = outcome?;
        self.force_keyframe = false;
        Ok(EncodedReply {
            keyframe: encoded.keyframe,
            access_unit: Bytes::copy_from_slice(&self.out),
        })
    }
}

/// Everything in a request is guest-controlled: it must describe the
/// resource the host really has, or nothing is read.
pub fn check_request(req: &FrameRequest, frame: &Frame<'_>) -> Result<(), ErrorReply> {
    let Some(format) = PixelFormat::from_fourcc(req.format) else {
        return Err(ErrorReply::new(
            ErrorCode::InvalidMessage,
            format!(
                "format {:#010x} is not one the host reads (AR24, XR24, AB24, XB24)",
                req.format
            ),
        ));
    };
    // Alpha or padding in the fourth byte reads the same; channel order must match.
    let order_matches = format.is_bgr_order() == frame.format().is_bgr_order();
    if (req.width, req.height, req.stride) != (frame.width(), frame.height(), frame.stride())
        || !order_matches
    {
        return Err(ErrorReply::new(
            ErrorCode::InvalidMessage,
            format!(
                "request says {}x{} stride {} {:?}, resource {} is {}x{} stride {} {:?}",
                req.width,
                req.height,
                req.stride,
                format,
                req.resource_id,
                frame.width(),
                frame.height(),
                frame.stride(),
                frame.format()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(w: u32, h: u32, stride: u32, format: u32) -> FrameRequest {
        FrameRequest {
            resource_id: 1,
            width: w,
            height: h,
            format,
            stride,
            ..FrameRequest::default()
        }
    }

    #[test]
    fn requests_must_match_the_real_resource() {
        let px = vec![0u8; 64 * 4 * 32];
        let frame = Frame::new(64, 32, 256, PixelFormat::Xrgb8888, &px).unwrap();
        let ar24 = PixelFormat::Argb8888.fourcc();
        assert!(check_request(&request(64, 32, 256, ar24), &frame).is_ok());
        assert!(check_request(
            &request(64, 32, 256, PixelFormat::Xrgb8888.fourcc()),
            &frame
        )
        .is_ok());
        for bad in [
            request(65, 32, 256, ar24),
            request(64, 33, 256, ar24),
            request(64, 32, 1 << 30, ar24),
            request(64, 32, 256, PixelFormat::Abgr8888.fourcc()),
            request(64, 32, 256, 0x3231_564E),
            request(u32::MAX, u32::MAX, u32::MAX, 0),
        ] {
            let e = check_request(&bad, &frame).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidMessage, "{bad:?}");
        }
    }
}
