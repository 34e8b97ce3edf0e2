//! The host's end of the session channel: the agent in the guest's desktop
//! session (`zerocast-guest --session true`) connects over vsock, and
//! `control` viewers' resizes, pastes and typed text go to it while the
//! guest's clipboard comes back. One agent at a time: a new connection
//! (the session restarted) replaces the old.
//!
//! A resize and a clipboard are latest-wins, so a viewer's flood collapses
//! into the newest; typed text waits in a short queue and is dropped past
//! it (or when no agent is there). What the agent sends is checked like
//! anything from a guest: a bad message ends its connection.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{info, warn};
use zerocast_session::message::VERSION;
use zerocast_session::{wire, AgentMessage, Decoder, HostMessage};
use zerocast_web::GuestSession;

/// Typed texts waiting for the agent (each at most
/// [`zerocast_session::MAX_TYPED`] bytes).
const TYPED_QUEUE: usize = 64;
/// An agent that takes longer than this to read a message is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The session channel, shared by every viewer of the VM.
pub struct AgentSession {
    resize: watch::Sender<Option<(u32, u32)>>,
    to_guest_clipboard: watch::Sender<Option<String>>,
    typed: mpsc::Sender<String>,
    /// Taken by the connection being served.
    typed_rx: Mutex<mpsc::Receiver<String>>,
    from_guest_clipboard: watch::Sender<Option<Arc<str>>>,
    connected: AtomicBool,
}

impl AgentSession {
    /// Listens for the agent on `path` (where vsock delivers the guest's
    /// connections to the session port).
    pub fn listen(path: &Path) -> anyhow::Result<Arc<AgentSession>> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("listening for the session agent on {}", path.display()))?;
        let (typed, typed_rx) = mpsc::channel(TYPED_QUEUE);
        let session = Arc::new(AgentSession {
            resize: watch::Sender::new(None),
            to_guest_clipboard: watch::Sender::new(None),
            typed,
            typed_rx: Mutex::new(typed_rx),
            from_guest_clipboard: watch::Sender::new(None),
            connected: AtomicBool::new(false),
        });
        tokio::spawn(session.clone().accept(listener));
        Ok(session)
    }

    async fn accept(self: Arc<Self>, listener: UnixListener) {
        let mut current: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!("session agent listener: {e}");
                    return;
                }
            };
            if let Some(old) = current.take() {
                info!("a new session agent replaces the connected one");
                old.abort();
                let _ = old.await;
            }
            let me = self.clone();
            current = Some(tokio::spawn(async move {
                me.connected.store(true, Ordering::Release);
                if let Err(e) = me.serve(stream).await {
                    warn!("session agent: {e:#}");
                }
                me.connected.store(false, Ordering::Release);
            }));
        }
    }

    async fn serve(&self, stream: UnixStream) -> anyhow::Result<()> {
        let (mut rd, mut wr) = stream.into_split();
        let mut typed = self.typed_rx.lock().await;
        // Text typed before this agent came is not for it.
        while typed.try_recv().is_ok() {}
        let mut resize = self.resize.subscribe();
        let mut clipboard = self.to_guest_clipboard.subscribe();
        // A viewer's size asked for before the agent came still applies.
        if resize.borrow().is_some() {
            resize.mark_changed();
        }
        let mut decoder = Decoder::<AgentMessage>::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        let mut hello = false;
        loop {
            let msg = tokio::select! {
                n = rd.read(&mut buf) => {
                    let n = n.context("reading")?;
                    if n == 0 {
                        info!("session agent disconnected");
                        return Ok(());
                    }
                    decoder.push(&buf[..n]);
                    while let Some(msg) = decoder.next_message().context("a bad message")? {
                        self.received(msg, &mut hello)?;
                    }
                    continue;
                }
                Ok(()) = resize.changed() => {
                    let Some((width, height)) = *resize.borrow_and_update() else { continue };
                    HostMessage::Resize { width, height }
                }
                Ok(()) = clipboard.changed() => {
                    let Some(text) = clipboard.borrow_and_update().clone() else { continue };
                    HostMessage::Clipboard(text)
                }
                Some(text) = typed.recv() => HostMessage::Type(text),
            };
            out.clear();
            wire::encode(&msg, &mut out);
            tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out))
                .await
                .context("the agent stopped reading")?
                .context("writing")?;
        }
    }

    fn received(&self, msg: AgentMessage, hello: &mut bool) -> anyhow::Result<()> {
        match msg {
            AgentMessage::Hello {
                version,
                display: x_display,
            } => {
                anyhow::ensure!(
                    version == VERSION,
                    "agent speaks version {version}, this zerocast {VERSION}"
                );
                info!("session agent connected (display {x_display})");
                *hello = true;
            }
            _ if !*hello => anyhow::bail!("the agent did not say hello first"),
            AgentMessage::Clipboard(text) => {
                self.from_guest_clipboard.send_replace(Some(text.into()));
            }
            AgentMessage::Mode { width, height } => info!("guest screen now {width}x{height}"),
            AgentMessage::Failed(why) => warn!("session agent: {why}"),
        }
        Ok(())
    }
}

