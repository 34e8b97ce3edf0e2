//! Publishing: the access units this agent gets (zero-copy mode) or makes
//! (baseline mode) go to the host as a published stream, zerocast's HXFR
//! extension (docs/hxfr.md): CONFIG_REQ with the picture's size on the
//! stream's session id, then one FRAME_RESPONSE per access unit. The host
//! serves the stream to browsers beside the scanouts, and sends KEYFRAME_REQ
//! on that session when a viewer needs a keyframe.

use anyhow::Result;
use bytes::Bytes;
use zerocast_hxfr::{ConfigReq, FrameResponse, Message, Packet};

use crate::link::Link;

pub struct Publisher {
    stream: u16,
    size: Option<(u32, u32)>,
}

/// What a packet on the stream's session asks of the agent.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not for the published stream.
    NotOurs,
    Nothing,
    Keyframe,
}

impl Publisher {
    pub fn new(stream: u16) -> Self {
        Publisher { stream, size: None }
    }

    /// Sends one access unit; announces the picture's size first whenever it
    /// changed.
    pub fn send(
        &mut self,
        link: &mut Link,
        nals: Vec<Bytes>,
        keyframe: bool,
        pts_ns: i64,
        size: (u32, u32),
    ) -> Result<()> {
        if self.size != Some(size) {
            let config = ConfigReq {
                width: size.0,
                height: size.1,
                ..ConfigReq::default()
            };
            link.send_on(self.stream, Message::ConfigReq(config))?;
            self.size = Some(size);
        }
        let frame = FrameResponse {
            pts_ns,
            dts_ns: pts_ns,
            is_keyframe: keyframe,
            nals,
        };
        link.send_on(self.stream, Message::FrameResponse(frame))
    }

    /// Sorts out a packet from the host.
    pub fn reply(&self, packet: &Packet) -> Reply {
        if packet.session_id != self.stream {
            return Reply::NotOurs;
        }
        match &packet.message {
            Message::KeyframeReq => Reply::Keyframe,
            Message::Error(e) => {
                eprintln!(
                    "zerocast-guest: the host refused a published frame: {} {}",
                    e.code, e.message
                );
                Reply::Nothing
            }
            _ => Reply::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_streams_session_is_ours() {
        let p = Publisher::new(16);
        assert_eq!(
            p.reply(&Packet::new(16, Message::KeyframeReq)),
            Reply::Keyframe
        );
        assert_eq!(
            p.reply(&Packet::new(16, Message::ConfigResp)),
            Reply::Nothing
        );
        assert_eq!(
            p.reply(&Packet::new(0, Message::KeyframeReq)),
            Reply::NotOurs
        );
    }
}
