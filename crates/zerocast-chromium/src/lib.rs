//! Headless Chromium, driven over the DevTools protocol: open a page,
//! evaluate JavaScript in it, read values back. Used by zerocast's browser
//! tests and benchmark so that decoding is checked by a real browser.
//!
//! Chromium starts with the flags these machines need (no sandbox as root,
//! no GPU, no background network traffic) and a fresh profile directory,
//! removed when the [`Chromium`] is dropped along with the process.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {binary}: {source}; install it with scripts/install-deps.sh (Debian package chromium)")]
    Launch {
        binary: String,
        source: std::io::Error,
    },
    #[error("chromium did not print its DevTools address within {0:?}")]
    NoDevTools(Duration),
    #[error("DevTools connection: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("DevTools call {method} failed: {detail}")]
    Call { method: String, detail: String },
    #[error("DevTools connection closed")]
    Closed,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A headless Chromium with one page attached.
pub struct Chromium {
    child: Child,
    devtools: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    profile: PathBuf,
}

/// The flags every run uses (see the project's test guide).
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
];

const START_TIMEOUT: Duration = Duration::from_secs(30);

impl Chromium {
    /// Starts Chromium (`$CHROMIUM` or `chromium`) and opens `url`.
    pub async fn open(url: &str) -> Result<Self, Error> {
        Chromium::open_with(url, &[]).await
    }

    /// Like [`Chromium::open`], with `extra_flags` after [`FLAGS`] (a test
    /// certificate to trust, say).
    pub async fn open_with(url: &str, extra_flags: &[&str]) -> Result<Self, Error> {
        static RUN: AtomicU32 = AtomicU32::new(0);
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(format!(
            "zerocast-chromium-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let mut child = Command::new(&binary)
            .args(FLAGS)
            .args(extra_flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Launch {
                binary: binary.clone(),
                source,
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or(Error::NoDevTools(START_TIMEOUT))?;
        let address = tokio::time::timeout(START_TIMEOUT, async {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = devtools_address(&line) {
                    let address = address.to_owned();
                    // Keep draining stderr so Chromium never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Some(address);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or(Error::NoDevTools(START_TIMEOUT))?;
        let (devtools, _) = tokio_tungstenite::connect_async(address.as_str()).await?;
        let mut chromium = Chromium {
            child,
            devtools,
            session: String::new(),
            next_id: 1,
            profile,
        };
        let target = chromium
            .call("Target.createTarget", json!({ "url": url }))
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_owned();
        let attached = chromium
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        chromium.session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(chromium)
    }

    /// Sends one DevTools command (to the page once attached) and waits for its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.devtools.send(Message::text(msg.to_string())).await?;
        loop {
            let reply = self.devtools.next().await.ok_or(Error::Closed)??;
            let Message::Text(text) = reply else { continue };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if v["id"].as_u64() != Some(id) {
                continue; // an event, or another call's answer
            }
            if let Some(e) = v.get("error") {
                return Err(Error::Call {
                    method: method.into(),
                    detail: e.to_string(),
                });
            }
            return Ok(v["result"].clone());
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, Error> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(Error::Call {
                method: "Runtime.evaluate".into(),
                detail: ex.to_string(),
            });
        }
        Ok(r["result"]["value"].clone())
    }

    /// Saves a PNG screenshot of the page.
    pub async fn screenshot(&mut self, path: &std::path::Path) -> Result<(), Error> {
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        use base64::Engine;
        let data = r["data"].as_str().unwrap_or_default();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| Error::Call {
                method: "Page.captureScreenshot".into(),
                detail: e.to_string(),
            })?;
        std::fs::write(path, png)?;
        Ok(())
    }
}

/// The browser's DevTools WebSocket address, if `line` of Chromium's stderr
/// announces it ("DevTools listening on ws://...").
fn devtools_address(line: &str) -> Option<&str> {
    line.find("ws://").map(|at| line[at..].trim())
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[cfg(test)]
mod tests {
    use super::devtools_address;

    #[test]
    fn devtools_address_is_read_from_the_announcement_only() {
        assert_eq!(
            devtools_address(
                "DevTools listening on ws://127.0.0.1:39041/devtools/browser/5f1c2e7a "
            ),
            Some("ws://127.0.0.1:39041/devtools/browser/5f1c2e7a")
        );
        assert_eq!(
            devtools_address("[1208/101112.123:ERROR:bus.cc(407)] Failed to connect to the bus"),
            None
        );
    }
}
