//! Test doubles for router tests: tiny real HTTP backends on loopback that say who they
//! are and can be told when to answer, a router serving on an ephemeral port, and a
//! client that keeps one connection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_stream::wrappers::ReceiverStream;

use crate::ids::{EnvKey, ReleaseNumber};
use crate::pipeline::traits::Backend;
use crate::router::{Router, RouterOptions};

pub(super) type TestBody = BoxBody<Bytes, Infallible>;

/// Every wait in these tests is bounded by this; none is a fixed sleep.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub(super) async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out waiting")
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`].
pub(super) async fn eventually(mut condition: impl FnMut() -> bool) {
    within(async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

pub(super) fn env() -> EnvKey {
    EnvKey::new("shop", "staging")
}

pub(super) fn text_body(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into()).boxed()
}

pub(super) fn empty_body() -> TestBody {
    Empty::new().boxed()
}

struct BackendState {
    name: &'static str,
    /// What arrived, in order: the path of a slow or never-answering request, or a chunk
    /// of an upload.
    arrivals: mpsc::UnboundedSender<String>,
    /// Slow answers wait for a permit.
    gate: Semaphore,
    /// Connections accepted so far, and those still open.
    accepted: AtomicUsize,
    open: AtomicUsize,
    /// The tasks serving open connections, so a test can close them as an instance
    /// closing idle keep-alive connections does.
    serving: std::sync::Mutex<Vec<AbortHandle>>,
}

/// A backend that answers with its name; see `answer` for its other paths.
pub(super) struct TestBackend {
    pub address: SocketAddr,
    state: Arc<BackendState>,
    arrivals: Mutex<mpsc::UnboundedReceiver<String>>,
    accepting: JoinHandle<()>,
}

impl TestBackend {
    pub(super) async fn start(name: &'static str) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let address = listener.local_addr().expect("backend address");
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(BackendState {
            name,
            arrivals: sender,
            gate: Semaphore::new(0),
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            serving: std::sync::Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&state);
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&serving);
                state.accepted.fetch_add(1, Ordering::SeqCst);
                state.open.fetch_add(1, Ordering::SeqCst);
                let open = OpenConnection(Arc::clone(&state));
                let task = tokio::spawn(async move {
                    let _open = open;
                    let service = service_fn(move |request| answer(Arc::clone(&state), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
                serving
                    .serving
                    .lock()
                    .expect("lock")
                    .push(task.abort_handle());
            }
        });
        TestBackend {
            address,
            state,
            arrivals: Mutex::new(receiver),
            accepting,
        }
    }

    pub(super) fn backend(&self, release: i64) -> Backend {
        Backend {
            address: self.address.to_string(),
            release: ReleaseNumber(release),
            instance: self.state.name.to_owned(),
        }
    }

    /// The next thing that arrived (see [`BackendState::arrivals`]).
    pub(super) async fn arrived(&self) -> String {
        within(async {
            self.arrivals
                .lock()
                .await
                .recv()
                .await
                .expect("backend is running")
        })
        .await
    }

    /// Lets `count` slow answers go.
    pub(super) fn open_gate(&self, count: usize) {
        self.state.gate.add_permits(count);
    }

    /// Connections accepted since start.
    pub(super) fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub(super) fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Closes every open connection, as an instance does with idle keep-alive ones.
    pub(super) fn close_connections(&self) {
        for task in self.state.serving.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

/// Counts a connection as open until its task ends (or is aborted).
struct OpenConnection(Arc<BackendState>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// An address nothing listens on: connecting is refused.
/// A backend named `instance` whose address refuses connections, as a stopped or crashed
/// instance's does.
pub(super) async fn refusing_backend(release: i64, instance: &str) -> Backend {
    // A port just given back: nothing listens there.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    Backend {
        address: address.to_string(),
        release: ReleaseNumber(release),
        instance: instance.to_owned(),
    }
}

/// An instance that reads each request and closes the connection without answering, as
/// one killed mid-request does. Runs until the returned task is aborted.
pub(super) async fn dying_instance() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut seen = Vec::new();
            let mut buffer = [0u8; 1024];
            while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => seen.extend_from_slice(&buffer[..read]),
                }
            }
        }
    });
    (address, task)
}

async fn answer(
    state: Arc<BackendState>,
    mut request: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let name = state.name;
    let response = match request.uri().path() {
        "/headers" => {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (header, value) in request.headers() {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                seen.entry(header.as_str().to_owned())
                    .and_modify(|all| {
                        all.push_str(" | ");
                        all.push_str(&value);
                    })
                    .or_insert(value);
            }
            let listing: String = seen
                .iter()
                .map(|(header, value)| format!("{header}: {value}\n"))
                .collect();
            Response::builder()
                .header("connection", "x-answer-hop")
                .header("x-answer-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("x-answer-kept", "1")
                .body(text_body(listing))
        }
        "/slow" => {
            let _ = state.arrivals.send("slow".to_owned());
            if let Ok(permit) = state.gate.acquire().await {
                permit.forget();
            }
            Response::builder().body(text_body(name))
        }
        "/never" => {
            let _ = state.arrivals.send("never".to_owned());
            std::future::pending::<()>().await;
            Response::builder().body(empty_body())
        }
        "/stream" => {
            let (frames, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            let gate = Arc::clone(&state);
            tokio::spawn(async move {
                let _ = frames
                    .send(Ok(Frame::data(Bytes::from_static(b"first\n"))))
                    .await;
                if let Ok(permit) = gate.gate.acquire().await {
                    permit.forget();
                }
                let _ = frames
                    .send(Ok(Frame::data(Bytes::from_static(b"last\n"))))
                    .await;
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(ReceiverStream::new(
                    receiver,
                ))))
        }
        "/upload" => {
            let mut total = 0;
            let body = request.body_mut();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    let _ = state
                        .arrivals
                        .send(format!("chunk:{}", String::from_utf8_lossy(&data)));
                }
            }
            Response::builder().body(text_body(format!("{name} received {total} bytes")))
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buffer = [0u8; 1024];
                    while let Ok(read) = io.read(&mut buffer).await {
                        if read == 0 || io.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .body(empty_body())
        }
        _ => Response::builder().body(text_body(name)),
    };
    Ok(response.expect("valid test response"))
}

/// A router serving on an ephemeral loopback port until dropped.
pub(super) struct TestRouter {
    pub router: Router,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestRouter {
    pub(super) async fn start() -> TestRouter {
        Self::with_options(RouterOptions::default()).await
    }

    pub(super) async fn with_options(options: RouterOptions) -> TestRouter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind router");
        let address = listener.local_addr().expect("router address");
        let router = Router::new(address, options);
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(router.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        TestRouter {
            router,
            address,
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub(super) fn host(&self) -> String {
        format!("shop-staging.localhost:{}", self.address.port())
    }

    /// Asks the router to stop and waits for `serve` to return.
    pub(super) async fn shut_down(self) -> std::io::Result<()> {
        self.shut_down_within(PATIENCE).await
    }

    /// The same, waiting up to `limit` (the router gives requests in flight 10 s).
    pub(super) async fn shut_down_within(mut self, limit: Duration) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = self.served.take().expect("serving");
        tokio::time::timeout(limit, served)
            .await
            .expect("serve returned in time")
            .expect("serve task")
    }
}

/// What a test client saw.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub(super) async fn read(response: Response<Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let body = within(body.collect())
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// One HTTP/1.1 connection to the router, kept alive between requests.
pub(super) struct Client {
    sender: SendRequest<TestBody>,
}

impl Client {
    pub(super) async fn connect(address: SocketAddr) -> Client {
        let stream = within(TcpStream::connect(address))
            .await
            .expect("connect to router");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        Client { sender }
    }

    pub(super) async fn send(&mut self, request: Request<TestBody>) -> Response<Incoming> {
        within(self.sender.ready()).await.expect("connection ready");
        within(self.sender.send_request(request))
            .await
            .expect("response")
    }

    /// Sends `request` without waiting for its answer: the future gives the answer, or
    /// the error of a connection that ended without one.
    pub(super) fn start(
        &mut self,
        request: Request<TestBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, hyper::Error>> {
        self.sender.send_request(request)
    }

    pub(super) async fn get(&mut self, host: &str, path: &str) -> Reply {
        let request = Request::get(path)
            .header("host", host)
            .body(empty_body())
            .expect("request");
        Reply::read(self.send(request).await).await
    }

    /// Whether the connection is still open.
    pub(super) fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

/// A GET on a connection of its own.
pub(super) async fn get(address: SocketAddr, host: &str, path: &str) -> Reply {
    Client::connect(address).await.get(host, path).await
}

/// POST `body` to `/` through the router, on a new connection: a request that cannot be
/// sent twice.
pub(super) async fn post(address: SocketAddr, host: &str, body: &'static str) -> Reply {
    let request = Request::post("/")
        .header("host", host)
        .body(text_body(body))
        .expect("request");
    Reply::read(Client::connect(address).await.send(request).await).await
}

/// An instance that speaks raw bytes: for each connection, it reads a request head, then
/// writes `answer` and closes (or, with `then_drain`, reads whatever else comes, as a
/// server that answered early and discards the rest of an upload does). Sends the head it
/// read to the returned receiver.
pub(super) async fn scripted_instance(
    answer: &'static [u8],
    then_drain: bool,
) -> (String, mpsc::UnboundedReceiver<String>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (heads, received) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => seen.extend_from_slice(&buffer[..read]),
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&seen).into_owned());
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                if then_drain {
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    (address, received, task)
}

/// A backend record for an instance started by hand.
pub(super) fn backend_at(address: &str, instance: &str) -> Backend {
    Backend {
        address: address.to_owned(),
        release: ReleaseNumber(1),
        instance: instance.to_owned(),
    }
}
