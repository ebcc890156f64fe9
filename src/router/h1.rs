//! HTTP/1.1 to the instances, spoken by the router itself rather than through a client
//! library: the request is written and its answer read inside the request's own future,
//! on the worker that serves the client, with no connection task to wake and no channel
//! between the two — the way nginx proxies. A response head is parsed straight out of the
//! bytes read, and its body is passed on as it is read (`body.rs`), so a response already
//! whole in the first read goes back to the client, and its connection back to the pool,
//! in the same turn.
//!
//! What it speaks (RFC 9112): a request head written as the proxy prepared it; a request
//! body passed on as it came (`Content-Length`), or chunked when its length is unknown,
//! while the answer is awaited (an instance may answer before reading it all); `1xx`
//! interim answers skipped (but `101`, the switch of an upgrade); a response body framed by
//! `Transfer-Encoding: chunked`, `Content-Length`, or the connection's end. Trailers are
//! read and dropped: the client's `TE` is a hop-by-hop header, so it never asked us for
//! them.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{StatusCode, Version};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::headers::connection_has;

/// Response headers one answer may have, at most (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// A response head longer than this is refused.
const MAX_HEAD: usize = 64 * 1024;

/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 4096;

/// Read at least this much room at a time.
const READ_ROOM: usize = 8 * 1024;

/// One connection to an instance, with what was read from it and not used yet.
#[derive(Debug)]
pub(crate) struct Conn {
    pub stream: TcpStream,
    pub read: BytesMut,
}

/// What went wrong in one exchange.
#[derive(Debug)]
pub(crate) enum Error {
    /// Writing the request head failed: the instance got none of it.
    Unsent(std::io::Error),
    /// The connection ended (closed or reset) before any byte of an answer.
    Closed(Option<std::io::Error>),
    /// The connection failed partway through an answer.
    Io(std::io::Error),
    /// The instance sent something that is not HTTP/1.1.
    Invalid(&'static str),
    /// The client's request body failed (the client went away mid-upload).
    RequestBody(hyper::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unsent(error) => write!(f, "could not send the request: {error}"),
            Error::Closed(None) => f.write_str("the connection closed before an answer"),
            Error::Closed(Some(error)) => {
                write!(f, "the connection ended before an answer: {error}")
            }
            Error::Io(error) => write!(f, "the connection failed mid-answer: {error}"),
            Error::Invalid(what) => write!(f, "invalid HTTP/1.1 answer: {what}"),
            Error::RequestBody(error) => write!(f, "the client's request body failed: {error}"),
        }
    }
}

impl std::error::Error for Error {}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Read until the instance closes the connection.
    UntilClose,
}

/// A response head, and what it says of its body and its connection.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may serve another request once this answer is read.
    pub keep_alive: bool,
}

/// The request as it goes on the wire.
pub(crate) struct Request {
    /// Request line and headers, ready to write (and to write again for a retry).
    pub head: Bytes,
    /// Whether it is a `HEAD`, whose answer has no body whatever its headers say.
    pub is_head: bool,
    /// A body still to come from the client.
    pub body: Option<RequestBody>,
}

/// A client's request body on its way to the instance.
pub(crate) struct RequestBody {
    pub body: Incoming,
    /// Its length is unknown: it goes chunked.
    pub chunked: bool,
}

/// A request head as it goes on the wire, written in one buffer: the request line, then
/// header lines, then the framing and the blank line.
pub(crate) struct HeadWriter(Vec<u8>);

impl HeadWriter {
    /// `method target HTTP/1.1`, with room for `headers` bytes of header lines.
    pub(crate) fn new(method: &hyper::Method, target: &str, headers: usize) -> HeadWriter {
        let mut head = Vec::with_capacity(method.as_str().len() + target.len() + headers + 48);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        HeadWriter(head)
    }

    /// `name: value` (a `HeaderName` and a `HeaderValue` hold no CR or LF).
    pub(crate) fn header(&mut self, name: &[u8], value: &[u8]) {
        self.header_with(name, |out| out.extend_from_slice(value));
    }

    /// `name: ` and then whatever `value` writes, which must hold no CR or LF.
    pub(crate) fn header_with(&mut self, name: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
        self.0.extend_from_slice(name);
        self.0.extend_from_slice(b": ");
        value(&mut self.0);
        self.0.extend_from_slice(b"\r\n");
    }