impl GuestSession for AgentSession {
    fn request(&self, msg: HostMessage) {
        if let Err(e) = msg.check() {
            warn!("session request refused: {e}");
            return;
        }
        match msg {
            HostMessage::Resize { width, height } => {
                self.resize.send_replace(Some((width, height)));
            }
            HostMessage::Clipboard(text) => {
                self.to_guest_clipboard.send_replace(Some(text));
            }
            HostMessage::Type(text) => {
                if !self.connected.load(Ordering::Acquire) {
                    warn!("no session agent: typed text dropped");
                } else if self.typed.try_send(text).is_err() {
                    warn!("the session agent is behind: typed text dropped");
                }
            }
        }
    }

    fn clipboard(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.from_guest_clipboard.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A fake agent: connected, hello said.
    async fn agent(path: &Path) -> UnixStream {
        let mut s = UnixStream::connect(path).await.unwrap();
        let hello = AgentMessage::Hello {
            version: VERSION,
            display: ":0".into(),
        };
        write(&mut s, &hello).await;
        s
    }

    async fn write(s: &mut UnixStream, msg: &AgentMessage) {
        let mut out = Vec::new();
        wire::encode(msg, &mut out);
        s.write_all(&out).await.unwrap();
    }

    /// The next message the host sends, within 5 s.
    async fn next(s: &mut UnixStream, d: &mut Decoder<HostMessage>) -> Option<HostMessage> {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(m) = d.next_message().unwrap() {
                    return Some(m);
                }
                // Closed, or reset (closed with our hello unread).
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => d.push(&buf[..n]),
                }
            }
        })
        .await
        .expect("the host answers within 5 s")
    }

    fn socket() -> (tempdir::Dir, std::path::PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("session.sock");
        (dir, path)
    }

    mod tempdir {
        /// A folder of its own under the temp dir, removed on drop.
        pub struct Dir(pub std::path::PathBuf);

        impl Dir {
            pub fn new() -> Dir {
                let n = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                let p = std::env::temp_dir().join(format!("zc-session-{}-{n}", std::process::id()));
                std::fs::create_dir(&p).unwrap();
                Dir(p)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn requests_reach_the_agent_and_its_clipboard_comes_back() {
        let (_dir, path) = socket();
        let session = AgentSession::listen(&path).unwrap();
        // Asked before the agent came: still applies once it is there.
        session.request(HostMessage::Resize {
            width: 1024,
            height: 768,
        });
        // Typed before the agent came: not for it.
        session.request(HostMessage::Type("lost".into()));
        let mut s = agent(&path).await;
        let mut d = Decoder::default();
        assert_eq!(
            next(&mut s, &mut d).await,
            Some(HostMessage::Resize {
                width: 1024,
                height: 768
            })
        );
        let mut clip = session.clipboard();
        write(&mut s, &AgentMessage::Clipboard("from the guest".into())).await;
        clip.changed().await.unwrap();
        assert_eq!(clip.borrow().as_deref(), Some("from the guest"));
        // Wait until the connection is marked before typing.
        while !session.connected.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        session.request(HostMessage::Type("é".into()));
        assert_eq!(
            next(&mut s, &mut d).await,
            Some(HostMessage::Type("é".into()))
        );
        session.request(HostMessage::Clipboard("from the page".into()));
        assert_eq!(
            next(&mut s, &mut d).await,
            Some(HostMessage::Clipboard("from the page".into()))
        );
    }

    #[tokio::test]
    async fn an_agent_that_breaks_the_protocol_is_dropped() {
        let (_dir, path) = socket();
        let _session = AgentSession::listen(&path).unwrap();
        // No hello first.
        let mut s = UnixStream::connect(&path).await.unwrap();
        write(&mut s, &AgentMessage::Clipboard("x".into())).await;
        assert_eq!(next(&mut s, &mut Decoder::default()).await, None);
        // A length past the limit.
        let mut s = agent(&path).await;
        s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert_eq!(next(&mut s, &mut Decoder::default()).await, None);
    }

    #[tokio::test]
    async fn a_new_agent_replaces_the_old_and_resizes_collapse() {
        let (_dir, path) = socket();
        let session = AgentSession::listen(&path).unwrap();
        let mut old = agent(&path).await;
        let mut s = agent(&path).await;
        assert_eq!(next(&mut old, &mut Decoder::default()).await, None);
        let mut d = Decoder::default();
        for width in [800, 1024, 1280] {
            session.request(HostMessage::Resize { width, height: 720 });
        }
        // The last is always delivered; earlier ones may have been skipped.
        let mut last = None;
        while last
            != Some(HostMessage::Resize {
                width: 1280,
                height: 720,
            })
        {
            last = next(&mut s, &mut d).await;
            assert!(last.is_some());
        }
        // Out of range: refused before it goes anywhere.
        session.request(HostMessage::Resize {
            width: 100_000,
            height: 720,
        });
        session.request(HostMessage::Clipboard("after".into()));
        assert_eq!(
            next(&mut s, &mut d).await,
            Some(HostMessage::Clipboard("after".into()))
        );
    }
}
