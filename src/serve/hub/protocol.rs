//! The pure parts of the hub: JSON hub-protocol framing (records end with 0x1E), the handshake,
//! the messages a server sends and receives, and the REST paths of the service's data-plane API.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

pub const RECORD_SEPARATOR: char = '\u{1e}';
/// Largest record a client may send (ASP.NET Core's default MaximumReceiveMessageSize).
pub const MAX_CLIENT_RECORD_BYTES: usize = 32 * 1024;

/// Takes every complete record out of `buffer`, leaving an incomplete tail in place.
pub fn take_records(buffer: &mut String) -> Vec<String> {
    let Some(last) = buffer.rfind(RECORD_SEPARATOR) else {
        return Vec::new();
    };
    let complete: String = buffer.drain(..=last).collect();
    complete
        .split(RECORD_SEPARATOR)
        .filter(|record| !record.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Deserialize)]
struct HandshakeRequest {
    protocol: String,
    version: u32,
}

/// Checks the client's first record; `Err` carries the message for `{"error": …}`.
pub fn check_handshake(record: &str) -> Result<(), String> {
    let request: HandshakeRequest = serde_json::from_str(record)
        .map_err(|e| format!("handshake is not {{\"protocol\",\"version\"}}: {e}"))?;
    if request.protocol != "json" {
        return Err(format!(
            "Requested protocol '{}' is not available.",
            request.protocol
        ));
    }
    if request.version != 1 {
        return Err(format!(
            "The server does not support version {} of the 'json' protocol.",
            request.version
        ));
    }
    Ok(())
}

pub fn handshake_response(error: Option<&str>) -> String {
    let body = match error {
        None => json!({}),
        Some(error) => json!({ "error": error }),
    };
    format!("{body}{RECORD_SEPARATOR}")
}

/// What a client sent after the handshake. Fields come in any order (the JS client puts `type` last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// A hub-method call; serverless hubs refuse them.
    Invocation {
        target: String,
    },
    Ping,
    Close,
    /// Completions, stream items, acks...: ignored.
    Other(u64),
}

pub fn parse_client_message(record: &str) -> Result<ClientMessage, String> {
    let value: Value =
        serde_json::from_str(record).map_err(|e| format!("message is not JSON: {e}"))?;
    let kind = value
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| "message has no numeric \"type\"".to_owned())?;
    Ok(match kind {
        1 | 4 => ClientMessage::Invocation {
            target: value
                .get("target")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        6 => ClientMessage::Ping,
        7 => ClientMessage::Close,
        other => ClientMessage::Other(other),
    })
}

pub fn ping_record() -> String {
    format!("{}{RECORD_SEPARATOR}", json!({ "type": 6 }))
}

pub fn close_record(error: Option<&str>, allow_reconnect: bool) -> String {
    let mut close = json!({ "type": 7 });
    if let Some(error) = error {
        close["error"] = json!(error);
    }
    if allow_reconnect {
        close["allowReconnect"] = json!(true);
    }
    format!("{close}{RECORD_SEPARATOR}")
}

/// The body of a REST `:send` (`PayloadMessage`): `target` required, `arguments` optional. The
/// arguments stay raw JSON text (checked, never turned into a tree): they are copied into the
/// record as they came, so a 1 MB send costs the hub about 1 MB, not a parsed copy besides.
#[derive(Debug, Deserialize)]
pub struct PayloadMessage<'a> {
    pub target: String,
    #[serde(default, borrow)]
    pub arguments: Option<&'a RawValue>,
}

impl<'a> PayloadMessage<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, String> {
        let message: PayloadMessage = serde_json::from_slice(body)
            .map_err(|e| format!("body is not {{\"target\", \"arguments\"}}: {e}"))?;
        if message.target.is_empty() {
            return Err("\"target\" is empty".to_owned());
        }
        if let Some(arguments) = message.arguments {
            if !arguments.get().trim_start().starts_with('[') {
                return Err("\"arguments\" must be an array".to_owned());
            }
        }
        Ok(message)
    }

    /// The Invocation record a client receives for this send.
    pub fn record(&self) -> String {
        invocation_record(&self.target, self.arguments.map(RawValue::get))
    }
}

/// The Invocation record of a server send: `arguments` is a JSON array's text, copied in as it
/// is (`None`: no arguments). One function for the REST sends and the in-process sink, so both
/// put the same bytes on the wire.
pub fn invocation_record(target: &str, arguments: Option<&str>) -> String {
    let arguments = arguments.unwrap_or("[]");
    format!(
        "{{\"type\":1,\"target\":{},\"arguments\":{arguments}}}{RECORD_SEPARATOR}",
        Value::String(target.to_owned())
    )
}

