//! Who may use the web viewer: the options that give the tokens, the extra
//! Hosts and Origins, and TLS, turned into the gateway's [`AccessConfig`]
//! and [`Tls`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use zerocast_web::{AccessConfig, Tls, Token};

/// Access to the web viewer. Tokens are never taken from the command line,
/// where any local user can read them with `ps`.
#[derive(Args, Debug, Clone, Default)]
pub struct WebAccessArgs {
    /// File holding the `control` token (watch and type). Default: a random
    /// one per start (also read from the ZEROCAST_TOKEN variable).
    #[arg(long, env = "ZEROCAST_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// File holding the `view` token (watch only). Default: a random one per
    /// start (also read from the ZEROCAST_VIEW_TOKEN variable).
    #[arg(long, env = "ZEROCAST_VIEW_TOKEN_FILE")]
    pub view_token_file: Option<PathBuf>,
    /// A Host the viewer is reached under besides the listen address and
    /// localhost (a DNS name, or a reverse proxy's), e.g. desk.example.com;
    /// repeatable.
    #[arg(long = "allow-host")]
    pub hosts: Vec<String>,
    /// A page origin allowed to open the viewer's WebSocket besides the
    /// viewer's own, e.g. `https://portal.example.com`; repeatable.
    #[arg(long = "allow-origin")]
    pub origins: Vec<String>,
    /// Serve HTTPS and WSS only, with this certificate chain (PEM, leaf
    /// first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback, where anyone on
    /// the path reads the tokens and the video: only for a reverse proxy in
    /// front that does TLS.
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_no_tls: bool,
}

impl WebAccessArgs {
    pub fn config(&self) -> anyhow::Result<AccessConfig> {
        Ok(AccessConfig {
            control: token(self.token_file.as_deref(), "ZEROCAST_TOKEN")?,
            view: token(self.view_token_file.as_deref(), "ZEROCAST_VIEW_TOKEN")?,
            hosts: self.hosts.clone(),
            origins: self.origins.clone(),
        })
    }

    /// The TLS the viewer is served with at `listen`, if any; refuses plain
    /// HTTP off loopback unless the operator insisted.
    pub fn tls(&self, listen: SocketAddr) -> anyhow::Result<Option<Tls>> {
        check_listen(listen, self.tls_cert.is_some(), self.insecure_no_tls)?;
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            if !is_loopback(listen) {
                tracing::warn!("serving plain HTTP on {listen} (--insecure-no-tls)");
            }
            return Ok(None);
        };
        let tls = Tls::from_pem_files(cert, key).context("loading --tls-cert and --tls-key")?;
        Ok(Some(tls))
    }
}

fn is_loopback(listen: SocketAddr) -> bool {
    listen.ip().to_canonical().is_loopback()
}

/// Whether the viewer may listen on `listen`: plain HTTP on loopback only,
/// unless `insecure_no_tls` says a TLS-terminating proxy is in front.
fn check_listen(listen: SocketAddr, tls: bool, insecure_no_tls: bool) -> anyhow::Result<()> {
    if tls || insecure_no_tls || is_loopback(listen) {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve the viewer on {listen} without TLS: anyone on the way would read \
         the tokens and the video. Give --tls-cert and --tls-key (PEM), or listen on loopback \
         (--listen 127.0.0.1:PORT); behind a reverse proxy that does TLS, pass --insecure-no-tls"
    )
}

/// The token from `file`, else from the variable `env`, else a random one.
fn token(file: Option<&Path>, env: &str) -> anyhow::Result<Token> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        return Token::parse(&text).with_context(|| format!("the token in {}", path.display()));
    }
    if let Ok(text) = std::env::var(env) {
        return Token::parse(&text).with_context(|| format!("the token in ${env}"));
    }
    Token::random().context("making a random token")
}

#[cfg(test)]
mod tests {
    use super::check_listen;

    #[test]
    fn plain_http_off_loopback_needs_tls_or_the_insecure_option() {
        for loopback in [
            "127.0.0.1:8080",
            "127.1.2.3:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            let addr = loopback.parse().unwrap();
            assert!(check_listen(addr, false, false).is_ok(), "{loopback}");
        }
        for exposed in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.168.1.5:8080",
            "[2001:db8::1]:443",
        ] {
            let addr = exposed.parse().unwrap();
            let refused = check_listen(addr, false, false).unwrap_err().to_string();
            assert!(
                refused.contains("--tls-cert") && refused.contains("--insecure-no-tls"),
                "{exposed}: {refused}"
            );
            assert!(
                check_listen(addr, true, false).is_ok(),
                "{exposed} with TLS"
            );
            assert!(
                check_listen(addr, false, true).is_ok(),
                "{exposed} insecure"
            );
        }
    }
}
