//! One client WebSocket: the handshake, then pushes from the connection's bounded queue, pings
//! every `keep_alive`, and a close (a SignalR Close message with the reason, then the WebSocket
//! close) when the client goes silent for `client_timeout`, invokes a hub method (serverless
//! hubs accept none; subscriptions go through the HTTP API), or the hub closes it (its queue
//! went over budget, or a REST close).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::time::{interval, sleep_until, timeout, Instant, MissedTickBehavior};

use super::protocol::{self, ClientMessage, MAX_CLIENT_RECORD_BYTES};
use super::state::{HubState, Outbox};
use super::HubLimits;

/// How long the Close message may take to go out: a client that stopped reading may never take
/// it, and its socket must not be held for that.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Records sent in one WebSocket frame, at most (each record whole, as the client needs).
const FRAME_BYTES: usize = 64 * 1024;

enum End {
    ClientClosed,
    Refused(String),
}

/// Sends one frame, unless the hub closes the connection first or the client takes longer than
/// `patience` to accept it (a client that stopped reading blocks a send once the socket buffers
/// are full; the hub's close must still get through, and the socket must not be held forever).
async fn send(
    sink: &mut SplitSink<WebSocket, Message>,
    outbox: &mut Outbox,
    frame: String,
    patience: Duration,
) -> Result<(), End> {
    tokio::select! {
        biased;
        reason = &mut outbox.closed => Err(End::Refused(
            reason.unwrap_or_else(|_| "the server is shutting down".to_owned()),
        )),
        sent = timeout(patience, sink.send(Message::Text(frame.into()))) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientClosed),
            Err(_) => Err(End::Refused(format!("the client read nothing for {patience:?}"))),
        },
    }
}

pub async fn run(
    socket: WebSocket,
    mut outbox: Outbox,
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
                Some(Ok(Message::Text(text))) => {
                    if buffer.len() + text.len() > MAX_CLIENT_RECORD_BYTES {
                        break Err("handshake too large".to_owned());
                    }
                    buffer.push_str(text.as_str());
                }
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
            // The hub's close comes first: a closed connection sends nothing more.
            biased;
            reason = &mut outbox.closed => match reason {
                Ok(reason) => break End::Refused(reason),
                // The hub forgot the connection without a reason: it is shutting down.
                Err(_) => break End::Refused("the server is shutting down".to_owned()),
            },
            record = outbox.records.recv() => match record {
                Some(record) => {
                    outbox.taken(&record);
                    // Several queued records go out in one frame: each record is whole, which
                    // is all the client needs, and it saves frames when a burst arrives.
                    let mut frame = String::from(&*record);
                    drop(record);
                    while frame.len() < FRAME_BYTES {
                        match outbox.records.try_recv() {
                            Ok(next) => {
                                outbox.taken(&next);
                                frame.push_str(&next);
                            }
                            Err(_) => break,
                        }
                    }
                    if let Err(end) = send(&mut sink, &mut outbox, frame, limits.client_timeout).await {
                        break end;
                    }
                }
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
                if let Err(end) = send(&mut sink, &mut outbox, protocol::ping_record(), limits.client_timeout).await {
                    break end;
                }
            }
        }
    };
    state.disconnect(&connection_id);
    // What was still queued is dropped now, not when the socket finally closes.
    drop(outbox);
    if let End::Refused(reason) = end {
        tracing::info!(%reason, "closing SignalR connection");
        let close = async {
            sink.send(Message::Text(
                protocol::close_record(Some(&reason), false).into(),
            ))
            .await?;
            sink.close().await
        };
        if timeout(CLOSE_WRITE_TIMEOUT, close).await.is_err() {
            tracing::debug!("the client took no Close message; dropping the socket");
        }
    } else {
        let _ = timeout(CLOSE_WRITE_TIMEOUT, sink.close()).await;
    }
    tracing::debug!("SignalR client disconnected");
}