/// One call of the REST subset, with segments percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestCall {
    SendToAll,
    SendToGroup { group: String },
    SendToConnection { connection: String },
    AddToGroup { group: String, connection: String },
    RemoveFromGroup { group: String, connection: String },
    RemoveFromAllGroups { connection: String },
    ConnectionExists { connection: String },
    GroupExists { group: String },
    CloseConnection { connection: String },
    SendToUser { user: String },
    AddUserToGroup { group: String, user: String },
    RemoveUserFromGroup { group: String, user: String },
    RemoveUserFromAllGroups { user: String },
    UserInGroup { group: String, user: String },
    UserExists { user: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestPathError {
    #[error("no such REST API: {0}")]
    NotFound(String),
    #[error("path segment is not UTF-8")]
    BadEscape,
}

/// `path` is everything after `/api/hubs/`: `{hub}/groups/{group}/:send` and friends.
pub fn parse_rest_path(method: &str, path: &str) -> Result<(String, RestCall), RestPathError> {
    let segments: Vec<String> = path
        .split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| RestPathError::BadEscape)
        })
        .collect::<Result<_, _>>()?;
    let not_found = || RestPathError::NotFound(format!("{method} /api/hubs/{path}"));
    let (hub, rest) = segments.split_first().ok_or_else(not_found)?;
    if hub.is_empty() {
        return Err(not_found());
    }
    let parts: Vec<&str> = rest.iter().map(String::as_str).collect();
    let call = match (method, parts.as_slice()) {
        ("POST", [":send"]) => RestCall::SendToAll,
        ("POST", ["groups", group, ":send"]) => RestCall::SendToGroup {
            group: (*group).to_owned(),
        },
        ("POST", ["connections", connection, ":send"]) => RestCall::SendToConnection {
            connection: (*connection).to_owned(),
        },
        ("PUT", ["groups", group, "connections", connection]) => RestCall::AddToGroup {
            group: (*group).to_owned(),
            connection: (*connection).to_owned(),
        },
        ("DELETE", ["groups", group, "connections", connection]) => RestCall::RemoveFromGroup {
            group: (*group).to_owned(),
            connection: (*connection).to_owned(),
        },
        ("DELETE", ["connections", connection, "groups"]) => RestCall::RemoveFromAllGroups {
            connection: (*connection).to_owned(),
        },
        ("HEAD", ["connections", connection]) => RestCall::ConnectionExists {
            connection: (*connection).to_owned(),
        },
        ("DELETE", ["connections", connection]) => RestCall::CloseConnection {
            connection: (*connection).to_owned(),
        },
        ("HEAD", ["groups", group]) => RestCall::GroupExists {
            group: (*group).to_owned(),
        },
        ("POST", ["users", user, ":send"]) => RestCall::SendToUser {
            user: (*user).to_owned(),
        },
        ("PUT", ["users", user, "groups", group]) => RestCall::AddUserToGroup {
            group: (*group).to_owned(),
            user: (*user).to_owned(),
        },
        ("DELETE", ["users", user, "groups", group]) => RestCall::RemoveUserFromGroup {
            group: (*group).to_owned(),
            user: (*user).to_owned(),
        },
        ("DELETE", ["users", user, "groups"]) => RestCall::RemoveUserFromAllGroups {
            user: (*user).to_owned(),
        },
        ("HEAD", ["users", user, "groups", group]) => RestCall::UserInGroup {
            group: (*group).to_owned(),
            user: (*user).to_owned(),
        },
        ("HEAD", ["users", user]) => RestCall::UserExists {
            user: (*user).to_owned(),
        },
        _ => return Err(not_found()),
    };
    let is_valid = |s: &str| !s.is_empty() && s.len() <= 1024;
    let names_ok = match &call {
        RestCall::SendToAll => true,
        RestCall::SendToGroup { group } | RestCall::GroupExists { group } => is_valid(group),
        RestCall::SendToConnection { connection }
        | RestCall::RemoveFromAllGroups { connection }
        | RestCall::ConnectionExists { connection }
        | RestCall::CloseConnection { connection } => is_valid(connection),
        RestCall::AddToGroup { group, connection }
        | RestCall::RemoveFromGroup { group, connection } => {
            is_valid(group) && is_valid(connection)
        }
        RestCall::SendToUser { user }
        | RestCall::RemoveUserFromAllGroups { user }
        | RestCall::UserExists { user } => is_valid(user),
        RestCall::AddUserToGroup { group, user }
        | RestCall::RemoveUserFromGroup { group, user }
        | RestCall::UserInGroup { group, user } => is_valid(group) && is_valid(user),
    };
    if !names_ok {
        return Err(not_found());
    }
    Ok((hub.to_ascii_lowercase(), call))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_and_keep_incomplete_tails() {
        let mut buffer = "{\"type\":6}\u{1e}{\"type\":1}\u{1e}{\"ty".to_owned();
        assert_eq!(
            take_records(&mut buffer),
            vec!["{\"type\":6}", "{\"type\":1}"]
        );
        assert_eq!(buffer, "{\"ty");
        buffer.push_str("pe\":7}\u{1e}");
        assert_eq!(take_records(&mut buffer), vec!["{\"type\":7}"]);
        assert!(buffer.is_empty());
    }

    #[test]
    fn handshake_accepts_json_v1_only() {
        assert!(check_handshake(r#"{"protocol":"json","version":1}"#).is_ok());
        assert_eq!(
            check_handshake(r#"{"protocol":"messagepack","version":1}"#),
            Err("Requested protocol 'messagepack' is not available.".into())
        );
        assert!(check_handshake("nope").is_err());
        assert_eq!(handshake_response(None), "{}\u{1e}");
    }

    #[test]
    fn client_messages_parse_in_any_key_order() {
        assert_eq!(
            parse_client_message(r#"{"target":"Join","arguments":[],"invocationId":"0","type":1}"#),
            Ok(ClientMessage::Invocation {
                target: "Join".into()
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":6}"#),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_message(r#"{"type":7}"#),
            Ok(ClientMessage::Close)
        );
        assert!(parse_client_message(r#"{"kind":6}"#).is_err());
    }

    #[test]
    fn pushes_have_no_invocation_id() {
        // A server push: an Invocation **without** `invocationId` (with one, the client would
        // treat it as a request for a result).
        let record = PayloadMessage::parse(br#"{"target":"executionLogs","arguments":[{"a":1}]}"#)
            .unwrap()
            .record();
        assert!(record.ends_with('\u{1e}'));
        let value: Value = serde_json::from_str(record.trim_end_matches('\u{1e}')).unwrap();
        assert_eq!(value["type"], 1);
        assert!(value.get("invocationId").is_none());
        assert_eq!(
            close_record(Some("slow"), true),
            "{\"type\":7,\"error\":\"slow\",\"allowReconnect\":true}\u{1e}"
        );
    }

    #[test]
    fn sends_keep_their_arguments_verbatim() {
        let body = br#"{"target":"executionLogs","arguments":[{"b":1,"a":[true]}]}"#;
        let message = PayloadMessage::parse(body).unwrap();
        assert_eq!(
            message.record(),
            "{\"type\":1,\"target\":\"executionLogs\",\"arguments\":[{\"b\":1,\"a\":[true]}]}\u{1e}"
        );
        assert_eq!(
            PayloadMessage::parse(br#"{"target":"t"}"#)
                .unwrap()
                .record(),
            "{\"type\":1,\"target\":\"t\",\"arguments\":[]}\u{1e}"
        );
        for bad in [
            &br#"{"target":""}"#[..],
            br#"{"target":"t","arguments":{}}"#,
            b"[]",
            b"{",
        ] {
            assert!(PayloadMessage::parse(bad).is_err());
        }
    }

    #[test]
    fn rest_paths_decode_and_route() {
        assert_eq!(
            parse_rest_path("POST", "Bifrost/groups/execution%3Aab/:send"),
            Ok((
                "bifrost".into(),
                RestCall::SendToGroup {
                    group: "execution:ab".into()
                }
            ))
        );
        assert_eq!(
            parse_rest_path("PUT", "b/groups/g/connections/c1").map(|r| r.1),
            Ok(RestCall::AddToGroup {
                group: "g".into(),
                connection: "c1".into()
            })
        );
        assert!(matches!(
            parse_rest_path("GET", "b/groups/g/:send"),
            Err(RestPathError::NotFound(_))
        ));
        assert!(parse_rest_path("POST", "b/groups//:send").is_err());
        assert_eq!(
            parse_rest_path("PUT", "b/users/ann%40x.com/groups/execution%3A1").map(|r| r.1),
            Ok(RestCall::AddUserToGroup {
                group: "execution:1".into(),
                user: "ann@x.com".into()
            })
        );
        assert_eq!(
            parse_rest_path("DELETE", "b/users/u/groups").map(|r| r.1),
            Ok(RestCall::RemoveUserFromAllGroups { user: "u".into() })
        );
        assert_eq!(
            parse_rest_path("POST", "b/groups/%FF/:send"),
            Err(RestPathError::BadEscape)
        );
    }
}
