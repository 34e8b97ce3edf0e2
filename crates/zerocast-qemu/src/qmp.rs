//! An async QMP client: line-delimited JSON over QEMU's Unix socket
//! (`-qmp unix:PATH,server=on,wait=off`).
//!
//! One command at a time: [`Qmp::execute`] writes the command with an `id`
//! and reads until the reply with that `id`, skipping asynchronous events.
//! Lines longer than [`MAX_LINE`] are refused. Any failure other than QEMU
//! refusing a command leaves the stream in an unknown state, so the
//! connection is then marked broken and every later call fails at once.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::Instant;
use tracing::{debug, trace};

/// Longest QMP line accepted from QEMU, newline included.
pub const MAX_LINE: usize = 1 << 20;

/// How long one command (or the handshake) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`Qmp::connect`] retries while QEMU has not made its socket yet.
const CONNECT_RETRY: Duration = Duration::from_millis(50);

/// How much of a bad message an error quotes.
const QUOTE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error(
        "cannot connect to QMP socket {path} within {timeout:?}: {source} \
         (is QEMU running with -qmp unix:{path},server=on,wait=off?)"
    )]
    Connect {
        path: PathBuf,
        timeout: Duration,
        source: io::Error,
    },
    #[error("QMP socket I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("QEMU closed the QMP connection (has QEMU exited? see its stderr)")]
    Closed,
    #[error("QEMU sent a QMP line longer than {limit} bytes; the connection is dropped")]
    LineTooLong { limit: usize },
    #[error("QEMU sent invalid JSON on QMP ({source}): {line}")]
    Json {
        line: String,
        source: serde_json::Error,
    },
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP command {command} got no reply within {after:?}; the connection is dropped")]
    Timeout { command: String, after: Duration },
    #[error(
        "QEMU sent no QMP greeting within {after:?}: another client probably holds \
         this QMP socket (QEMU serves one at a time)"
    )]
    NoGreeting { after: Duration },
    #[error("the QMP connection is unusable after an earlier error: connect again")]
    Broken,
    #[error("{0} must be called inside a tokio runtime")]
    NoRuntime(&'static str),
}

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct Qmp {
    stream: BufReader<UnixStream>,
    next_id: u64,
    broken: bool,
}

