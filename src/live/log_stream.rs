//! `LogStream`: the `execution_data` change feed → real-time messages for an execution's two
//! groups (`realtime::groups`).
//!
//! Per batch and execution: an `executionLogs` message per group with the logs sorted by
//! `sequence` (duplicates within the batch dropped; in the members' copy an admin-only line is a
//! placeholder that keeps its place), the highest `variables` version and the latest `state`
//! to the admins only, and a `result` notice to both. The browser dedupes by sequence across
//! batches, so a redelivered batch is harmless.

use std::borrow::Cow;
use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::publish;
use crate::model::rows::{is_admin_only_level, Reader, StreamLogEntry};
use crate::model::{JsonString, Timestamp};
use crate::realtime::groups::{self, Audience};
use crate::realtime::HubMessage;
use crate::runtime::{AppContext, Batch, BatchHandler, DocumentFacts, FunctionError};

pub const TARGET_LOGS: &str = "executionLogs";
pub const TARGET_VARIABLES: &str = "executionVariables";
pub const TARGET_STATE: &str = "executionState";
pub const TARGET_RESULT: &str = "executionResult";

/// Serialized logs per `executionLogs` message. The SignalR REST API refuses bodies over 1 MB, so
/// a batch whose logs are bigger is split into several messages, still in sequence order.
pub const MAX_LOGS_BYTES_PER_MESSAGE: usize = 512 * 1024;
/// A single log bigger than the message budget is sent without `data` and with its message cut
/// to this many characters, marked `truncated: true` (the query API has it whole).
const TRUNCATED_MESSAGE_CHARS: usize = 16 * 1024;

/// What `LogStream` reads of an `execution_data` document, of any of its four types, straight
/// from the delivered text: the strings a log line sends on (`id`, `level`, `message`) and
/// `data`, `variables` and `state` kept as the JSON text they came as (they are copied into the
/// messages unchanged, never unescaped and escaped again), the rest borrowed where it needs no
/// unescaping.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: JsonString<'a>,
    #[serde(borrow)]
    execution_id: Cow<'a, str>,
    timestamp: Timestamp,
    #[serde(borrow, default)]
    level: Option<JsonString<'a>>,
    #[serde(borrow, default)]
    message: Option<JsonString<'a>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(borrow, default, deserialize_with = "present")]
    variables: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    state: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    result_type: Option<Cow<'a, str>>,
    #[serde(default)]
    result_size: Option<u64>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    blob_ref: Option<Cow<'a, str>>,
    #[serde(rename = "_ts", borrow, default)]
    ts: Option<&'a RawValue>,
}

/// An optional string borrowed from the text where it has no escapes (serde's own `Option<Cow>`
/// always copies).
fn borrowed<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowed>::deserialize(deserializer).map(|found| found.map(|b| b.0))
}

/// A member that is there, even as `null` (which `Option` alone would read as absent).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl DocumentFacts for DataView<'_> {
    fn execution_id(&self) -> Option<&str> {
        Some(&self.execution_id)
    }
    fn written_at(&self) -> Option<i64> {
        self.ts.and_then(|ts| ts.get().parse().ok())
    }
}

struct Log<'a> {
    id: JsonString<'a>,
    timestamp: Timestamp,
    level: JsonString<'a>,
    message: JsonString<'a>,
    data: Option<&'a RawValue>,
    /// `level` is one members may not read (decided once: every group's copy asks).
    admin_only: bool,
}

impl<'a> Log<'a> {
    fn new(
        id: JsonString<'a>,
        timestamp: Timestamp,
        level: JsonString<'a>,
        message: JsonString<'a>,
        data: Option<&'a RawValue>,
    ) -> Self {
        Log {
            id,
            timestamp,
            admin_only: is_admin_only_level(&level.unescaped()),
            level,
            message,
            data,
        }
    }
}

struct Snapshot<'a> {
    version: u64,
    value: &'a RawValue,
    timestamp: Timestamp,
}

