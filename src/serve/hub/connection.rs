//! One client WebSocket: the handshake, then pushes from the connection's bounded queue, pings
//! every `keep_alive`, and a close when the client goes silent for `client_timeout` or invokes a
//! hub method (serverless hubs accept none; subscriptions go through the HTTP API).

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};

use super::protocol::{self, ClientMessage, MAX_CLIENT_RECORD_BYTES};
use super::state::{HubState, Record};
use super::HubLimits;

enum End {
    ClientClosed,
    Refused(String),
}

pub async fn run(
    socket: WebSocket,
    mut queue: mpsc::Receiver<Record>,
    state: HubState,
    connection_id: String,
    limits: HubLimits,
) {
    let (mut sink, mut stream) = socket.split();
    let mut buffer = String::new();

    // Handshake: the first record must be {"protocol":"json","version":1}.
    let deadline = Instant::now() + limits.handshake_timeout;
    let handshake = loop {
        let records = protocol::take_records(&mut buffer);
        if let Some(first) = records.first() {
            break protocol::check_handshake(first);
        }
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => buffer.push_str(text.as_str()),
                Some(Ok(Message::Binary(_))) => break Err("binary frames are not supported".to_owned()),
                Some(Ok(_)) => {}
                _ => {
                    state.disconnect(&connection_id);
                    return;
                }
            },
            _ = sleep_until(deadline) => break Err("handshake timed out".to_owned()),
        }
    };
    if let Err(reason) = handshake {
        tracing::info!(%reason, "SignalR handshake refused");
        let _ = sink
            .send(Message::Text(
                protocol::handshake_response(Some(&reason)).into(),
            ))
            .await;
        let _ = sink.close().await;
        state.disconnect(&connection_id);
        return;
    }
    if sink
        .send(Message::Text(protocol::handshake_response(None).into()))
        .await
        .is_err()
    {
        state.disconnect(&connection_id);
        return;
    }
    tracing::debug!("SignalR client connected");

    let mut pings = interval(limits.keep_alive);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pings.tick().await;
    let mut last_heard = Instant::now();
    let end = loop {
        tokio::select! {
            record = queue.recv() => match record {
                Some(record) => {
                    // Several queued records go out in one frame: each record is whole, which
                    // is all the client needs, and it saves frames when a burst arrives.
                    let mut frame = String::from(&*record);
                    while frame.len() < 64 * 1024 {
                        match queue.try_recv() {
                            Ok(next) => frame.push_str(&next),
                            Err(_) => break,
                        }
                    }
                    if sink.send(Message::Text(frame.into())).await.is_err() {
                        break End::ClientClosed;
                    }
                }
                // Removed from the hub (closed through REST).
                None => break End::Refused("connection closed by the server".to_owned()),
            },
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if buffer.len() + text.len() > MAX_CLIENT_RECORD_BYTES {
                        break End::Refused("message too large".to_owned());
                    }
                    buffer.push_str(text.as_str());
                    let mut outcome = None;
                    for record in protocol::take_records(&mut buffer) {
                        match protocol::parse_client_message(&record) {
                            Ok(ClientMessage::Ping | ClientMessage::Other(_)) => {}
                            Ok(ClientMessage::Close) => outcome = Some(End::ClientClosed),
                            Ok(ClientMessage::Invocation { target }) => {
                                outcome = Some(End::Refused(format!(
                                    "hub method {target:?} refused: this is a serverless hub; subscribe through the HTTP API"
                                )));
                            }
                            Err(e) => outcome = Some(End::Refused(e)),
                        }
                        if outcome.is_some() {
                            break;
                        }
                    }
                    if let Some(end) = outcome {
                        break end;
                    }
                }
                Some(Ok(Message::Binary(_))) => break End::Refused("binary frames are not supported".to_owned()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break End::ClientClosed,
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = pings.tick() => {
                if last_heard.elapsed() > limits.client_timeout {
                    break End::Refused("client timeout: nothing received".to_owned());
                }
                if sink.send(Message::Text(protocol::ping_record().into())).await.is_err() {
                    break End::ClientClosed;
                }
            }
        }
    };
    state.disconnect(&connection_id);
    if let End::Refused(reason) = end {
        tracing::info!(%reason, "closing SignalR connection");
        let _ = sink
            .send(Message::Text(
                protocol::close_record(Some(&reason), false).into(),
            ))
            .await;
    }
    let _ = sink.close().await;
    tracing::debug!("SignalR client disconnected");
}
