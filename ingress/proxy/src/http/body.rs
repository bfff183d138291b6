//! Request and response bodies as they pass through the proxy: streamed frame by frame,
//! never collected.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::backend::Reuse;
use crate::pool::InFlight;

/// The body sent to a backend: the client's stream, or nothing (which lets a bodiless request
/// be sent again to another backend).
#[derive(Debug)]
pub(crate) enum RequestBody {
    Streaming(Incoming),
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Streaming(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming(body) => body.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming(body) => body.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body returned to a client: a backend's stream (holding the backend's in-flight count
/// until the last byte, so least-connections sees long downloads), or a short message the
/// proxy wrote itself.
#[derive(Debug)]
pub(crate) enum ResponseBody {
    /// `reuse` returns the backend connection to its idle list once the body has ended.
    Backend {
        body: Incoming,
        _in_flight: InFlight,
        reuse: Option<Reuse>,
    },
    Local(Option<Bytes>),
}

impl ResponseBody {
    pub(crate) fn backend(body: Incoming, in_flight: InFlight, mut reuse: Option<Reuse>) -> ResponseBody {
        // A bodiless response (204, 304, HEAD) may never be polled; its connection is free now.
        if let Some(reuse) = &mut reuse {
            reuse.done = body.is_end_stream();
        }
        ResponseBody::Backend { body, _in_flight: in_flight, reuse }
    }

    pub(crate) fn local(text: &'static str) -> ResponseBody {
        ResponseBody::Local((!text.is_empty()).then(|| Bytes::from_static(text.as_bytes())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Backend { body, reuse, .. } => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                if let Some(reuse) = reuse
                    && (matches!(frame, Poll::Ready(None)) || body.is_end_stream())
                {
                    reuse.done = true;
                }
                frame
            }
            ResponseBody::Local(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Backend { body, .. } => body.is_end_stream(),
            ResponseBody::Local(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Backend { body, .. } => body.size_hint(),
            ResponseBody::Local(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