struct ResultNotice<'a> {
    result_type: Cow<'a, str>,
    result_size: u64,
    in_blob: bool,
    timestamp: Timestamp,
}

/// A document of one of the four types, with what its type requires.
enum Item<'a> {
    Log(u64, Log<'a>),
    Variables(Snapshot<'a>),
    State(Snapshot<'a>),
    Result(ResultNotice<'a>),
}

fn missing(field: &str) -> String {
    format!("missing field `{field}`")
}

impl<'a> DataView<'a> {
    fn item(self) -> Result<(Cow<'a, str>, Item<'a>), String> {
        let item = match &*self.kind {
            "log" => Item::Log(
                self.sequence.ok_or_else(|| missing("sequence"))?,
                Log::new(
                    self.id,
                    self.timestamp,
                    self.level.ok_or_else(|| missing("level"))?,
                    self.message.ok_or_else(|| missing("message"))?,
                    self.data,
                ),
            ),
            "variables" => Item::Variables(Snapshot {
                version: self.version.ok_or_else(|| missing("version"))?,
                value: self.variables.ok_or_else(|| missing("variables"))?,
                timestamp: self.timestamp,
            }),
            "state" => Item::State(Snapshot {
                version: self.version.unwrap_or(0),
                value: self.state.ok_or_else(|| missing("state"))?,
                timestamp: self.timestamp,
            }),
            "result" => Item::Result(ResultNotice {
                result_type: self.result_type.ok_or_else(|| missing("resultType"))?,
                result_size: self.result_size.ok_or_else(|| missing("resultSize"))?,
                in_blob: self.blob_ref.is_some(),
                timestamp: self.timestamp,
            }),
            other => {
                return Err(format!(
                "unknown variant `{other}`, expected one of `log`, `variables`, `state`, `result`"
            ))
            }
        };
        Ok((self.execution_id, item))
    }
}

#[derive(Default)]
struct PerExecution<'a> {
    logs: BTreeMap<u64, Log<'a>>,
    variables: Option<Snapshot<'a>>,
    state: Option<Snapshot<'a>>,
    result: Option<ResultNotice<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogsArgument<'a, L: Serialize> {
    execution_id: &'a str,
    logs: L,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VariablesArgument<'a> {
    execution_id: &'a str,
    version: u64,
    variables: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateArgument<'a> {
    execution_id: &'a str,
    version: u64,
    state: &'a RawValue,
    timestamp: &'a Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultArgument<'a> {
    execution_id: &'a str,
    result_type: &'a str,
    result_size: u64,
    in_blob: bool,
    timestamp: &'a Timestamp,
}

/// The pure part: documents in, messages out, plus the documents it could not read.
pub fn messages_for_batch(
    batch: &Batch<'_>,
) -> Result<(Vec<HubMessage>, Vec<String>), FunctionError> {
    let mut executions: BTreeMap<Cow<str>, PerExecution> = BTreeMap::new();
    let mut skipped = Vec::new();
    for view in batch.read::<DataView>(&mut skipped)? {
        let id = view.id;
        let (execution_id, item) = match view.item() {
            Ok(parts) => parts,
            Err(reason) => {
                skipped.push(format!("{}: {reason}", id.unescaped()));
                continue;
            }
        };
        let entry = executions.entry(execution_id).or_default();
        match item {
            Item::Log(sequence, log) => {
                entry.logs.insert(sequence, log);
            }
            Item::Variables(v) => {
                if entry
                    .variables
                    .as_ref()
                    .is_none_or(|cur| v.version > cur.version)
                {
                    entry.variables = Some(v);
                }
            }
            Item::State(s) => {
                if entry
                    .state
                    .as_ref()
                    .is_none_or(|cur| s.version >= cur.version)
                {
                    entry.state = Some(s);
                }
            }
            Item::Result(r) => entry.result = Some(r),
        }
    }

    let mut messages = Vec::new();
    for (execution_id, found) in executions {
        let members = groups::execution(Audience::Members, &execution_id);
        let admins = groups::execution(Audience::Admins, &execution_id);
        let (member_logs, admin_logs) =
            logs_messages_of_both(&members, &admins, &execution_id, &found.logs);
        let result = found.result.as_ref().map(|r| {
            let argument = ResultArgument {
                execution_id: &execution_id,
                result_type: &r.result_type,
                result_size: r.result_size,
                in_blob: r.in_blob,
                timestamp: &r.timestamp,
            };
            HubMessage::new(admins.clone(), TARGET_RESULT, &argument)
        });
        messages.extend(member_logs);
        messages.extend(result.iter().map(|r| r.to_group(members.clone())));
        messages.extend(admin_logs);
        // Variables and state are admin-only, as on the query API.
        if let Some(v) = &found.variables {
            let argument = VariablesArgument {
                execution_id: &execution_id,
                version: v.version,
                variables: v.value,
            };
            messages.push(HubMessage::new(admins.clone(), TARGET_VARIABLES, &argument));
        }
        if let Some(s) = &found.state {
            let argument = StateArgument {
                execution_id: &execution_id,
                version: s.version,
                state: s.value,
                timestamp: &s.timestamp,
            };
            messages.push(HubMessage::new(admins.clone(), TARGET_STATE, &argument));
        }
        messages.extend(result);
    }
    Ok((messages, skipped))
}

/// The `executionLogs` messages of an execution's two groups: (the members', the admins').
fn logs_messages_of_both(
    members: &str,
    admins: &str,
    execution_id: &str,
    logs: &BTreeMap<u64, Log<'_>>,
) -> (Vec<HubMessage>, Vec<HubMessage>) {
    if logs.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let hidden = logs.values().any(|log| !visible_to(Reader::Member, log));
    let bound: usize = logs.values().map(|log| entry_bound(log) + 1).sum();
    if bound > MAX_LOGS_BYTES_PER_MESSAGE {
        // Big logs: each group's chunks made in turn, each chunk's entries freed once it is sent
        // on. With no line hidden from members, both groups get the very same payloads: share
        // them, so a batch of big logs is held once, not once per group.
        let admin_logs = logs_messages(admins, execution_id, logs, Reader::Admin);
        let member_logs = if hidden {
            logs_messages(members, execution_id, logs, Reader::Member)
        } else {
            admin_logs
                .iter()
                .map(|message| message.to_group(members.to_owned()))
                .collect()
        };
        return (member_logs, admin_logs);
    }
    // Nearly always the logs fit one message by far (which is what `chunk_logs` would make of
    // them): then each line is serialized once, for both groups (its strings and data copied as
    // delivered), and the members' payload copies each line they may read from the admins' one
    // and has a placeholder for each other.
    let (admin_text, member_text) = both_payloads(execution_id, logs, hidden, bound);
    let admin = HubMessage::from_serialized_arguments(admins.to_owned(), TARGET_LOGS, admin_text);
    let member = match member_text {
        Some(text) => HubMessage::from_serialized_arguments(members.to_owned(), TARGET_LOGS, text),
        None => admin.to_group(members.to_owned()),
    };
    (vec![member], vec![admin])
}

/// The `executionLogs` arguments (`[LogsArgument]`'s JSON) of the admins and, if a line is
/// `hidden` from them, of the members, writing each entry once: a members' entry is the bytes
/// of the admins' one, or a placeholder.
fn both_payloads(
    execution_id: &str,
    logs: &BTreeMap<u64, Log<'_>>,
    hidden: bool,
    size_hint: usize,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut admin = Vec::with_capacity(size_hint + execution_id.len() + 32);
    admin.extend_from_slice(b"[{\"executionId\":");
    write(&mut admin, &execution_id);
    admin.extend_from_slice(b",\"logs\":[");
    let mut member = hidden.then(|| {
        let mut text = Vec::with_capacity(admin.capacity());
        text.extend_from_slice(&admin);
        text
    });
    for (index, (&sequence, log)) in logs.iter().enumerate() {
        if index > 0 {
            admin.push(b',');
        }
        let start = admin.len();
        write(&mut admin, &stream_entry(sequence, log, log.message, false));
        if let Some(member) = member.as_mut() {
            if index > 0 {
                member.push(b',');
            }
            if visible_to(Reader::Member, log) {
                member.extend_from_slice(&admin[start..]);
            } else {
                write(member, &redacted_entry(sequence, log));
            }
        }
    }
    admin.extend_from_slice(b"]}]");
    if let Some(member) = member.as_mut() {
        member.extend_from_slice(b"]}]");
    }
    (admin, member)
}

/// Appends `value`'s JSON to `text`.
fn write(text: &mut Vec<u8>, value: &impl Serialize) {
    // Writing to a `Vec` fails only if serializing fails, which our own types never do.
    serde_json::to_writer(text, value).expect("a log entry serializes")
}

/// The `executionLogs` messages for `group`: the logs as `reader` gets them, in chunks.
fn logs_messages(
    group: &str,
    execution_id: &str,
    logs: &BTreeMap<u64, Log<'_>>,
    reader: Reader,
) -> Vec<HubMessage> {
    let mut messages = Vec::new();
    chunk_logs(logs, reader, |logs| {
        let argument = LogsArgument { execution_id, logs };
        messages.push(HubMessage::new(group.to_owned(), TARGET_LOGS, &argument));
    });
    messages
}

/// At least the serialized size of `log`'s entry, whole or redacted: its strings and data are
/// copied as delivered, and the rest of an entry (keys, sequence, timestamp, `truncated`) fits in
/// 200 bytes. Within the message budget `chunk_logs` makes one chunk of every entry, none
/// truncated.
fn entry_bound(log: &Log<'_>) -> usize {
    200 + log.id.json().len()
        + log.level.json().len()
        + log.message.json().len()
        + log.data.map_or(0, |data| data.get().len())
}

fn visible_to(reader: Reader, log: &Log<'_>) -> bool {
    reader == Reader::Admin || !log.admin_only
}

/// A line's entry with `message` (as delivered, or cut to fit) and, unless `truncated`, its data.
fn stream_entry<'e, M: Serialize>(
    sequence: u64,
    log: &'e Log<'_>,
    message: M,
    truncated: bool,
) -> StreamLogEntry<'e, JsonString<'e>, M, Option<&'e RawValue>> {
    StreamLogEntry {
        id: log.id,
        sequence,
        timestamp: &log.timestamp,
        level: log.level,
        message,
        data: if truncated { None } else { log.data },
        truncated,
    }
}

fn entry_json(sequence: u64, log: &Log<'_>, truncated: bool) -> Box<RawValue> {
    // Our own types always serialize.
    if truncated {
        let message: String = log
            .message
            .unescaped()
            .chars()
            .take(TRUNCATED_MESSAGE_CHARS)
            .collect();
        serde_json::value::to_raw_value(&stream_entry(sequence, log, &*message, true))
    } else {
        serde_json::value::to_raw_value(&stream_entry(sequence, log, log.message, false))
    }
    .expect("a log entry serializes")
}

/// A line `Reader::Member` may not read, as the members' stream carries it: its place, time and
/// level (`RedactedLogEntry`'s shape), never its message or data.
#[derive(Serialize)]
struct Redacted<'a> {
    id: JsonString<'a>,
    sequence: u64,
    timestamp: &'a Timestamp,
    level: JsonString<'a>,
    redacted: bool,
}

