//! The one body type the router sends and answers with: nothing, a short text of its own,
//! or a streamed body from the other side. An enum rather than a boxed trait object, so the
//! hot path does not allocate for it. A response streamed from an instance carries the
//! instance's in-flight guard, so it counts as in flight until its last byte has been
//! passed on, and the lease of its connection, which goes back to the pool at that moment.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::inflight::InFlightGuard;
use super::pool::Lease;

#[derive(Debug)]
pub(crate) enum RouterBody {
    Empty,
    /// A body the router wrote itself (an error page).
    Text(Option<Bytes>),
    /// A request body streamed from the client, frame by frame, never buffered.
    Request(Incoming),
    /// A response body streamed from an instance, frame by frame, never buffered.
    Response {
        inner: Incoming,
        guard: Option<InFlightGuard>,
        lease: Option<Lease>,
    },
}

impl RouterBody {
    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        RouterBody::Text(Some(text.into()))
    }

    /// An instance's response body. One that is already whole (empty, or `HEAD`) gives
    /// its connection back at once.
    pub(crate) fn response(inner: Incoming, guard: InFlightGuard, lease: Lease) -> Self {
        let lease = if inner.is_end_stream() {
            lease.give_back();
            None
        } else {
            Some(lease)
        };
        RouterBody::Response {
            inner,
            guard: Some(guard),
            lease,
        }
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
            RouterBody::Request(inner) => Pin::new(inner).poll_frame(cx),
            RouterBody::Response {
                inner,
                guard,
                lease,
            } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                // The request is over when the body ends, fails, or says no more is coming:
                // give the in-flight count back then rather than when the body is dropped,
                // and the connection too when the body was read whole.
                match &polled {
                    Poll::Ready(None) => finish(guard, lease, true),
                    Poll::Ready(Some(Err(_))) => finish(guard, lease, false),
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => finish(guard, lease, true),
                    Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Empty => true,
            RouterBody::Text(text) => text.is_none(),
            RouterBody::Request(inner) | RouterBody::Response { inner, .. } => {
                inner.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Empty => SizeHint::with_exact(0),
            RouterBody::Text(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            RouterBody::Request(inner) | RouterBody::Response { inner, .. } => inner.size_hint(),
        }
    }
}

/// A response is over: its in-flight count is given back, and its connection too when the
/// body ended cleanly (a failed body leaves the connection in an unknown state: closed).
fn finish(guard: &mut Option<InFlightGuard>, lease: &mut Option<Lease>, whole: bool) {
    guard.take();
    if let Some(lease) = lease.take() {
        if whole {
            lease.give_back();
        }
    }
}
