//! The one body type the router answers with: nothing, a short text of its own, or a body
//! streamed from an instance (request bodies go to the instance in `h1.rs`). An enum rather than a boxed trait object, so the
//! hot path does not allocate for it. A response streamed from an instance carries the
//! instance's in-flight guard, so it counts as in flight until its last byte has been
//! passed on, and the lease of its connection, which goes back to the pool at that moment.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::h1::{self, Decoder};
use super::inflight::InFlightGuard;
use super::pool::Lease;

/// What a body's frames may fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub(crate) enum RouterBody {
    Empty,
    /// A body the router wrote itself (an error page).
    Text(Option<Bytes>),
    /// A response body read off an instance's connection, piece by piece as it arrives,
    /// never buffered.
    Response(InstanceBody),
}

/// The body of an instance's answer, and what it holds until its end.
#[derive(Debug)]
pub(crate) struct InstanceBody {
    decoder: Decoder,
    /// The connection it is read from; `None` once the body is over.
    lease: Option<Lease>,
    guard: Option<InFlightGuard>,
    /// Whether the connection may serve again once the body is read whole.
    keep_alive: bool,
}

impl RouterBody {
    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        RouterBody::Text(Some(text.into()))
    }

    /// An instance's response body, read from `lease`'s connection. One that is already
    /// over (none, or `HEAD`) gives its connection back at once.
    pub(crate) fn response(
        framing: h1::Framing,
        keep_alive: bool,
        guard: InFlightGuard,
        lease: Lease,
    ) -> Self {
        let decoder = Decoder::new(framing);
        if decoder.is_done() {
            if keep_alive {
                lease.give_back();
            }
            return RouterBody::Empty;
        }
        RouterBody::Response(InstanceBody {
            decoder,
            lease: Some(lease),
            guard: Some(guard),
            keep_alive,
        })
    }
}

impl Body for RouterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RouterBody::Empty => Poll::Ready(None),
            RouterBody::Text(text) => Poll::Ready(text.take().map(|bytes| Ok(Frame::data(bytes)))),
            RouterBody::Response(upstream) => upstream.poll_piece(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RouterBody::Empty => true,
            RouterBody::Text(text) => text.is_none(),
            RouterBody::Response(upstream) => upstream.lease.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RouterBody::Empty => SizeHint::with_exact(0),
            RouterBody::Text(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            RouterBody::Response(upstream) => match upstream.decoder.remaining() {
                Some(left) => SizeHint::with_exact(left),
                None => SizeHint::default(),
            },
        }
    }
}

impl InstanceBody {
    /// The next piece of the body: what the connection's buffer holds, else what the next
    /// read brings. The request is over when the body ends or fails: its in-flight count
    /// is given back then rather than when the body is dropped, and its connection too
    /// when the body was read whole.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(lease) = &mut self.lease else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut lease.conn.read) {
                Ok(Some(piece)) => {
                    if self.decoder.is_done() {
                        self.finish(true);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(piece))));
                }
                Ok(None) if self.decoder.is_done() => {
                    self.finish(true);
                    return Poll::Ready(None);
                }
                Ok(None) => {}
                Err(error) => return self.fail(error),
            }
            match ready!(lease.conn.poll_read(cx)) {
                Ok(0) if matches!(self.decoder, Decoder::UntilClose) => {
                    // The end of the connection is the end of this body.
                    self.keep_alive = false;
                    self.finish(true);
                    return Poll::Ready(None);
                }
                Ok(0) => return self.fail(h1::Error::Invalid("the body was cut short")),
                Ok(_) => {}
                Err(error) => return self.fail(h1::Error::Io(error)),
            }
        }
    }

    fn fail(&mut self, error: h1::Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.finish(false);
        Poll::Ready(Some(Err(Box::new(error))))
    }

    /// The response is over: its in-flight count is given back, and its connection too
    /// when the body ended cleanly and the instance keeps it open (a failed body leaves the
    /// connection in an unknown state: closed).
    fn finish(&mut self, whole: bool) {
        self.guard.take();
        if let Some(lease) = self.lease.take() {
            if whole && self.keep_alive && lease.conn.read.is_empty() {
                lease.give_back();
            }
        }
    }
}