fn redacted_entry<'e>(sequence: u64, log: &'e Log<'_>) -> Redacted<'e> {
    Redacted {
        id: log.id,
        sequence,
        timestamp: &log.timestamp,
        level: log.level,
        redacted: true,
    }
}

fn redacted_json(sequence: u64, log: &Log<'_>) -> Box<RawValue> {
    // Our own types always serialize.
    serde_json::value::to_raw_value(&redacted_entry(sequence, log))
        .expect("a redacted entry serializes")
}

/// The logs (already in sequence order) as `reader` gets them, in message payloads of at most
/// `MAX_LOGS_BYTES_PER_MESSAGE` serialized bytes each; usually exactly one.
fn chunk_logs(
    logs: &BTreeMap<u64, Log<'_>>,
    reader: Reader,
    mut emit: impl FnMut(&[Box<RawValue>]),
) {
    // Each chunk is handed on (and its entries freed) as soon as it is full, so a batch of big
    // logs never holds all its entries beside the messages made of them.
    let mut current: Vec<Box<RawValue>> = Vec::new();
    let mut current_bytes = 0;
    for (&sequence, log) in logs {
        let entry = if visible_to(reader, log) {
            let whole = entry_json(sequence, log, false);
            if whole.get().len() > MAX_LOGS_BYTES_PER_MESSAGE {
                entry_json(sequence, log, true)
            } else {
                whole
            }
        } else {
            redacted_json(sequence, log)
        };
        let size = entry.get().len();
        if !current.is_empty() && current_bytes + size > MAX_LOGS_BYTES_PER_MESSAGE {
            emit(&current);
            current.clear();
            current_bytes = 0;
        }
        current_bytes += size + 1;
        current.push(entry);
    }
    if !current.is_empty() {
        emit(&current);
    }
}

