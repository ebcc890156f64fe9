//! The one body type the router sends and answers with: nothing, a short text of its own,
//! or a streamed body from the other side. An enum rather than a boxed trait object, so the
//! hot path does not allocate for it; the streamed variant carries the backend's in-flight
//! guard, so a response counts as in flight until its last byte has been passed on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::inflight::InFlightGuard;

#[derive(Debug)]
pub(crate) enum RouterBody {
    Empty,
    /// A body the router wrote itself (an error page).
    Text(Option<Bytes>),
    /// A body streamed from the client or from a backend, frame by frame, never buffered.
    Stream {
        inner: Incoming,
        guard: Option<InFlightGuard>,
    },
}

impl RouterBody {
    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        RouterBody::Text(Some(text.into()))
    }

    pub(crate) fn stream(inner: Incoming, guard: Option<InFlightGuard>) -> Self {
        RouterBody::Stream { inner, guard }
    }
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RouterBody::Empty => Poll::Ready(None),
            RouterBody::Text(text) => Poll::Ready(text.take().map(|bytes| Ok(Frame::data(bytes)))),
            RouterBody::Stream { inner, guard } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                // The request is over when the body ends, fails, or says no more is coming:
                // give the in-flight count back then rather than when the body is dropped.
                let finished = match &polled {
                    Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
                    Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
                    Poll::Pending => false,
                };
                if finished {
                    guard.take();
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Empty => true,
            RouterBody::Text(text) => text.is_none(),
            RouterBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Empty => SizeHint::with_exact(0),
            RouterBody::Text(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            RouterBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}