    /// The head, ended: with `Transfer-Encoding: chunked` for a body of unknown length
    /// (the headers written hold no hop-by-hop one).
    pub(crate) fn finish(mut self, chunked: bool) -> Bytes {
        if chunked {
            self.0.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        self.0.extend_from_slice(b"\r\n");
        Bytes::from(self.0)
    }
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            read: BytesMut::new(),
        }
    }

    /// Whether an idle connection can no longer serve: the instance closed it, or sent
    /// bytes no request asked for. Costs no system call unless the socket was reported
    /// readable.
    pub(crate) fn is_broken(&mut self) -> bool {
        if !self.read.is_empty() {
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                !matches!(self.stream.try_read(&mut byte),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends `request` and reads the head of its answer. The body, if any, is written
    /// while the answer is awaited; an answer that comes before the body is all sent is
    /// taken, and the connection is not reused.
    /// A request left `Unsent` is whole still, and can go on another connection.
    pub(crate) async fn exchange(&mut self, request: &mut Request) -> Result<Head, Error> {
        write_all(&mut self.stream, &request.head)
            .await
            .map_err(Error::Unsent)?;
        let is_head = request.is_head;
        let mut body = request.body.take().map(BodyWriter::new);
        let mut head = poll_fn(|cx| {
            if let Some(writer) = &mut body {
                match writer.poll_send(cx, &mut self.stream) {
                    Poll::Ready(Ok(())) => body = None,
                    // The instance stopped reading: perhaps it answered already.
                    Poll::Ready(Err(BodyFailure::Upstream)) => {}
                    Poll::Ready(Err(BodyFailure::Client(error))) => {
                        return Poll::Ready(Err(Error::RequestBody(error)))
                    }
                    Poll::Pending => {}
                }
            }
            self.poll_head(cx, is_head)
        })
        .await?;
        if body.is_some() {
            head.keep_alive = false;
        }
        Ok(head)
    }

    fn poll_head(&mut self, cx: &mut Context<'_>, is_head: bool) -> Poll<Result<Head, Error>> {
        loop {
            if let Some(head) = parse_head(&mut self.read, is_head)? {
                return Poll::Ready(Ok(head));
            }
            let any = !self.read.is_empty();
            match ready!(self.poll_read(cx)) {
                Ok(0) if any => return Poll::Ready(Err(Error::Invalid("the head was cut short"))),
                Ok(0) => return Poll::Ready(Err(Error::Closed(None))),
                Ok(_) => {}
                Err(error) if any => return Poll::Ready(Err(Error::Io(error))),
                Err(error) => return Poll::Ready(Err(Error::Closed(Some(error)))),
            }
        }
    }

    /// Reads what the socket has into `read`; `Ok(0)` at its end.
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.read.reserve(READ_ROOM);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }
}

async fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // Usually the whole head goes at once, without waiting.
        let written = match stream.try_write(bytes) {
            Ok(written) => written,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.writable().await?;
                continue;
            }
            Err(error) => return Err(error),
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

/// Which side failed while a request body was passed on.
enum BodyFailure {
    Client(hyper::Error),
    Upstream,
}

/// Passes a client's request body on, frame by frame, chunked when its length is unknown.
struct BodyWriter {
    body: Incoming,
    chunked: bool,
    /// Bytes of the current frame not yet written.
    pending: Vec<Bytes>,
    /// The body has ended (and its last chunk, if chunked, is in `pending`).
    ended: bool,
    /// The instance stopped taking it.
    broken: bool,
}

impl BodyWriter {
    fn new(body: RequestBody) -> BodyWriter {
        BodyWriter {
            body: body.body,
            chunked: body.chunked,
            pending: Vec::new(),
            ended: false,
            broken: false,
        }
    }

    /// Writes until the body is all sent (`Ready(Ok)`), or it fails.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
    ) -> Poll<Result<(), BodyFailure>> {
        if self.broken {
            return Poll::Ready(Err(BodyFailure::Upstream));
        }
        loop {
            while let Some(first) = self.pending.first_mut() {
                match Pin::new(&mut *stream).poll_write(cx, first) {
                    Poll::Ready(Ok(written)) if written > 0 => {
                        let _ = first.split_to(written);
                        if first.is_empty() {
                            self.pending.remove(0);
                        }
                    }
                    Poll::Ready(_) => {
                        self.broken = true;
                        return Poll::Ready(Err(BodyFailure::Upstream));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers of the client's: not passed on (see above)
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if self.chunked {
                        self.pending
                            .push(Bytes::from(format!("{:x}\r\n", data.len())));
                        self.pending.push(data);
                        self.pending.push(Bytes::from_static(b"\r\n"));
                    } else {
                        self.pending.push(data);
                    }
                }
                Some(Err(error)) => return Poll::Ready(Err(BodyFailure::Client(error))),
                None => {
                    if self.chunked {
                        self.pending.push(Bytes::from_static(b"0\r\n\r\n"));
                    }
                    self.ended = true;
                }
            }
        }
    }
}

/// Where one header's name and value sit in a head.
#[derive(Clone, Copy, Default)]
struct Span {
    name: usize,
    name_len: usize,
    value: usize,
    value_len: usize,
}

/// A response head from the start of `read` (taken from it), once it is whole; `1xx`
/// interim answers other than `101` are dropped on the way.
fn parse_head(read: &mut BytesMut, is_head: bool) -> Result<Option<Head>, Error> {
    // Most answers have a handful of headers: room for a few first (two small arrays to
    // fill on the stack), for all that are allowed only when there are more.
    match parse_head_in::<FEW_HEADERS>(read, is_head) {
        Err(Error::Invalid(TOO_MANY)) => parse_head_in::<MAX_HEADERS>(read, is_head),
        parsed => parsed,
    }
}

/// Headers the first parse of a head has room for.
const FEW_HEADERS: usize = 16;

const TOO_MANY: &str = "more than 100 headers";

/// `parse_head` with room for `N` headers; `TOO_MANY` when there are more.
fn parse_head_in<const N: usize>(
    read: &mut BytesMut,
    is_head: bool,
) -> Result<Option<Head>, Error> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; N];
        let mut response = httparse::Response::new(&mut slots);
        let length = match response.parse(read) {
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) if read.len() > MAX_HEAD => {
                return Err(Error::Invalid("the head is longer than 64 KiB"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Error::Invalid(TOO_MANY)),
            Err(_) => return Err(Error::Invalid("the head does not parse")),
        };
        let code = response.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| Error::Invalid("the status is not valid"))?;
        let version = match response.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        // Where each header sits (offsets into the head, on the stack), so the head can be
        // cut off `read` and its bytes shared by the header values.
        let base = read.as_ptr() as usize;
        let mut spans = [Span::default(); N];
        let count = response.headers.len();
        for (span, header) in spans.iter_mut().zip(response.headers.iter()) {
            *span = Span {
                name: header.name.as_ptr() as usize - base,
                name_len: header.name.len(),
                value: header.value.as_ptr() as usize - base,
                value_len: header.value.len(),
            };
        }
        let bytes = read.split_to(length).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        let mut headers = HeaderMap::with_capacity(count);
        for span in &spans[..count] {
            let name = HeaderName::from_bytes(&bytes[span.name..span.name + span.name_len])
                .map_err(|_| Error::Invalid("a header name is not valid"))?;
            let value = HeaderValue::from_maybe_shared(
                bytes.slice(span.value..span.value + span.value_len),
            )
            .map_err(|_| Error::Invalid("a header value is not valid"))?;
            headers.append(name, value);
        }
        let framing = framing(status, &headers, is_head)?;
        if framing == Framing::Chunked {
            // The chunks say where the body ends; a length beside them is wrong (RFC 9112
            // §6.3), and would be wrong about the body passed on.
            headers.remove(header::CONTENT_LENGTH);
        }
        let keep_alive = framing != Framing::UntilClose
            && status != StatusCode::SWITCHING_PROTOCOLS
            && keeps_alive(version, &headers);
        return Ok(Some(Head {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// How the body of an answer ends (RFC 9112 §6.3).
fn framing(status: StatusCode, headers: &HeaderMap, is_head: bool) -> Result<Framing, Error> {
    if is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(last) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        let chunked = last
            .to_str()
            .ok()
            .and_then(|codings| codings.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| Error::Invalid("Content-Length is not a number"))?;
        for part in text.split(',') {
            let part: u64 = part
                .trim()
                .parse()
                .map_err(|_| Error::Invalid("Content-Length is not a number"))?;
            if length.is_some_and(|earlier| earlier != part) {
                return Err(Error::Invalid("two different Content-Length values"));
            }
            length = Some(part);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 only when told
/// `keep-alive`.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    if version == Version::HTTP_11 {
        !connection_has(headers, "close")
    } else {
        connection_has(headers, "keep-alive")
    }
}

/// Reads a response body off the bytes of its connection.
#[derive(Debug)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// Where a chunked body is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Decoder {
        match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(length) => Decoder::Length(length),
            Framing::Chunked => Decoder::Chunked(Chunk::Size),
            Framing::UntilClose => Decoder::UntilClose,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// The bytes of the body still to come, when known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(left) => Some(*left),
            Decoder::Done => Some(0),
            Decoder::Chunked(_) | Decoder::UntilClose => None,
        }
    }

    /// The next piece of the body that `read` holds (taken from it), or `None` when it
    /// needs more bytes or the body is done.
    pub(crate) fn decode(&mut self, read: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        loop {
            match self {
                Decoder::Done => return Ok(None),
                Decoder::UntilClose => {
                    return Ok((!read.is_empty()).then(|| read.split().freeze()));
                }
                Decoder::Length(left) => {
                    if read.is_empty() {
                        return Ok(None);
                    }
                    let take = (*left).min(read.len() as u64) as usize;
                    *left -= take as u64;
                    if *left == 0 {
                        *self = Decoder::Done;
                    }
                    return Ok(Some(read.split_to(take).freeze()));
                }
                Decoder::Chunked(Chunk::Data(left)) => {
                    if read.is_empty() {
                        return Ok(None);
                    }
                    let take = (*left).min(read.len() as u64) as usize;
                    *left -= take as u64;
                    if *left == 0 {
                        *self = Decoder::Chunked(Chunk::DataEnd);
                    }
                    return Ok(Some(read.split_to(take).freeze()));
                }
                Decoder::Chunked(chunk) => {
                    let Some(line) = take_line(read)? else {
                        return Ok(None);
                    };
                    *chunk = match *chunk {
                        Chunk::Size => match chunk_size(&line)? {
                            0 => Chunk::Trailers,
                            size => Chunk::Data(size),
                        },
                        Chunk::DataEnd if line.is_empty() => Chunk::Size,
                        Chunk::DataEnd => {
                            return Err(Error::Invalid("a chunk is longer than its size"))
                        }
                        Chunk::Trailers if line.is_empty() => {
                            *self = Decoder::Done;
                            continue;
                        }
                        Chunk::Trailers => Chunk::Trailers,
                        Chunk::Data(_) => unreachable!("handled above"),
                    };
                }
            }
        }
    }
}