impl Qmp {
    /// Connects to QEMU's QMP socket, retrying for up to `timeout` while
    /// the socket does not exist yet or refuses connections (QEMU still
    /// starting), then reads the greeting and enters command mode.
    ///
    /// QEMU serves one client per QMP socket at a time: a second
    /// connection is accepted but gets no greeting until the first closes
    /// ([`QmpError::NoGreeting`]). Give QEMU one `-qmp` per user.
    pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Qmp, QmpError> {
        let path = path.as_ref();
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(stream) => break stream,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) && Instant::now() + CONNECT_RETRY < deadline =>
                {
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
                Err(source) => {
                    return Err(QmpError::Connect {
                        path: path.to_owned(),
                        timeout,
                        source,
                    })
                }
            }
        };
        let mut qmp = Qmp {
            stream: BufReader::new(stream),
            next_id: 0,
            broken: false,
        };
        let greeting = tokio::time::timeout(COMMAND_TIMEOUT, qmp.read_message())
            .await
            .map_err(|_| QmpError::NoGreeting {
                after: COMMAND_TIMEOUT,
            })??;
        let Some(info) = greeting.get("QMP") else {
            return Err(QmpError::Protocol(format!(
                "expected the QMP greeting, got {}",
                quote(&greeting.to_string())
            )));
        };
        debug!(path = %path.display(), version = %info["version"]["qemu"], "QMP connected");
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value. `arguments`, if
    /// any, must be a JSON object. QEMU refusing the command is
    /// [`QmpError::Command`]; the connection stays usable after that one.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        if self.broken {
            return Err(QmpError::Broken);
        }
        let result = tokio::time::timeout(COMMAND_TIMEOUT, self.exchange(command, arguments))
            .await
            .unwrap_or_else(|_| {
                Err(QmpError::Timeout {
                    command: command.into(),
                    after: COMMAND_TIMEOUT,
                })
            });
        if let Err(e) = &result {
            if !matches!(e, QmpError::Command { .. }) {
                self.broken = true;
            }
        }
        result
    }

    async fn exchange(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        trace!(%line, "QMP ->");
        line.push('\n');
        self.stream.get_mut().write_all(line.as_bytes()).await?;

        loop {
            let message = self.read_message().await?;
            if message.get("event").is_some() {
                debug!(event = %message["event"], "QMP event");
                continue;
            }
            if message.get("id") != Some(&json!(id)) {
                // A reply to a command that timed out earlier cannot arrive
                // (a timeout breaks the connection), so this is QEMU's doing.
                return Err(QmpError::Protocol(format!(
                    "reply for another command (sent id {id}): {}",
                    quote(&message.to_string())
                )));
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let text = |key: &str| error[key].as_str().unwrap_or("?").to_owned();
                return Err(QmpError::Command {
                    command: command.into(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            return Err(QmpError::Protocol(format!(
                "neither return nor error: {}",
                quote(&message.to_string())
            )));
        }
    }

    /// Reads one non-empty line and parses it as JSON.
    async fn read_message(&mut self) -> Result<Value, QmpError> {
        loop {
            let mut line = Vec::new();
            let limit = MAX_LINE as u64;
            let n = (&mut self.stream)
                .take(limit)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(QmpError::Closed);
            }
            if line.last() != Some(&b'\n') {
                return Err(if n == MAX_LINE {
                    QmpError::LineTooLong { limit: MAX_LINE }
                } else {
                    QmpError::Closed
                });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            trace!(line = %String::from_utf8_lossy(&line).trim_end(), "QMP <-");
            return serde_json::from_slice(&line).map_err(|source| QmpError::Json {
                line: quote(&String::from_utf8_lossy(&line)),
                source,
            });
        }
    }
}

/// At most [`QUOTE`] characters of `text`, for error messages.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::net::UnixListener;

    /// A fresh socket path in the temporary folder.
    fn socket_path() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("zc-qmp-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}}, "capabilities": []}}"#;

    /// A fake QEMU: sends the greeting, then answers each request with
    /// `reply(request)`, a list of lines (`ID` replaced by the request's id).
    async fn fake_qemu(listener: UnixListener, reply: fn(&Value) -> Vec<String>) {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(format!("{GREETING}\r\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        while stream.read_line(&mut line).await.unwrap() > 0 {
            let request: Value = serde_json::from_str(&line).unwrap();
            line.clear();
            for out in reply(&request) {
                let out = out.replace("ID", &request["id"].to_string());
                stream.get_mut().write_all(out.as_bytes()).await.unwrap();
            }
        }
    }

    fn scripted(request: &Value) -> Vec<String> {
        match request["execute"].as_str().unwrap() {
            "qmp_capabilities" => vec![r#"{"return": {}, "id": ID}"#.into(), "\r\n".into()],
            "query-status" => vec![
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESUME"}"#.into(),
                "\r\n".into(),
                r#"{"return": {"status": "running", "running": true}, "id": ID}"#.into(),
                "\r\n".into(),
            ],
            "input-send-event" => {
                assert_eq!(request["arguments"]["events"][0]["type"], "key");
                vec![r#"{"return": {}, "id": ID}"#.into(), "\r\n".into()]
            }
            "flood" => vec!["x".repeat(MAX_LINE + 10)],
            _ => vec![
                r#"{"error": {"class": "CommandNotFound", "desc": "nope"}, "id": ID}"#.into(),
                "\r\n".into(),
            ],
        }
    }

    #[tokio::test]
    async fn waits_for_the_socket_then_talks_qmp() {
        let path = socket_path();
        let server_path = path.clone();
        let server = tokio::spawn(async move {
            // QEMU is slow to start: the socket appears later.
            tokio::time::sleep(Duration::from_millis(200)).await;
            fake_qemu(UnixListener::bind(&server_path).unwrap(), scripted).await;
        });
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).await.unwrap();

        let status = qmp.execute("query-status", None).await.unwrap();
        assert_eq!(status["status"], "running");

        let events = json!({"events": [{"type": "key", "data": {"down": true,
            "key": {"type": "qcode", "data": "a"}}}]});
        assert_eq!(
            qmp.execute("input-send-event", Some(events)).await.unwrap(),
            json!({})
        );

        match qmp.execute("no-such-command", None).await {
            Err(QmpError::Command { class, desc, .. }) => {
                assert_eq!((class.as_str(), desc.as_str()), ("CommandNotFound", "nope"))
            }
            other => panic!("expected a command error, got {other:?}"),
        }
        // A refused command leaves the connection usable.
        assert!(qmp.execute("query-status", None).await.is_ok());

        drop(qmp);
        server.await.unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn refuses_overlong_lines_and_stays_broken() {
        let path = socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(fake_qemu(listener, scripted));
        let mut qmp = Qmp::connect(&path, Duration::from_secs(5)).await.unwrap();
        match qmp.execute("flood", None).await {
            Err(QmpError::LineTooLong { limit }) => assert_eq!(limit, MAX_LINE),
            other => panic!("expected LineTooLong, got {other:?}"),
        }
        assert!(matches!(
            qmp.execute("query-status", None).await,
            Err(QmpError::Broken)
        ));
        drop(qmp);
        server.abort();
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn gives_up_on_a_missing_socket() {
        let path = socket_path();
        let started = Instant::now();
        match Qmp::connect(&path, Duration::from_millis(300)).await {
            Err(e @ QmpError::Connect { .. }) => {
                assert!(e.to_string().contains("server=on,wait=off"), "{e}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_reported() {
        let path = socket_path();
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream
                .write_all(b"{\"not\": \"a greeting\"}\n")
                .await
                .unwrap();
        });
        match Qmp::connect(&path, Duration::from_secs(5)).await {
            Err(QmpError::Protocol(text)) => assert!(text.contains("greeting"), "{text}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
        server.await.unwrap();

        std::fs::remove_file(&path).unwrap();
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        });
        assert!(matches!(
            Qmp::connect(&path, Duration::from_secs(5)).await,
            Err(QmpError::Closed)
        ));
        server.await.unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("short\r\n"), "short");
        let long = "é".repeat(1000);
        assert_eq!(quote(&long).chars().count(), QUOTE + 3);
    }
}
