//! Credentials on the way in (bearer token or session cookie), the session cookie on the way
//! out, and the checks that keep the cookie from being used across sites.

use http::header::{self, HeaderMap, HeaderValue};

use crate::config::XdcProxyConfig;

/// A portal token and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
}

impl<'a> Credential<'a> {
    /// The bearer token if there is one, else the session cookie. Other `Authorization`
    /// schemes (say, a Jupyter token) are not the portal's and are ignored.
    pub(crate) fn from_headers(headers: &'a HeaderMap, cookie_name: &str) -> Option<Credential<'a>> {
        if let Some(token) = headers.get(header::AUTHORIZATION).and_then(bearer) {
            return Some(Credential::Bearer(token));
        }
        cookie(headers, cookie_name).map(Credential::Cookie)
    }

    pub(crate) fn token(&self) -> &'a str {
        match self {
            Credential::Bearer(token) | Credential::Cookie(token) => token,
        }
    }
}

fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The value of cookie `name`, looking through every `Cookie` header (HTTP/2 sends one per
/// cookie).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            let value = value.trim_matches('"');
            (key == name && !value.is_empty()).then_some(value)
        })
}

/// Removes cookie `name` from the request, keeping the others (Jupyter's `_xsrf` among them),
/// folded into one header as HTTP/1.1 requires.
pub(crate) fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let named = |pair: &str| pair.trim().split_once('=').is_some_and(|(key, _)| key == name);
    let present =
        headers.get_all(header::COOKIE).iter().any(|v| v.to_str().map_or(true, |v| v.split(';').any(named)));
    if !present && headers.get_all(header::COOKIE).iter().count() <= 1 {
        return;
    }
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !named(pair))
        .collect();
    let joined = kept.join("; ");
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&joined)
        && !joined.is_empty()
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Whether `Set-Cookie` from Jupyter may reach the browser: not the portal's cookie (a
/// notebook server must not plant a session for someone else), and not Jupyter's login cookie
/// (`username-...`, a credential for Jupyter itself; the proxy authenticates every request).
pub(crate) fn upstream_cookie_allowed(value: &HeaderValue, portal_cookie: &str) -> bool {
    let Ok(value) = value.to_str() else { return false };
    let name = value.split_once('=').map_or(value, |(name, _)| name).trim();
    name != portal_cookie && !name.starts_with("username-")
}

/// `Set-Cookie` for a new session. `host` is the request's host: on the configured domain or a
/// subdomain the cookie is scoped to the domain, so one login serves the path form and every
/// host-form name; elsewhere (an address, a test) it stays host-only.
pub(crate) fn session_cookie(
    config: &XdcProxyConfig,
    token: &str,
    host: Option<&str>,
) -> Option<HeaderValue> {
    if !token.bytes().all(is_cookie_octet) {
        return None;
    }
    HeaderValue::from_str(&cookie_attributes(config, token, host, false)).ok()
}

/// `Set-Cookie` that removes the session.
pub(crate) fn clear_cookie(config: &XdcProxyConfig, host: Option<&str>) -> HeaderValue {
    HeaderValue::from_str(&cookie_attributes(config, "", host, true))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn cookie_attributes(config: &XdcProxyConfig, value: &str, host: Option<&str>, expire: bool) -> String {
    let mut cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", config.cookie_name);
    if config.secure_cookie {
        cookie.push_str("; Secure");
    }
    let domain = &config.domain;
    if let Some(host) = host
        && (host == domain || host.strip_suffix(domain.as_str()).is_some_and(|label| label.ends_with('.')))
    {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    if expire {
        cookie.push_str("; Max-Age=0");
    }
    cookie
}

/// RFC 6265 `cookie-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Whether a cookie-authenticated request that changes something (or opens a WebSocket) comes
/// from a page of the same origin. Jupyter skips its own origin and XSRF checks for requests
/// carrying its token, which the proxy adds, so this check is the one left. Requests without
/// `Origin` (non-browser clients; browsers send it on POST and WebSocket) pass.
pub(crate) fn same_origin(headers: &HeaderMap, host: Option<&HeaderValue>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(|h| h.to_str())) else { return false };
    let Some((_, authority)) = origin.split_once("://") else { return false };
    authority.eq_ignore_ascii_case(host)
}

/// A `next` target that stays on this host: an absolute path, not `//host` or `/\host` (which
/// browsers read as another host), in plain printable ASCII.
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b'\\');
    ok.then_some(next)
}