/// One line (without its `\r\n` or `\n`) from the start of `read`, once it is whole.
fn take_line(read: &mut BytesMut) -> Result<Option<BytesMut>, Error> {
    let Some(end) = read.iter().position(|&b| b == b'\n') else {
        if read.len() > MAX_LINE {
            return Err(Error::Invalid("a chunk line is longer than 4 KiB"));
        }
        return Ok(None);
    };
    let mut line = read.split_to(end + 1);
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    Ok(Some(line))
}

/// The size a chunk-size line gives (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(Error::Invalid("a chunk size is not valid"));
    }
    let text =
        std::str::from_utf8(digits).map_err(|_| Error::Invalid("a chunk size is not valid"))?;
    u64::from_str_radix(text, 16).map_err(|_| Error::Invalid("a chunk size is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str, is_head: bool) -> Result<Option<Head>, Error> {
        parse_head(&mut BytesMut::from(text), is_head)
    }

    fn decode_all(framing: Framing, wire: &[u8], pieces: usize) -> (Vec<u8>, Decoder, BytesMut) {
        // Fed `pieces` bytes at a time, as reads may cut it anywhere.
        let mut decoder = Decoder::new(framing);
        let mut read = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(pieces) {
            read.extend_from_slice(piece);
            while let Some(data) = decoder.decode(&mut read).expect("decodes") {
                body.extend_from_slice(&data);
            }
        }
        (body, decoder, read)
    }

    #[test]
    fn a_head_is_parsed_once_whole_and_its_body_left_in_the_buffer() {
        let mut read = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n");
        assert!(parse_head(&mut read, false).expect("valid").is_none());
        read.extend_from_slice(b"\r\nhello");
        let head = parse_head(&mut read, false).expect("valid").expect("whole");
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["x-a"], "1");
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        assert_eq!(&read[..], b"hello");
    }

    #[test]
    fn interim_answers_are_skipped_but_a_switch_is_kept() {
        let head = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .expect("valid")
        .expect("whole");
        assert_eq!(head.status, StatusCode::CREATED);
        assert!(!head.headers.contains_key("link"));
        let switch = self::head(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n",
            false,
        )
        .expect("valid")
        .expect("whole");
        assert_eq!(switch.status, StatusCode::SWITCHING_PROTOCOLS);
        assert!(!switch.keep_alive);
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing_of =
            |text: &str, is_head| head(text, is_head).expect("valid").expect("whole").framing;
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true),
            Framing::Empty
        );
        assert_eq!(
            framing_of(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            Framing::Empty
        );
        let chunked = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .expect("valid")
        .expect("whole");
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(!chunked.headers.contains_key("content-length"));
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 9, 9\r\n\r\n", false),
            Framing::Length(9)
        );
        let until_close = head("HTTP/1.1 200 OK\r\n\r\n", false)
            .expect("valid")
            .expect("whole");
        assert_eq!(until_close.framing, Framing::UntilClose);
        assert!(!until_close.keep_alive);
        assert!(matches!(
            head(
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\n",
                false
            ),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            head("SSH-2.0-OpenSSH\r\n\r\n", false),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn an_answer_with_many_headers_parses_and_one_with_too_many_is_refused() {
        let many: String = (0..40).map(|i| format!("X-H{i}: {i}\r\n")).collect();
        let parsed = head(
            &format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n"),
            false,
        )
        .expect("valid")
        .expect("whole");
        assert_eq!(parsed.headers.len(), 41);
        assert_eq!(parsed.headers["x-h39"], "39");
        let too_many: String = (0..101).map(|i| format!("X-H{i}: {i}\r\n")).collect();
        assert!(matches!(
            head(&format!("HTTP/1.1 200 OK\r\n{too_many}\r\n"), false),
            Err(Error::Invalid(TOO_MANY))
        ));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        let keep = |text: &str| head(text, false).expect("valid").expect("whole").keep_alive;
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn a_chunked_body_decodes_however_its_bytes_arrive() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for pieces in [1, 2, 3, 7, wire.len()] {
            let (body, decoder, left) = decode_all(Framing::Chunked, wire, pieces);
            assert_eq!(body, b"hello, world", "read {pieces} bytes at a time");
            assert!(decoder.is_done());
            assert_eq!(&left[..], b"NEXT");
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let (body, decoder, left) = decode_all(Framing::Length(5), b"helloHTTP", 2);
        assert_eq!(body, b"hello");
        assert!(decoder.is_done());
        assert_eq!(&left[..], b"HTTP");
    }

    #[test]
    fn a_bad_chunk_is_an_error_not_a_guess() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            let mut decoder = Decoder::new(Framing::Chunked);
            let mut read = BytesMut::from(wire);
            let result = (|| {
                while decoder.decode(&mut read)?.is_some() {}
                Ok::<_, Error>(())
            })();
            assert!(matches!(result, Err(Error::Invalid(_))), "{wire:?}");
        }
    }

    #[test]
    fn a_head_is_encoded_with_its_headers_and_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.localhost"));
        headers.append("x-many", HeaderValue::from_static("1"));
        headers.append("x-many", HeaderValue::from_static("2"));
        let mut head = HeadWriter::new(&hyper::Method::POST, "/up?x=1", 64);
        for (name, value) in &headers {
            head.header(name.as_str().as_bytes(), value.as_bytes());
        }
        let head = head.finish(true);
        assert_eq!(
            &head[..],
            b"POST /up?x=1 HTTP/1.1\r\nhost: a.localhost\r\nx-many: 1\r\nx-many: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
