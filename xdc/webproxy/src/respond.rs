//! Response bodies (Jupyter's streamed through, or a short one the proxy writes) and the
//! answers the proxy writes itself, the login page among them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::redact::Redacted;

/// The body of a response from the proxy: Jupyter's, streamed frame by frame, or the proxy's
/// own.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    Upstream(Incoming),
    /// An HTML page from Jupyter, with its token masked.
    Redacted(Redacted),
    Local(Option<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Redacted(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Local(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.is_end_stream(),
            ProxyBody::Redacted(body) => body.is_end_stream(),
            ProxyBody::Local(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.size_hint(),
            ProxyBody::Redacted(body) => body.size_hint(),
            ProxyBody::Local(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

fn local(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let body: Bytes = body.into();
    let mut response = Response::new(ProxyBody::Local((!body.is_empty()).then_some(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Answers about who may see what must not be cached by the browser or anything between.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A plain-text answer; `reason` ends with a newline.
pub(crate) fn text(status: StatusCode, reason: impl std::fmt::Display) -> Response<ProxyBody> {
    local(status, "text/plain; charset=utf-8", format!("{reason}\n"))
}

/// 401 for a client that is not a browser: it should send `Authorization: Bearer`.
pub(crate) fn unauthorized(reason: &str, invalid_token: bool) -> Response<ProxyBody> {
    let mut response = text(StatusCode::UNAUTHORIZED, reason);
    let challenge = if invalid_token {
        "Bearer realm=\"trellis\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"trellis\""
    };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// A redirect to `location`, which the caller has checked is a path on this host.
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response<ProxyBody> {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = local(status, "text/plain; charset=utf-8", Bytes::new());
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "the path cannot be redirected"),
    }
}

/// The login form. `next` goes back in a hidden field; `error` is shown above the form.
pub(crate) fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response<ProxyBody> {
    let error =
        error.map_or_else(String::new, |e| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)));
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Trellis XDC</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 22rem; margin: 4rem auto; padding: 0 1rem; }}
label {{ display: block; margin-top: 1rem; }}
input[type=text], input[type=password] {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1.5rem; padding: .5rem 1.5rem; }}
.error {{ color: #a00; }}
</style>
</head>
<body>
<h1>Sign in</h1>
<p>Use your portal account to reach your experiment development container.</p>
{error}<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label>Username <input type="text" name="username" autocomplete="username" required autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
</body>
</html>
"#,
        action = crate::route::LOGIN_PATH,
        next = escape(next),
    );
    let mut response = local(status, "text/html; charset=utf-8", page);
    // The form must not be framed by another site (clickjacking a password field).
    response.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_escapes_what_it_echoes() {
        let response = login_page(StatusCode::UNAUTHORIZED, "/p/x/\"><script>", Some("<b>no</b>"));
        let ProxyBody::Local(Some(body)) = response.body() else { panic!("a local body") };
        let page = std::str::from_utf8(body).unwrap();
        assert!(page.contains("value=\"/p/x/&quot;&gt;&lt;script&gt;\""));
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"));
        assert!(!page.contains("<script>"));
    }
}
