//! How a GPU backend registers its VM with `zerocast serve`, sans I/O: one
//! JSON line each way over the daemon's Unix socket, then the connection
//! stays open for as long as the VM runs (its end is the VM's end).
//!
//! ```text
//! backend -> daemon  {"version":1,"name":"desk1","uuid":"…","hxfr":"/run/…/hxfr.sock","scanouts":1,"fps":60}
//! daemon -> backend  {"ok":true,"streams":[0]}   or   {"ok":false,"error":"…"}
//! ```
//!
//! The daemon checks everything: a backend runs beside a guest and is no
//! more trusted than the bytes it passes on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The protocol's version.
pub const VERSION: u32 = 1;
/// Longest line either side sends.
pub const MAX_LINE: usize = 4096;
/// Longest VM name (libvirt allows more; a display name does not need it).
const MAX_NAME: usize = 128;

/// A backend's introduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub version: u32,
    /// The domain's name and UUID (libvirt's), or what the operator named
    /// a backend started by hand.
    pub name: String,
    pub uuid: String,
    /// The backend's HXFR Unix socket, where the daemon subscribes to its
    /// scanouts while someone watches.
    pub hxfr: PathBuf,
    pub scanouts: u32,
    /// The frame rate the backend encodes at.
    pub fps: u32,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub ok: bool,
    /// The daemon's stream ids for the scanouts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a hello is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HelloError {
    #[error("not a registration: {0}")]
    Json(String),
    #[error("protocol version {0}, this daemon speaks {VERSION}")]
    Version(u32),
    #[error("the name must be 1 to {MAX_NAME} printable characters")]
    Name,
    #[error("the UUID must be empty or 36 characters of hex digits and dashes")]
    Uuid,
    #[error("the HXFR socket must be an absolute path")]
    Hxfr,
    #[error("{0} scanouts: 1 to {max} are possible", max = zerocast_gpu::MAX_SCANOUTS)]
    Scanouts(u32),
    #[error("{0} frames per second: 1 to 240 are possible")]
    Fps(u32),
}

impl Hello {
    /// Parses and checks one line from a backend.
    pub fn parse(line: &str) -> Result<Hello, HelloError> {
        let hello: Hello =
            serde_json::from_str(line).map_err(|e| HelloError::Json(e.to_string()))?;
        if hello.version != VERSION {
            return Err(HelloError::Version(hello.version));
        }
        let name_ok = !hello.name.is_empty()
            && hello.name.chars().count() <= MAX_NAME
            && !hello.name.chars().any(char::is_control);
        if !name_ok {
            return Err(HelloError::Name);
        }
        let uuid_ok = hello.uuid.is_empty()
            || (hello.uuid.len() == 36
                && hello
                    .uuid
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '-'));
        if !uuid_ok {
            return Err(HelloError::Uuid);
        }
        if !hello.hxfr.is_absolute() {
            return Err(HelloError::Hxfr);
        }
        if hello.scanouts == 0 || hello.scanouts > zerocast_gpu::MAX_SCANOUTS {
            return Err(HelloError::Scanouts(hello.scanouts));
        }
        if hello.fps == 0 || hello.fps > 240 {
            return Err(HelloError::Fps(hello.fps));
        }
        Ok(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: VERSION,
            name: "desk1".into(),
            uuid: "3e1f0c52-7a4b-4a7e-9a55-0d5d1e0f2a11".into(),
            hxfr: "/run/zerocast-gpu-1/hxfr.sock".into(),
            scanouts: 2,
            fps: 60,
        }
    }

    #[test]
    fn a_hello_round_trips() {
        let line = serde_json::to_string(&hello()).unwrap();
        assert_eq!(Hello::parse(&line), Ok(hello()));
        let reply = Reply {
            ok: true,
            streams: vec![4, 5],
            error: None,
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(text, r#"{"ok":true,"streams":[4,5]}"#);
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), reply);
    }

    #[test]
    fn hostile_hellos_are_refused_with_a_reason() {
        let with = |f: &dyn Fn(&mut Hello)| {
            let mut h = hello();
            f(&mut h);
            Hello::parse(&serde_json::to_string(&h).unwrap())
        };
        assert_eq!(with(&|h| h.version = 2), Err(HelloError::Version(2)));
        assert_eq!(with(&|h| h.name = String::new()), Err(HelloError::Name));
        assert_eq!(with(&|h| h.name = "a\nb".into()), Err(HelloError::Name));
        assert_eq!(with(&|h| h.name = "x".repeat(129)), Err(HelloError::Name));
        assert_eq!(
            with(&|h| h.uuid = "not-a-uuid".into()),
            Err(HelloError::Uuid)
        );
        assert_eq!(
            with(&|h| h.hxfr = "hxfr.sock".into()),
            Err(HelloError::Hxfr)
        );
        assert_eq!(with(&|h| h.scanouts = 0), Err(HelloError::Scanouts(0)));
        assert_eq!(with(&|h| h.scanouts = 99), Err(HelloError::Scanouts(99)));
        assert_eq!(with(&|h| h.fps = 0), Err(HelloError::Fps(0)));
        assert!(matches!(Hello::parse("{}"), Err(HelloError::Json(_))));
        assert!(matches!(
            Hello::parse(r#"{"version":1,"extra":true}"#),
            Err(HelloError::Json(_))
        ));
    }
}
