//! Keeping Jupyter's token out of what the browser sees. Notebook 6 writes its token into
//! every page it renders for a token-authenticated request (`data-jupyter-api-token`, and
//! `?token=` in the dashboard link), and every request through the proxy is one. The proxy
//! overwrites the token in HTML with zeros of the same length, so `Content-Length` and
//! streaming stay as they are; the page's scripts then send a token the proxy replaces, and
//! a `token` query parameter (which Jupyter would prefer over the header) is removed on the way
//! in.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A response body with every occurrence of a secret overwritten, even one split across
/// frames: the last `secret.len() - 1` bytes of each frame wait for the next.
#[derive(Debug)]
pub(crate) struct Redacted<B = Incoming> {
    body: B,
    secret: Bytes,
    carry: BytesMut,
    /// Trailers that arrived while bytes were still held back.
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

impl<B> Redacted<B> {
    pub(crate) fn new(body: B, secret: &str) -> Redacted<B> {
        Redacted {
            body,
            secret: Bytes::copy_from_slice(secret.as_bytes()),
            carry: BytesMut::new(),
            trailers: None,
            done: false,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Redacted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                if !this.carry.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(this.carry.split().freeze()))));
                }
                return Poll::Ready(this.trailers.take().map(Ok));
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.carry.extend_from_slice(&data);
                        mask(&mut this.carry, &this.secret);
                        let keep = this.secret.len().saturating_sub(1).min(this.carry.len());
                        let ready_len = this.carry.len() - keep;
                        if ready_len > 0 {
                            return Poll::Ready(Some(Ok(Frame::data(
                                this.carry.split_to(ready_len).freeze(),
                            ))));
                        }
                    }
                    Err(trailers) => {
                        this.trailers = Some(trailers);
                        this.done = true;
                    }
                },
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => this.done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.carry.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Masking keeps lengths, so the backend's hint plus what is held back is exact.
        let mut hint = self.body.size_hint();
        let held = self.carry.len() as u64;
        hint.set_lower(hint.lower() + held);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

fn mask(data: &mut [u8], secret: &[u8]) {
    let Some(&first) = secret.first() else { return };
    let mut at = 0;
    while at + secret.len() <= data.len() {
        match data[at..].iter().position(|&b| b == first) {
            Some(offset) => at += offset,
            None => return,
        }
        if data.get(at..at + secret.len()) == Some(secret) {
            data[at..at + secret.len()].fill(b'0');
            at += secret.len();
        } else {
            at += 1;
        }
    }
}

/// The path and query without any `token` parameter, or `None` when there is none.
pub(crate) fn without_token_param(path: &PathAndQuery) -> Option<PathAndQuery> {
    let query = path.query()?;
    let is_token = |pair: &str| pair.split('=').next() == Some("token");
    if !query.split('&').any(is_token) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !is_token(pair)).collect();
    let rebuilt =
        if kept.is_empty() { path.path().to_owned() } else { format!("{}?{}", path.path(), kept.join("&")) };
    PathAndQuery::try_from(rebuilt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_masked_in_place() {
        let mut page = b"a=\"SECRET\" href=\"/tree?token=SECRET\" SECRE".to_vec();
        mask(&mut page, b"SECRET");
        assert_eq!(page, b"a=\"000000\" href=\"/tree?token=000000\" SECRE");
    }

    #[tokio::test]
    async fn a_secret_split_across_frames_is_masked() {
        use http_body_util::BodyExt;
        let chunks = ["<p data-t=\"SEC", "R", "ET\">", "SECRET", "SE"];
        let frames =
            chunks.map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c.as_bytes()))));
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let out = Redacted::new(body, "SECRET").collect().await.unwrap().to_bytes();
        assert_eq!(out, "<p data-t=\"000000\">000000SE");
    }

    #[test]
    fn token_parameters_are_removed() {
        let strip =
            |p: &'static str| without_token_param(&PathAndQuery::from_static(p)).map(|p| p.to_string());
        assert_eq!(strip("/p/x/tree?token=abc"), Some("/p/x/tree".into()));
        assert_eq!(strip("/p/x/tree?a=1&token=abc&b=2"), Some("/p/x/tree?a=1&b=2".into()));
        assert_eq!(strip("/p/x/tree?tokens=1"), None);
        assert_eq!(strip("/p/x/tree"), None);
    }
}
