//! Faithful proxying: bodies stream both ways, headers are what RFC 9110 asks of a proxy,
//! upgrades pass through, and shutdown lets requests finish.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::support::*;
use crate::pipeline::traits::Traffic;

#[tokio::test]
async fn a_streamed_response_is_passed_on_before_it_ends() {
    let router = TestRouter::start().await;
    let events = TestBackend::start("events").await;
    router.router.switch(&env(), vec![events.backend(1)]).await;

    let mut client = Client::connect(router.address).await;
    let request = Request::get("/stream")
        .header("host", router.host())
        .body(empty_body())
        .expect("request");
    let response = client.send(request).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let first = within(body.frame())
        .await
        .expect("a frame")
        .expect("no error");
    assert_eq!(
        first.into_data().expect("data"),
        Bytes::from_static(b"first\n")
    );

    // Only now may the backend send the rest.
    events.open_gate(1);
    let rest = within(body.collect())
        .await
        .expect("rest of the body")
        .to_bytes();
    assert_eq!(rest, Bytes::from_static(b"last\n"));
}

#[tokio::test]
async fn a_request_body_streams_to_the_instance() {
    let router = TestRouter::start().await;
    let upload = TestBackend::start("upload").await;
    router.router.switch(&env(), vec![upload.backend(1)]).await;

    let (chunks, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    let body = BodyExt::boxed(StreamBody::new(ReceiverStream::new(receiver)));
    let request = Request::post("/upload")
        .header("host", router.host())
        .body(body)
        .expect("request");
    let mut client = Client::connect(router.address).await;
    let sent = tokio::spawn(async move { Reply::read(client.send(request).await).await });

    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"one"))))
        .await
        .expect("send chunk");
    // The instance has the first chunk while the client still holds the second.
    assert_eq!(upload.arrived().await, "chunk:one");
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"two"))))
        .await
        .expect("send chunk");
    drop(chunks);
    assert_eq!(upload.arrived().await, "chunk:two");
    let reply = within(sent).await.expect("upload");
    assert_eq!(reply.body, "upload received 6 bytes");
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_stop_at_the_router() {
    let router = TestRouter::start().await;
    let echo = TestBackend::start("echo").await;
    router.router.switch(&env(), vec![echo.backend(1)]).await;

    let request = Request::get("/headers?x=1")
        .header("host", router.host())
        .header("connection", "keep-alive, X-Client-Hop")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-kept", "yes")
        .body(empty_body())
        .expect("request");
    let reply = Reply::read(Client::connect(router.address).await.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen: Vec<&str> = reply.body.lines().collect();

    assert!(
        seen.contains(&format!("host: {}", router.host()).as_str()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"x-forwarded-for: 10.0.0.1, 127.0.0.1"),
        "{seen:?}"
    );
    assert!(seen.contains(&"x-forwarded-proto: http"), "{seen:?}");
    assert!(
        seen.contains(&format!("x-forwarded-host: {}", router.host()).as_str()),
        "{seen:?}"
    );
    assert!(seen.contains(&"x-kept: yes"), "{seen:?}");
    for hop in ["x-client-hop", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !seen.iter().any(|line| line.starts_with(&format!("{hop}:"))),
            "{hop} reached the instance: {seen:?}"
        );
    }

    assert_eq!(reply.header("x-answer-kept"), Some("1"));
    assert_eq!(reply.header("x-answer-hop"), None);
    assert_eq!(reply.header("keep-alive"), None);
}

#[tokio::test]
async fn an_upgraded_connection_passes_bytes_both_ways_and_counts_as_in_flight() {
    let router = TestRouter::start().await;
    let socket = TestBackend::start("socket").await;
    router.router.switch(&env(), vec![socket.backend(5)]).await;

    let request = Request::get("/ws")
        .header("host", router.host())
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .header("x-slipway-debug", "release")
        .body(empty_body())
        .expect("request");
    let mut response = Client::connect(router.address).await.send(request).await;
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "echo");
    assert_eq!(response.headers()["x-slipway-release"], "v5");
    let mut tunnel = TokioIo::new(
        within(hyper::upgrade::on(&mut response))
            .await
            .expect("upgraded"),
    );

    tunnel.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    within(tunnel.read_exact(&mut echoed))
        .await
        .expect("read echo");
    assert_eq!(&echoed, b"ping");
    assert_eq!(
        router
            .router
            .drain(&[socket.backend(5)], Duration::from_millis(100))
            .await,
        1
    );

    drop(tunnel);
    assert_eq!(router.router.drain(&[socket.backend(5)], PATIENCE).await, 0);
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_then_returns() {
    let router = TestRouter::start().await;
    let slow = TestBackend::start("slow").await;
    router.router.switch(&env(), vec![slow.backend(1)]).await;
    let idle = Client::connect(router.address).await;

    let (address, host) = (router.address, router.host());
    let request = tokio::spawn(async move { get(address, &host, "/slow").await });
    assert_eq!(slow.arrived().await, "slow");
    let serving = tokio::spawn(router.shut_down());
    slow.open_gate(1);

    let reply = within(request).await.expect("request");
    assert_eq!(reply.body, "slow");
    within(serving)
        .await
        .expect("shutdown task")
        .expect("serve returned Ok");
    eventually(|| !idle.is_open()).await;
}

