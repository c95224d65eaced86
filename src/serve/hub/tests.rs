//! The hub over real sockets, in process: negotiate and REST through `RestSender` (and serve's
//! in-process `HubSink` beside it), WebSockets through a minimal hand-written client (so a client
//! can simply stop reading, like a stalled browser tab).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::state::QueueBudget;
use super::{Hub, HubLimits, HubSink};
use crate::realtime::{jwt, HubMessage, MessageSink, RestSender, SinkError, HUB};

async fn start(limits: HubLimits) -> (Hub, RestSender) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hub = Hub::new(&format!("http://{address}"), limits);
    let router = hub.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let sender = RestSender::new(hub.connection_string().clone(), HUB).unwrap();
    (hub, sender)
}

/// A connected client of `user`, within 10 s: its connection id and socket.
async fn connect(sender: &dyn MessageSink, user: &str) -> (String, TcpStream) {
    tokio::time::timeout(Duration::from_secs(10), handshake(sender, user))
        .await
        .expect("the hub accepts a client within 10 s")
}

/// Negotiates as the official client does and opens the WebSocket, handshake included.
async fn handshake(sender: &dyn MessageSink, user: &str) -> (String, TcpStream) {
    let info = sender.client_connection(Some(user)).unwrap();
    let negotiate = info.url.replacen("/client/?", "/client/negotiate?", 1) + "&negotiateVersion=1";
    let negotiated: Value = reqwest::Client::new()
        .post(&negotiate)
        .bearer_auth(&info.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let authority = info
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    let request = format!(
        "GET /client/?hub={HUB}&id={} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
        negotiated["connectionToken"].as_str().unwrap(),
        info.access_token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A masked text frame, as clients must send.
    let payload = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
    assert_eq!(read_frame(&mut stream).await.unwrap(), "{}\u{1e}");
    (
        negotiated["connectionId"].as_str().unwrap().to_owned(),
        stream,
    )
}

/// One unmasked server frame's text; `None` when the connection closed.
async fn read_frame(stream: &mut TcpStream) -> Option<String> {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).await.ok()?;
    let length = match header[1] & 0x7f {
        126 => u64::from(stream.read_u16().await.ok()?),
        127 => stream.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mut payload = vec![0; length as usize];
    stream.read_exact(&mut payload).await.ok()?;
    if header[0] & 0x0f == 0x8 {
        return None;
    }
    Some(String::from_utf8(payload).unwrap())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_without_slowing_the_others() {
    let limits = HubLimits {
        queue: QueueBudget {
            records: 1024,
            bytes: 512 * 1024,
        },
        ..HubLimits::default()
    };
    let (hub, sender) = start(limits).await;
    let (fast_id, mut fast) = connect(&sender, "fast").await;
    let (slow_id, _slow_never_reads) = connect(&sender, "slow").await;
    let ttl = Duration::from_secs(60);
    sender.add_user_to_group("g", "fast", ttl).await.unwrap();
    sender.add_user_to_group("g", "slow", ttl).await.unwrap();
    assert_eq!(hub.connection_count(), 2);

    let reader = tokio::spawn(async move {
        let mut records = 0;
        while records < 400 {
            let Some(text) = read_frame(&mut fast).await else {
                break;
            };
            records += text
                .split('\u{1e}')
                .filter(|record| record.contains("\"target\":\"push\""))
                .count();
        }
        records
    });
    // 400 × 64 KiB: far more than the socket buffers and the 512 KiB budget can hold.
    let filler = "x".repeat(64 * 1024);
    for n in 0..400 {
        let message = HubMessage::new("g".into(), "push", &json!({ "n": n, "filler": filler }));
        tokio::time::timeout(Duration::from_secs(10), sender.send(&[message]))
            .await
            .expect("a stalled client must not block the sender")
            .unwrap();
    }
    let received = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the fast client keeps receiving")
        .unwrap();
    assert_eq!(received, 400);
    assert!(
        !hub.state.exists(HUB, &slow_id),
        "the stalled client is still connected"
    );
    assert!(hub.state.exists(HUB, &fast_id));
}

/// A masked client text frame (16-bit length form, so 126..=65535 bytes).
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [7u8, 1, 9, 3];
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_client_message_larger_than_the_read_buffer_arrives_whole() {
    let (hub, sender) = start(HubLimits::default()).await;
    let (id, mut client) = connect(&sender, "ann").await;
    // A ping five times the socket read buffer, still under the message limit.
    let padding = "x".repeat(5 * super::CLIENT_READ_BUFFER_BYTES);
    let ping = format!("{{\"type\":6,\"padding\":\"{padding}\"}}\u{1e}");
    assert!(ping.len() < super::MAX_CLIENT_MESSAGE_BYTES);
    client
        .write_all(&masked_text_frame(ping.as_bytes()))
        .await
        .unwrap();
    sender
        .add_user_to_group("g", "ann", Duration::from_secs(60))
        .await
        .unwrap();
    let message = HubMessage::new("g".into(), "push", &json!({ "after": "ping" }));
    sender.send(&[message]).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut client))
        .await
        .expect("a frame within 10 s")
        .expect("the connection stays open after a large ping");
    assert!(frame.contains("\"target\":\"push\""), "{frame}");
    assert!(hub.state.exists(HUB, &id));
}

#[tokio::test]
async fn unknown_or_reused_connection_tokens_are_refused() {
    let (_hub, sender) = start(HubLimits::default()).await;
    let info = sender.client_connection(None).unwrap();
    let base = info.url.split("/client").next().unwrap().to_owned();
    let response = reqwest::Client::new()
        .get(format!("{base}/client/?hub={HUB}&id=nope"))
        .bearer_auth(&info.access_token)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("no negotiated connection"));
}