/// Whether an anonymous request is a browser page load, which gets the login form rather than
/// a bare 401.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_beats_cookie_and_other_schemes_are_ignored() {
        let both = headers(&[("authorization", "Bearer abc"), ("cookie", "s=def")]);
        assert_eq!(Credential::from_headers(&both, "s"), Some(Credential::Bearer("abc")));
        let jupyter = headers(&[("authorization", "token xyz"), ("cookie", "a=1; s=def; b=2")]);
        assert_eq!(Credential::from_headers(&jupyter, "s"), Some(Credential::Cookie("def")));
        let h2 = headers(&[("cookie", "a=1"), ("cookie", "s=ghi")]);
        assert_eq!(Credential::from_headers(&h2, "s"), Some(Credential::Cookie("ghi")));
        assert_eq!(Credential::from_headers(&headers(&[("cookie", "ss=1")]), "s"), None);
    }

    #[test]
    fn the_portal_cookie_is_stripped_and_others_kept() {
        let mut map = headers(&[("cookie", "_xsrf=1; s=secret"), ("cookie", "b=2")]);
        strip_cookie(&mut map, "s");
        assert_eq!(map.get_all("cookie").iter().collect::<Vec<_>>(), ["_xsrf=1; b=2"]);
        let mut only = headers(&[("cookie", "s=secret")]);
        strip_cookie(&mut only, "s");
        assert!(!only.contains_key("cookie"));
    }

    #[test]
    fn upstream_cookies_that_would_log_someone_in_are_dropped() {
        let allowed = |v: &'static str| upstream_cookie_allowed(&HeaderValue::from_static(v), "s");
        assert!(allowed("_xsrf=2|abc; Path=/proj/x0/"));
        assert!(!allowed("s=planted; Domain=xdc.example.net"));
        assert!(!allowed("username-127-0-0-1-8888=\"2|x\"; HttpOnly"));
    }

    #[test]
    fn cookie_domain_only_on_the_configured_domain() {
        let mut config = XdcProxyConfig::new("xdc.example.net");
        let cookie = |c: &XdcProxyConfig, host| session_cookie(c, "t.o-k_en", host).unwrap();
        assert_eq!(
            cookie(&config, Some("x0-p.xdc.example.net")),
            "trellis_xdc_session=t.o-k_en; Path=/; HttpOnly; SameSite=Lax; Secure; Domain=xdc.example.net"
        );
        assert!(
            cookie(&config, Some("xdc.example.net")).to_str().unwrap().ends_with("Domain=xdc.example.net")
        );
        config.secure_cookie = false;
        assert_eq!(
            cookie(&config, Some("127.0.0.1")),
            "trellis_xdc_session=t.o-k_en; Path=/; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            cookie(&config, Some("evilxdc.example.net")),
            "trellis_xdc_session=t.o-k_en; Path=/; HttpOnly; SameSite=Lax"
        );
        assert!(session_cookie(&config, "a;b", None).is_none());
        assert!(clear_cookie(&config, None).to_str().unwrap().ends_with("Max-Age=0"));
    }

    #[test]
    fn next_must_stay_on_this_host() {
        assert_eq!(safe_next("/proj/x0/tree?a=b"), Some("/proj/x0/tree?a=b"));
        for bad in
            ["//evil.example", "/\\evil.example", "https://evil.example/", "evil", "", "/a b", "/a\r\nX: y"]
        {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origin_must_match_the_host() {
        let host = HeaderValue::from_static("xdc.example.net");
        assert!(same_origin(&headers(&[]), Some(&host)));
        assert!(same_origin(&headers(&[("origin", "https://XDC.example.net")]), Some(&host)));
        assert!(!same_origin(&headers(&[("origin", "https://x1-evil.xdc.example.net")]), Some(&host)));
        assert!(!same_origin(&headers(&[("origin", "null")]), Some(&host)));
        assert!(!same_origin(&headers(&[("origin", "https://xdc.example.net")]), None));
    }
}