#[tokio::test]
async fn an_answer_that_ends_with_its_connection_is_passed_on_whole() {
    let router = TestRouter::start().await;
    let (address, _heads, _task) = scripted_instance(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, then close",
        false,
    )
    .await;
    router
        .router
        .switch(&env(), vec![backend_at(&address, "old-style")])
        .await;

    let mut client = Client::connect(router.address).await;
    let first = client.get(&router.host(), "/").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "all of it, then close");
    // The instance's connection is gone, not pooled: the next request opens another.
    let second = client.get(&router.host(), "/").await;
    assert_eq!(second.body, "all of it, then close");
}

#[tokio::test]
async fn interim_answers_are_skipped_and_the_final_one_passed_on() {
    let router = TestRouter::start().await;
    let (address, _heads, _task) = scripted_instance(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n\
          HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nmade\r\n0\r\n\r\n",
        true,
    )
    .await;
    router
        .router
        .switch(&env(), vec![backend_at(&address, "hints")])
        .await;

    let reply = get(router.address, &router.host(), "/").await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body, "made");
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn an_answer_that_is_not_http_gets_502_saying_so() {
    let router = TestRouter::start().await;
    let (address, _heads, _task) = scripted_instance(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", true).await;
    router
        .router
        .switch(&env(), vec![backend_at(&address, "not-http")])
        .await;

    let reply = get(router.address, &router.host(), "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.body,
        "an instance of shop/staging sent an answer that is not valid HTTP/1.1\n"
    );
}

#[tokio::test]
async fn an_answer_given_before_the_upload_ends_reaches_the_client() {
    let router = TestRouter::start().await;
    let (address, mut heads, _task) = scripted_instance(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 10\r\n\r\ntoo large\n",
        true,
    )
    .await;
    router
        .router
        .switch(&env(), vec![backend_at(&address, "strict")])
        .await;

    // The client sends a first piece and holds the rest: the answer must not wait for it.
    let (chunks, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    let body = BodyExt::boxed(StreamBody::new(ReceiverStream::new(receiver)));
    let request = Request::post("/upload")
        .header("host", router.host())
        .body(body)
        .expect("request");
    chunks
        .send(Ok(Frame::data(Bytes::from(vec![b'x'; 64 * 1024]))))
        .await
        .expect("send chunk");
    let mut client = Client::connect(router.address).await;
    let reply = Reply::read(client.send(request).await).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body, "too large\n");
    let head = within(heads.recv())
        .await
        .expect("the instance saw the request");
    assert!(head.starts_with("POST /upload HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
}

#[tokio::test]
async fn an_http2_client_reaches_the_http1_instance_with_its_host_and_body() {
    let router = TestRouter::start().await;
    let echo = TestBackend::start("echo").await;
    router.router.switch(&env(), vec![echo.backend(1)]).await;

    let stream = within(tokio::net::TcpStream::connect(router.address))
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 with prior knowledge");
    tokio::spawn(connection);

    // HTTP/2 names the host in the URI, not in a header: the instance gets it as `Host`
    // and `X-Forwarded-Host` both.
    let uri = format!("http://{}/headers", router.host());
    let request = Request::get(&uri).body(empty_body()).expect("request");
    let reply = Reply::read(within(sender.send_request(request)).await.expect("answer")).await;
    assert_eq!(reply.status, StatusCode::OK);
    for header in ["host", "x-forwarded-host"] {
        assert!(
            reply
                .body
                .lines()
                .any(|line| line == format!("{header}: {}", router.host())),
            "{}",
            reply.body
        );
    }

    // A body of unknown length goes to the instance chunked, whole.
    let (chunks, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    let body = BodyExt::boxed(StreamBody::new(ReceiverStream::new(receiver)));
    let request = Request::post(format!("http://{}/upload", router.host()))
        .body(body)
        .expect("request");
    let sent = tokio::spawn(async move {
        Reply::read(sender.send_request(request).await.expect("answer")).await
    });
    for piece in ["one", "two", "three"] {
        chunks
            .send(Ok(Frame::data(Bytes::from_static(piece.as_bytes()))))
            .await
            .expect("send chunk");
    }
    drop(chunks);
    let reply = within(sent).await.expect("upload");
    assert_eq!(reply.body, "echo received 11 bytes");
}

#[tokio::test]
async fn a_request_still_in_flight_after_the_grace_is_cut_and_shutdown_returns() {
    let router = TestRouter::start().await;
    let stuck = TestBackend::start("stuck").await;
    router.router.switch(&env(), vec![stuck.backend(1)]).await;

    let mut client = Client::connect(router.address).await;
    let request = Request::get("/never")
        .header("host", router.host())
        .body(empty_body())
        .expect("request");
    let answer = tokio::spawn(client.start(request));
    assert_eq!(stuck.arrived().await, "never");

    // The router's grace is 10 s; these waits are bounded at twice that.
    router
        .shut_down_within(2 * PATIENCE)
        .await
        .expect("serve returned Ok");
    let cut = tokio::time::timeout(2 * PATIENCE, answer)
        .await
        .expect("the client heard the end")
        .expect("client task");
    assert!(cut.is_err(), "the stuck request got an answer: {cut:?}");
}