#[tokio::test]
async fn the_sender_fails_loudly_on_a_wrong_key_or_an_unreachable_service() {
    let (hub, _) = start(HubLimits::default()).await;
    let message = HubMessage::without_arguments("g".into(), "t");
    let mut wrong_key = hub.connection_string().clone();
    wrong_key.access_key = "not-the-key".into();
    let error = RestSender::new(wrong_key, HUB)
        .unwrap()
        .send(std::slice::from_ref(&message))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("401"), "{error}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = format!("Endpoint={endpoint};AccessKey=k;Version=1.0;")
        .parse()
        .unwrap();
    let error = RestSender::new(unreachable, HUB)
        .unwrap()
        .send(&[message])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("gave up after 3 attempts"), "{error}");
}

/// A server frame within 10 s.
async fn next_frame(stream: &mut TcpStream) -> String {
    tokio::time::timeout(Duration::from_secs(10), read_frame(stream))
        .await
        .expect("a frame within 10 s")
        .expect("the connection stays open")
}

#[tokio::test]
async fn the_in_process_sink_delivers_what_the_rest_api_delivers() {
    let (hub, sender) = start(HubLimits::default()).await;
    let sink = HubSink::new(hub.clone(), HUB);

    // Negotiate gives what `RestSender` gives: the same URL, a token with the same claims.
    let ours = sink.client_connection(Some("ann")).unwrap();
    let theirs = sender.client_connection(Some("ann")).unwrap();
    assert_eq!(ours.url, theirs.url);
    let key = &hub.connection_string().access_key;
    let claims = jwt::verify(&ours.access_token, key, &[&ours.url]).unwrap();
    let expected = jwt::verify(&theirs.access_token, key, &[&theirs.url]).unwrap();
    assert_eq!((claims.aud, claims.nameid), (expected.aud, expected.nameid));

    // A client negotiated with the sink's token, over the real WebSocket.
    let (ann_id, mut ann) = connect(&sink, "ann").await;
    let (_, mut bob) = connect(&sink, "bob").await;
    let ttl = Duration::from_secs(60);
    sink.add_user_to_group("g", "ann", ttl).await.unwrap();
    sink.add_user_to_group("other", "bob", ttl).await.unwrap();
    assert!(hub.state.user_in_group(HUB, "g", "ann"));

    let message = HubMessage::new("g".into(), "push", &json!({ "n": 1, "text": "é\"" }));
    sink.send(std::slice::from_ref(&message)).await.unwrap();
    let in_process = next_frame(&mut ann).await;
    sender.send(std::slice::from_ref(&message)).await.unwrap();
    let over_rest = next_frame(&mut ann).await;
    assert_eq!(in_process, over_rest, "the same frame either way");
    assert_eq!(
        in_process,
        "{\"type\":1,\"target\":\"push\",\"arguments\":[{\"n\":1,\"text\":\"é\\\"\"}]}\u{1e}"
    );

    // A group's messages stay in order; bob, in another group, got none of them.
    let batch: Vec<HubMessage> = (2..5)
        .map(|n| HubMessage::new("g".into(), "push", &json!({ "n": n })))
        .chain([HubMessage::new(
            "other".into(),
            "push",
            &json!({ "to": "bob" }),
        )])
        .collect();
    sink.send(&batch).await.unwrap();
    let mut received = String::new();
    while received.matches('\u{1e}').count() < 3 {
        received.push_str(&next_frame(&mut ann).await);
    }
    let positions: Vec<usize> = (2..5)
        .map(|n| {
            received
                .find(&format!("\"n\":{n}"))
                .unwrap_or_else(|| panic!("log {n} missing: {received}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{received}");
    let to_bob = next_frame(&mut bob).await;
    assert!(
        to_bob.contains("\"to\":\"bob\""),
        "bob's first frame: {to_bob}"
    );

    // Out of the group: nothing more reaches ann's connection.
    sink.remove_user_from_group("g", "ann").await.unwrap();
    assert!(!hub.state.user_in_group(HUB, "g", "ann"));
    assert_eq!(hub.state.send_to_group(HUB, "g", &"x".into()).queued, 0);
    assert!(hub.state.exists(HUB, &ann_id));
}

#[tokio::test]
async fn a_hub_that_is_shutting_down_fails_the_sink_and_the_rest_api_alike() {
    let (hub, sender) = start(HubLimits::default()).await;
    let sink = HubSink::new(hub.clone(), HUB);
    sink.probe().await.unwrap();
    hub.shut_down();
    let message = HubMessage::without_arguments("g".into(), "t");
    let error = sink.send(std::slice::from_ref(&message)).await.unwrap_err();
    assert!(
        matches!(&error, SinkError::Send(text) if text.contains("shutting down")),
        "{error}"
    );
    let ttl = Duration::from_secs(60);
    assert!(sink.add_user_to_group("g", "ann", ttl).await.is_err());
    assert!(sink.remove_user_from_group("g", "ann").await.is_err());
    assert!(sink.probe().await.is_err());
    assert!(!hub.state.user_in_group(HUB, "g", "ann"));

    let error = sender.send(&[message]).await.unwrap_err().to_string();
    assert!(
        error.contains("503") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert!(sender.add_user_to_group("g", "ann", ttl).await.is_err());
}
