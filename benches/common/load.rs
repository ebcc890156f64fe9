//! A small HTTP/1.1 load generator for the router benches: N keep-alive connections on
//! loopback, each sending `GET` requests one after another, recording every attempt with
//! its start time, latency and outcome.
//!
//! It speaks raw HTTP over tokio TCP (rather than through a client library) so that every
//! failure is seen as what it is — a refused connect, a connection closed mid-request, a
//! timeout, a 5xx — instead of being retried or folded into one error type.
//!
//! Every loop is bounded: a connection stops when told to, or at the hard deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// The TCP connect failed (refused, or took longer than the request timeout).
    ConnectError,
    /// The connection was reset or closed before the whole answer arrived.
    Reset,
    /// No whole answer within the request timeout.
    Timeout,
    /// A 5xx answer.
    ServerError,
    /// Any other answer that is not 2xx.
    OtherStatus,
}

impl Outcome {
    pub const FAILURES: [Outcome; 5] = [
        Outcome::ConnectError,
        Outcome::Reset,
        Outcome::Timeout,
        Outcome::ServerError,
        Outcome::OtherStatus,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectError => "connect errors",
            Outcome::Reset => "resets/closed mid-request",
            Outcome::Timeout => "timeouts",
            Outcome::ServerError => "5xx",
            Outcome::OtherStatus => "other non-2xx",
        }
    }
}

/// One request attempt.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it started, since the load's origin.
    pub started: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

impl Sample {
    pub fn ended(&self) -> Duration {
        self.started + self.latency
    }
}

/// What to send, where, and for how long at most.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub target: SocketAddr,
    /// The `Host` header.
    pub host: String,
    pub path: String,
    pub connections: usize,
    pub request_timeout: Duration,
    /// No connection sends a request after this, whatever `stop` says.
    pub hard_deadline: Instant,
    /// Each connection stops after this many attempts (`usize::MAX`: when told to stop).
    pub requests_per_connection: usize,
}

/// A load in progress.
pub struct Load {
    stop: Arc<AtomicBool>,
    connections: JoinSet<Vec<Sample>>,
    /// The instant every sample's `started` counts from, and the wall clock at that instant.
    pub origin: Instant,
    pub origin_wall: SystemTime,
}

impl Load {
    /// Starts the connections on the current runtime.
    pub fn start(options: LoadOptions) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let origin = Instant::now();
        let origin_wall = SystemTime::now();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: slipway-bench\r\n\r\n",
            options.path, options.host
        )
        .into_bytes();
        let request: Arc<[u8]> = request.into();
        let mut connections = JoinSet::new();
        for _ in 0..options.connections {
            let stop = Arc::clone(&stop);
            let request = Arc::clone(&request);
            let options = options.clone();
            connections.spawn(connection_loop(options, request, stop, origin));
        }
        Load {
            stop,
            connections,
            origin,
            origin_wall,
        }
    }

    /// Waits until every connection has stopped by itself (by count or deadline).
    pub async fn join(self) -> Vec<Sample> {
        self.collect().await
    }

    /// Tells every connection to stop after its current request, and gathers the samples.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.collect().await
    }

    async fn collect(mut self) -> Vec<Sample> {
        let mut samples = Vec::new();
        while let Some(joined) = self.connections.join_next().await {
            samples.extend(joined.expect("a load connection panicked"));
        }
        samples.sort_by_key(|s| s.started);
        samples
    }
}

/// Runs a load for `duration` and returns its samples and the time it actually ran.
pub async fn run_for(mut options: LoadOptions, duration: Duration) -> (Vec<Sample>, Duration) {
    options.hard_deadline = options.hard_deadline.min(Instant::now() + duration);
    let load = Load::start(options);
    tokio::time::sleep(duration).await;
    let origin = load.origin;
    let samples = load.finish().await;
    (samples, origin.elapsed())
}

async fn connection_loop(
    options: LoadOptions,
    request: Arc<[u8]>,
    stop: Arc<AtomicBool>,
    origin: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(4096);
    let mut connection: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed)
        && Instant::now() < options.hard_deadline
        && samples.len() < options.requests_per_connection
    {
        let started = Instant::now();
        let mut record = |outcome| {
            samples.push(Sample {
                started: started - origin,
                latency: started.elapsed(),
                outcome,
            })
        };
        let mut open = match connection.take() {
            Some(open) => open,
            None => match tokio::time::timeout(
                options.request_timeout,
                TcpStream::connect(options.target),
            )
            .await
            {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    Connection::new(stream)
                }
                Ok(Err(_)) | Err(_) => {
                    record(Outcome::ConnectError);
                    // Without a pause a refused port would be hammered in a tight loop.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout(options.request_timeout, open.exchange(&request)).await {
            Err(_) => record(Outcome::Timeout),
            Ok(Err(_)) => record(Outcome::Reset),
            Ok(Ok(answer)) => {
                record(match answer.status {
                    200..=299 => Outcome::Ok,
                    500..=599 => Outcome::ServerError,
                    _ => Outcome::OtherStatus,
                });
                if answer.keep_alive {
                    connection = Some(open);
                }
            }
        }
    }
    samples
}

/// The parts of an answer the load generator needs.
struct Answer {
    status: u16,
    keep_alive: bool,
}

/// One client connection and the bytes read past the last answer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buffer: Vec::with_capacity(8192),
        }
    }

    /// Sends one request and reads its whole answer (head and body).
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Answer> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        self.buffer.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = status_line.starts_with("HTTP/1.1");
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => {
                    if value.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if value.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
                _ => {}
            }
        }
        if chunked {
            self.read_chunked().await?;
        } else if let Some(length) = length {
            self.take(length).await?;
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // No framing: the body runs to the end of the connection.
            while self.fill().await.is_ok() {}
            self.buffer.clear();
            keep_alive = false;
        }
        Ok(Answer { status, keep_alive })
    }

    async fn read_chunked(&mut self) -> std::io::Result<()> {
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer, b"\r\n") {
                    break end;
                }
                self.fill().await?;
            };
            let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            self.buffer.drain(..line_end + 2);
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = loop {
                        if let Some(end) = find(&self.buffer, b"\r\n") {
                            break end;
                        }
                        self.fill().await?;
                    };
                    self.buffer.drain(..end + 2);
                    if end == 0 {
                        return Ok(());
                    }
                }
            }
            self.take(size + 2).await?;
        }
    }

    /// Consumes exactly `count` bytes.
    async fn take(&mut self, count: usize) -> std::io::Result<()> {
        while self.buffer.len() < count {
            self.fill().await?;
        }
        self.buffer.drain(..count);
        Ok(())
    }

    /// Reads more bytes; the end of the stream is an error (the answer was cut short).
    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
