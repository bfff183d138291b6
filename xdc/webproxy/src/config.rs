//! The proxy's settings.

use std::time::Duration;

use crate::XdcProxyError;

/// How the proxy is reached and how long it waits.
#[derive(Debug, Clone)]
pub struct XdcProxyConfig {
    /// The public name, e.g. `xdc.example.net`: the host of the path form
    /// (`https://xdc.example.net/<project>/<xdc>/`) and the suffix of Merge's host form
    /// (`https://<xdc>-<project>.xdc.example.net/jupyter`). The session cookie is scoped to it
    /// (`Domain=`) when a request arrives on it or a subdomain.
    pub domain: String,
    /// The session cookie holding the portal token.
    pub cookie_name: String,
    /// Mark the cookie `Secure`. Set it exactly when clients reach the proxy over HTTPS (TLS
    /// terminated in front of it); it also makes `X-Forwarded-Proto` say `https`.
    pub secure_cookie: bool,
    /// Trust `X-Forwarded-For`/`-Proto` from the peer (the portal's ingress in front): the
    /// client address is appended to the chain instead of replacing it. Leave off when
    /// clients connect directly.
    pub trust_forwarded: bool,
    pub timeouts: Timeouts,
}

/// Time limits. Upgraded (WebSocket) connections have none: a kernel channel may be quiet for
/// hours; they end when either side closes or the proxy stops.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Connecting to a Jupyter server.
    pub connect: Duration,
    /// From sending a request to Jupyter until its response headers (not the body, which may
    /// stream for as long as it takes).
    pub response: Duration,
    /// A client's request headers must arrive within this.
    pub header_read: Duration,
    /// One call to the policy (the portal).
    pub policy: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            // Starting a kernel can take a while on a loaded XDC.
            response: Duration::from_secs(120),
            header_read: Duration::from_secs(30),
            policy: Duration::from_secs(10),
        }
    }
}

impl XdcProxyConfig {
    /// Defaults for `domain`: cookie `trellis_xdc_session`, `Secure`, forwarded headers
    /// replaced, default timeouts.
    pub fn new(domain: impl Into<String>) -> XdcProxyConfig {
        XdcProxyConfig {
            domain: domain.into(),
            cookie_name: "trellis_xdc_session".to_owned(),
            secure_cookie: true,
            trust_forwarded: false,
            timeouts: Timeouts::default(),
        }
    }

    pub(crate) fn validate(&mut self) -> Result<(), XdcProxyError> {
        self.domain = self.domain.trim_end_matches('.').to_ascii_lowercase();
        let domain_ok = !self.domain.is_empty()
            && self.domain.split('.').all(|label| {
                !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !domain_ok {
            return Err(XdcProxyError::Config(format!("domain {:?} is not a DNS name", self.domain)));
        }
        // RFC 6265 token characters, so the name needs no quoting anywhere.
        let cookie_ok = !self.cookie_name.is_empty()
            && self.cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !cookie_ok {
            return Err(XdcProxyError::Config(format!("cookie name {:?} is not a token", self.cookie_name)));
        }
        Ok(())
    }
}