pub struct LogStream;

#[async_trait]
impl BatchHandler for LogStream {
    async fn handle(
        &self,
        ctx: &AppContext,
        batch: &Batch<'_>,
    ) -> Result<Vec<String>, FunctionError> {
        let messages = messages_for_batch(batch)?;
        publish(ctx, "LogStream", batch.len(), messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawDocument;
    use crate::model::{LogDoc, VariablesDoc};
    use serde_json::{json, Value};

    fn messages_for(documents: &[Value]) -> (Vec<HubMessage>, Vec<String>) {
        let texts: Vec<String> = documents.iter().map(Value::to_string).collect();
        let raw: Vec<RawDocument> = texts.iter().map(|t| RawDocument::new(t)).collect();
        messages_for_batch(&Batch::new(&raw, 0)).unwrap()
    }

    fn log(execution: &str, sequence: u64) -> Value {
        json!({"id": LogDoc::id_for(execution, sequence), "executionId": execution, "type": "log",
               "timestamp": "2025-01-01T00:00:00Z", "level": "info", "message": format!("m{sequence}"),
               "sequence": sequence, "_lsn": 1})
    }

    #[test]
    fn logs_group_per_execution_sorted_and_deduped() {
        let docs = vec![
            log("a", 3),
            log("b", 1),
            log("a", 1),
            log("a", 3),
            log("a", 2),
        ];
        let (messages, skipped) = messages_for(&docs);
        assert!(skipped.is_empty());
        let groups: Vec<&str> = messages.iter().map(|m| m.group.as_str()).collect();
        assert_eq!(
            groups,
            [
                "execution:a",
                "execution-admin:a",
                "execution:b",
                "execution-admin:b"
            ]
        );
        for message in &messages[..2] {
            assert_eq!(message.target, TARGET_LOGS);
            assert_eq!(sequences(message), vec![1, 2, 3]);
        }
    }

    fn sequences(message: &HubMessage) -> Vec<u64> {
        message.argument_values()[0]["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sequence"].as_u64().unwrap())
            .collect()
    }

    /// A batch of big logs must not be held once per group: when members may read every line,
    /// their payloads are the admins' very ones, not copies.
    #[test]
    fn both_groups_share_one_payload_when_no_line_is_hidden() {
        let mut debug = log("b", 2);
        debug["level"] = json!("DEBUG");
        let (messages, _) = messages_for(&[log("a", 1), log("a", 2), log("b", 1), debug]);
        let payload = |group: &str| {
            let message = messages.iter().find(|m| m.group == group).unwrap();
            std::sync::Arc::clone(&message.arguments)
        };
        assert!(std::sync::Arc::ptr_eq(
            &payload("execution:a"),
            &payload("execution-admin:a")
        ));
        // A hidden line makes the members' copy its own.
        assert!(!std::sync::Arc::ptr_eq(
            &payload("execution:b"),
            &payload("execution-admin:b")
        ));
    }

    #[test]
    fn members_get_placeholders_and_no_variables_or_state_admins_everything() {
        let mut debug = log("a", 2);
        debug["level"] = json!("DEBUG");
        debug["message"] = json!("apiKey=secret");
        debug["data"] = json!({"apiKey": "secret"});
        let mut traceback = log("a", 3);
        traceback["level"] = json!("Traceback");
        traceback["message"] = json!("secret in a stack");
        let variables = json!({"id": VariablesDoc::id_for(1), "executionId": "a", "type": "variables",
                               "timestamp": "2025-01-01T00:00:00Z", "version": 1,
                               "variables": {"apiKey": "secret"}});
        let state = json!({"id": "state", "executionId": "a", "type": "state", "version": 1,
                           "timestamp": "2025-01-01T00:00:00Z", "state": {"token": "secret"}});
        let result = json!({"id": "result", "executionId": "a", "type": "result",
                            "timestamp": "2025-01-01T00:00:00Z", "result": {"ok": true},
                            "resultType": "json", "resultSize": 11});
        let (messages, skipped) =
            messages_for(&[log("a", 1), debug, traceback, variables, state, result]);
        assert!(skipped.is_empty(), "{skipped:?}");
        let members: Vec<&HubMessage> = messages
            .iter()
            .filter(|m| m.group == "execution:a")
            .collect();
        let admins: Vec<&HubMessage> = messages
            .iter()
            .filter(|m| m.group == "execution-admin:a")
            .collect();
        assert_eq!(members.len() + admins.len(), messages.len());

        let targets = |list: &[&HubMessage]| -> Vec<String> {
            list.iter().map(|m| m.target.clone()).collect()
        };
        assert_eq!(targets(&members), [TARGET_LOGS, TARGET_RESULT]);
        assert_eq!(
            targets(&admins),
            [TARGET_LOGS, TARGET_VARIABLES, TARGET_STATE, TARGET_RESULT]
        );
        // Every sequence present for members; the hidden ones as bare placeholders.
        assert_eq!(sequences(members[0]), vec![1, 2, 3]);
        let member_logs = members[0].argument_values();
        let logs = member_logs[0]["logs"].as_array().unwrap();
        assert_eq!(logs[0]["message"], "m1");
        for hidden in &logs[1..] {
            let keys: Vec<&String> = hidden.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["id", "sequence", "timestamp", "level", "redacted"]);
            assert_eq!(hidden["redacted"], true);
        }
        for message in &members {
            assert!(!message.arguments.get().contains("secret"), "{message:?}");
        }
        let admin_logs = admins[0].argument_values();
        let whole = admin_logs[0]["logs"].as_array().unwrap();
        assert_eq!(whole[1]["message"], "apiKey=secret");
        assert_eq!(whole[1]["data"]["apiKey"], "secret");
        assert!(whole.iter().all(|l| l.get("redacted").is_none()));
    }

