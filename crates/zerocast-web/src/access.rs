//! Who may use the gateway, sans I/O: a secret token per role, and the
//! Host and Origin a request may carry. Checked on every request before
//! anything else happens, so a refused viewer never gets a video byte.
//!
//! - The token (`?token=`) says the role: `control` watches and types,
//!   `view` only watches. Missing: 401; wrong: 403. Compared in constant time.
//! - Host must be one the operator serves under (default: the listen
//!   address and `localhost`), which stops DNS rebinding: a page of
//!   `evil.example` that resolves to 127.0.0.1 sends `Host: evil.example`.
//! - Origin, which browsers send with every WebSocket, must be the page's
//!   own (or one the operator allows), which stops another site's page from
//!   opening the socket even if it learned a token.

use std::fmt;
use std::net::SocketAddr;

use subtle::ConstantTimeEq;

/// What a viewer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Watch and send keyboard and mouse.
    Control,
    /// Watch only.
    View,
}

/// A secret that grants a role. Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Bytes of entropy in a generated token.
const TOKEN_BYTES: usize = 16;

/// Why a token the operator gave cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token needs at least 16 characters of [A-Za-z0-9_-], got {0}")]
    Weak(usize),
    #[error("the token has a character other than [A-Za-z0-9_-]")]
    BadCharacter,
    #[error("cannot read random bytes from the OS: {0}")]
    Random(#[from] getrandom::Error),
}

impl Token {
    /// A new random token (128 bits from the OS), hex.
    pub fn random() -> Result<Self, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token the operator chose (from a file or the environment; the
    /// surrounding whitespace is dropped). It goes into URLs as it is.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TokenError::BadCharacter);
        }
        if s.len() < 2 * TOKEN_BYTES {
            return Err(TokenError::Weak(s.len()));
        }
        Ok(Token(s.to_owned()))
    }

    /// The secret itself, for the URL printed to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// Why a request was refused: the HTTP status and a reason that names no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub reason: &'static str,
}

impl Denied {
    const NO_TOKEN: Denied = Denied {
        status: 401,
        reason: "a token is needed: open the URL zerocast printed",
    };
    const BAD_TOKEN: Denied = Denied {
        status: 403,
        reason: "wrong token",
    };
    const BAD_HOST: Denied = Denied {
        status: 403,
        reason: "this Host is not one zerocast serves (see --allow-host)",
    };
    const BAD_ORIGIN: Denied = Denied {
        status: 403,
        reason: "requests from another site's page are refused (see --allow-origin)",
    };
}

/// The gateway's access rules.
#[derive(Debug, Clone)]
pub struct Access {
    control: Token,
    view: Token,
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Access {
    /// Rules for a gateway bound to `bound`: Host may be that address or
    /// `localhost` with its port, plus `extra_hosts`; Origin may be
    /// `http(s)://` with any of those hosts, plus `extra_origins`.
    pub fn new(
        control: Token,
        view: Token,
        bound: SocketAddr,
        extra_hosts: &[String],
        extra_origins: &[String],
    ) -> Self {
        let mut hosts = vec![bound.to_string(), format!("localhost:{}", bound.port())];
        hosts.extend(extra_hosts.iter().map(|h| h.to_ascii_lowercase()));
        let mut origins: Vec<String> = hosts
            .iter()
            .flat_map(|h| [format!("http://{h}"), format!("https://{h}")])
            .collect();
        origins.extend(
            extra_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        Access {
            control,
            view,
            hosts,
            origins,
        }
    }

    pub fn token(&self, role: Role) -> &Token {
        match role {
            Role::Control => &self.control,
            Role::View => &self.view,
        }
    }

    /// Checks one request: its Host and Origin headers and its `token`
    /// query parameter. Host and Origin come first, so a foreign page
    /// learns nothing about tokens.
    pub fn check(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        token: Option<&str>,
    ) -> Result<Role, Denied> {
        let host = host.map(str::to_ascii_lowercase);
        if !host.is_some_and(|h| self.hosts.contains(&h)) {
            return Err(Denied::BAD_HOST);
        }
        // Browsers always send Origin with a WebSocket and with cross-site
        // requests; other clients (curl, helix's Go client) need not.
        if let Some(origin) = origin {
            if !self.origins.contains(&origin.to_ascii_lowercase()) {
                return Err(Denied::BAD_ORIGIN);
            }
        }
        let token = token.ok_or(Denied::NO_TOKEN)?;
        // Both compared, whatever the first says: no timing hint either way.
        let (control, view) = (self.control.matches(token), self.view.matches(token));
        match (control, view) {
            (true, _) => Ok(Role::Control),
            (false, true) => Ok(Role::View),
            (false, false) => Err(Denied::BAD_TOKEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(
            Token::parse("c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0").unwrap(),
            Token::parse("v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1").unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
            &["desk.example.com".into()],
            &["https://portal.example.com/".into()],
        )
    }

    const CONTROL: Option<&str> = Some("c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0");
    const VIEW: Option<&str> = Some("v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1v1");
    const HOST: Option<&str> = Some("127.0.0.1:8080");

    #[test]
    fn the_token_says_the_role() {
        let a = access();
        assert_eq!(a.check(HOST, None, CONTROL), Ok(Role::Control));
        assert_eq!(a.check(HOST, None, VIEW), Ok(Role::View));
        assert_eq!(a.check(HOST, None, None).unwrap_err().status, 401);
        assert_eq!(a.check(HOST, None, Some("c0c0")).unwrap_err().status, 403);
        assert_eq!(a.check(HOST, None, Some("")).unwrap_err().status, 403);
    }

    #[test]
    fn only_the_served_hosts_pass() {
        let a = access();
        for ok in ["localhost:8080", "LOCALHOST:8080", "desk.example.com"] {
            assert_eq!(a.check(Some(ok), None, CONTROL), Ok(Role::Control), "{ok}");
        }
        for rebinding in ["evil.example:8080", "127.0.0.1:9999", "localhost"] {
            assert_eq!(
                a.check(Some(rebinding), None, CONTROL),
                Err(Denied::BAD_HOST),
                "{rebinding}"
            );
        }
        assert_eq!(a.check(None, None, CONTROL), Err(Denied::BAD_HOST));
    }

    #[test]
    fn another_sites_page_is_refused_even_with_the_token() {
        let a = access();
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://portal.example.com",
        ] {
            assert_eq!(a.check(HOST, Some(ok), VIEW), Ok(Role::View), "{ok}");
        }
        for foreign in ["https://evil.example", "null", "http://127.0.0.1:9999"] {
            assert_eq!(
                a.check(HOST, Some(foreign), CONTROL),
                Err(Denied::BAD_ORIGIN),
                "{foreign}"
            );
        }
    }

    #[test]
    fn tokens_are_random_long_and_never_debug_printed() {
        let (a, b) = (Token::random().unwrap(), Token::random().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(Token::parse(a.expose()).is_ok());
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(matches!(Token::parse("short"), Err(TokenError::Weak(5))));
        assert!(matches!(
            Token::parse("has space in it and is long enough"),
            Err(TokenError::BadCharacter)
        ));
    }
}
