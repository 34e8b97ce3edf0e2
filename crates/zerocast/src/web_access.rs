//! Who may use the web viewer: the options that give the tokens and the
//! extra Hosts and Origins, turned into the gateway's [`AccessConfig`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use zerocast_web::{AccessConfig, Token};

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
    /// viewer's own, e.g. https://portal.example.com; repeatable.
    #[arg(long = "allow-origin")]
    pub origins: Vec<String>,
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