    #[test]
    fn big_batches_split_in_order_and_huge_logs_are_truncated() {
        let big = |sequence: u64, bytes: usize| {
            let mut doc = log("a", sequence);
            doc["data"] = json!("x".repeat(bytes));
            doc
        };
        let docs: Vec<Value> = (1..=5)
            .map(|s| big(s, 200 * 1024))
            .chain([big(6, 2_000_000)])
            .collect();
        let (messages, _) = messages_for(&docs);
        let messages: Vec<HubMessage> = messages
            .into_iter()
            .filter(|m| m.group == "execution-admin:a")
            .collect();
        assert!(messages.len() >= 3, "{} messages", messages.len());
        let mut seqs = Vec::new();
        for m in &messages {
            assert_eq!(m.target, TARGET_LOGS);
            assert!(m.argument_values()[0].to_string().len() < 1024 * 1024);
            for l in m.argument_values()[0]["logs"].as_array().unwrap() {
                seqs.push(l["sequence"].as_u64().unwrap());
            }
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
        let logs = messages.last().unwrap().argument_values()[0]["logs"]
            .as_array()
            .unwrap()
            .clone();
        let last = logs.last().unwrap();
        assert_eq!(last["sequence"], 6);
        assert_eq!(last["truncated"], true);
        assert!(last["data"].is_null());
    }

    /// Within the budget, both groups' payloads made from one serialization of each line are
    /// byte for byte what `chunk_logs` makes for each group (what bigger batches take).
    #[test]
    fn both_groups_payloads_equal_the_chunked_ones() {
        let data: Box<RawValue> = serde_json::from_str(r#"{"k": ["v\\\"w", 1.5e3]}"#).unwrap();
        let timestamp = Timestamp::parse("2025-01-01T00:00:00.5Z").unwrap();
        let lines = [
            (1, "info", "plain"),
            (2, "DEBUG", "say \"hi\" \\ \u{e9}\u{1F600}\n\u{7}"),
            (5, "Traceback", ""),
            (7, "warning", "</script>\u{2028}"),
        ];
        // Each string as JSON text, the way a document delivers it.
        let texts: Vec<[String; 3]> = lines
            .iter()
            .map(|(sequence, level, message)| {
                [
                    format!("log-a-{sequence}"),
                    level.to_string(),
                    message.to_string(),
                ]
                .map(|text| serde_json::to_string(&text).unwrap())
            })
            .collect();
        fn string(text: &str) -> JsonString<'_> {
            serde_json::from_str(text).unwrap()
        }
        let mut logs = BTreeMap::new();
        for ((sequence, _, _), [id, level, message]) in lines.iter().zip(&texts) {
            logs.insert(
                *sequence,
                Log::new(
                    string(id),
                    timestamp,
                    string(level),
                    string(message),
                    (sequence % 2 == 1).then_some(&*data),
                ),
            );
        }
        let (members, admins) = logs_messages_of_both("m", "a-g", "a", &logs);
        for (reader, group, once) in [
            (Reader::Admin, "a-g", admins),
            (Reader::Member, "m", members),
        ] {
            let mut chunked = Vec::new();
            chunk_logs(&logs, reader, |entries| {
                let argument = LogsArgument {
                    execution_id: "a",
                    logs: entries,
                };
                chunked.push(HubMessage::new(group.to_owned(), TARGET_LOGS, &argument));
            });
            assert_eq!(once.len(), 1);
            assert_eq!(once[0].arguments.get(), chunked[0].arguments.get());
            assert_eq!(once, chunked);
        }
    }

    #[test]
    fn only_the_highest_variables_version_is_sent() {
        let vars = |v: u64| {
            json!({"id": VariablesDoc::id_for(v), "executionId": "a", "type": "variables",
                   "timestamp": "2025-01-01T00:00:00Z", "version": v, "variables": {"v": v}})
        };
        let (messages, _) = messages_for(&[vars(2), vars(5), vars(3)]);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].group, "execution-admin:a");
        assert_eq!(messages[0].target, TARGET_VARIABLES);
        assert_eq!(messages[0].argument_values()[0]["version"], 5);
        assert_eq!(messages[0].argument_values()[0]["variables"]["v"], 5);
    }

    #[test]
    fn unreadable_documents_are_reported_not_fatal() {
        let (messages, skipped) =
            messages_for(&[json!({"id": "x", "type": "mystery"}), log("a", 1)]);
        assert_eq!(messages.len(), 2);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("x:"));
    }
}
