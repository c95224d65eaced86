//! The backend-neutral `Query` as SQL over `documents` (pure: `page` runs it).
//!
//! Every value is a bound parameter; field paths are validated identifiers. As in Cosmos,
//! values of different JSON types never match, equality with null means "absent or null", and
//! documents lacking an order-by field are left out; ties are broken by `id` in the direction of
//! the last key, and pages continue by keyset from a token tied to the query that issued it.

use rusqlite::types::Value as SqlValue;
use serde_json::Value;

use crate::store::keyset;
use crate::store::query::{Field, FilterOp, Query};
use crate::store::{Container, StoreError};

/// How SQL refers to a queried field and to its JSON type.
struct Operand {
    value: String,
    json_type: String,
}

impl Operand {
    /// System properties live in columns (they are not in the stored body); everything else is
    /// read from the body. Field paths are validated identifiers, so quoting them is safe.
    fn of(field: &Field) -> Operand {
        let column = |value: &str, json_type: &str| Operand {
            value: value.to_owned(),
            json_type: json_type.to_owned(),
        };
        match field.path() {
            "id" => column("id", "'text'"),
            "_etag" => column("etag", "'text'"),
            "_ts" => column("ts", "'integer'"),
            "_lsn" => column("lsn", "'integer'"),
            _ => {
                let mut path = String::from("$");
                for segment in field.segments() {
                    path.push('.');
                    path.push_str(segment);
                }
                Operand {
                    value: format!("json_extract(body, '{path}')"),
                    json_type: format!("json_type(body, '{path}')"),
                }
            }
        }
    }
}

/// A scalar filter value as `json_extract` returns its kind (booleans are 0/1), with the JSON
/// types it may be compared with: like Cosmos, values of different types never match (so a
/// `true` does not equal `1`, nor a string sort against a number).
fn typed_value(value: &Value) -> Result<Option<(&'static str, SqlValue)>, StoreError> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => ("'true', 'false'", SqlValue::Integer(i64::from(*b))),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => ("'integer', 'real'", SqlValue::Integer(i)),
            (None, Some(f)) => ("'integer', 'real'", SqlValue::Real(f)),
            _ => return Err(StoreError::InvalidQuery(format!("unsupported number {n}"))),
        },
        Value::String(s) => ("'text'", SqlValue::Text(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(StoreError::InvalidQuery(
                "filter values must be scalars".into(),
            ))
        }
    }))
}

fn comparison(
    operand: &Operand,
    op: &str,
    value: &Value,
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    let Operand {
        value: v,
        json_type,
    } = operand;
    Ok(match (typed_value(value)?, op) {
        (None, "=") => format!("{v} IS NULL"),
        (None, "<>") => format!("{v} IS NOT NULL"),
        (None, _) => "0".to_owned(),
        (Some((types, bound)), _) => {
            args.push(bound);
            format!("({json_type} IN ({types}) AND {v} {op} ?)")
        }
    })
}

fn membership(
    operand: &Operand,
    values: &[Value],
    args: &mut Vec<SqlValue>,
) -> Result<String, StoreError> {
    // One typed IN per kind of value present, so mixed lists keep the no-cross-type rule.
    let mut groups: Vec<(&'static str, Vec<SqlValue>)> = Vec::new();
    let mut null = false;
    for value in values {
        match typed_value(value)? {
            None => null = true,
            Some((types, bound)) => match groups.iter_mut().find(|(t, _)| *t == types) {
                Some((_, group)) => group.push(bound),
                None => groups.push((types, vec![bound])),
            },
        }
    }
    let mut alternatives = Vec::new();
    if null {
        alternatives.push(format!("{} IS NULL", operand.value));
    }
    for (types, group) in groups {
        let marks = vec!["?"; group.len()].join(", ");
        alternatives.push(format!(
            "({} IN ({types}) AND {} IN ({marks}))",
            operand.json_type, operand.value
        ));
        args.extend(group);
    }
    Ok(if alternatives.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", alternatives.join(" OR "))
    })
}

/// A query rendered to SQL: every value is a bound parameter.
pub(super) struct RenderedQuery {
    pub(super) sql: String,
    pub(super) args: Vec<SqlValue>,
    /// Number of order-by key columns after the fixed `body, etag, ts, lsn, id`.
    pub(super) key_count: usize,
    pub(super) limit: usize,
    /// Identifies the query's shape and parameters, so a token from another query is refused.
    pub(super) fingerprint: String,
}

fn sql_value_bytes(value: &SqlValue) -> Vec<u8> {
    match value {
        SqlValue::Null => vec![0],
        SqlValue::Integer(i) => [&[1u8][..], &i.to_le_bytes()].concat(),
        SqlValue::Real(f) => [&[2u8][..], &f.to_bits().to_le_bytes()].concat(),
        SqlValue::Text(s) => [&[3u8][..], s.as_bytes()].concat(),
        SqlValue::Blob(b) => [&[4u8][..], b].concat(),
    }
}

pub(super) fn render_query(
    container: Container,
    pk: &str,
    query: &Query,
    now_ms: i64,
) -> Result<RenderedQuery, StoreError> {
    if query.limit == 0 {
        return Err(StoreError::InvalidQuery("limit must be at least 1".into()));
    }
    // Keys: the order-by fields, then id in the direction of the last key (a total order).
    let mut keys: Vec<(Operand, bool)> = query
        .order_by
        .iter()
        .map(|o| (Operand::of(&o.field), o.descending))
        .collect();
    let id_descending = keys.last().is_some_and(|(_, descending)| *descending);
    keys.push((
        Operand {
            value: "id".into(),
            json_type: "'text'".into(),
        },
        id_descending,
    ));

    let mut sql = String::from("SELECT body, etag, ts, lsn, id");
    for (key, _) in &keys[..keys.len() - 1] {
        sql.push_str(", ");
        sql.push_str(&key.value);
    }
    sql.push_str(" FROM documents WHERE container = ? AND pk = ?");
    let mut args = vec![
        SqlValue::Text(container.name().to_owned()),
        SqlValue::Text(pk.to_owned()),
    ];
    for filter in &query.filters {
        let operand = Operand::of(&filter.field);
        let condition = match &filter.op {
            FilterOp::Eq(v) => comparison(&operand, "=", v, &mut args)?,
            FilterOp::Ne(v) => comparison(&operand, "<>", v, &mut args)?,
            FilterOp::Lt(v) => comparison(&operand, "<", v, &mut args)?,
            FilterOp::Le(v) => comparison(&operand, "<=", v, &mut args)?,
            FilterOp::Gt(v) => comparison(&operand, ">", v, &mut args)?,
            FilterOp::Ge(v) => comparison(&operand, ">=", v, &mut args)?,
            FilterOp::In(values) => membership(&operand, values, &mut args)?,
            FilterOp::Defined(true) => format!("{} IS NOT NULL", operand.value),
            FilterOp::Defined(false) => format!("{} IS NULL", operand.value),
        };
        sql.push_str(" AND ");
        sql.push_str(&condition);
    }
    for (key, _) in &keys[..keys.len() - 1] {
        sql.push_str(&format!(" AND {} IS NOT NULL", key.value));
    }
    let order: Vec<String> = keys
        .iter()
        .map(|(key, d)| format!("{} {}", key.value, if *d { "DESC" } else { "ASC" }))
        .collect();
    let order = order.join(", ");

    let mut hashed: Vec<Vec<u8>> = vec![sql.as_bytes().to_vec(), order.as_bytes().to_vec()];
    hashed.extend(args.iter().map(sql_value_bytes));
    let fingerprint = format!(
        "{:016x}",
        keyset::fnv1a(&hashed.iter().map(Vec::as_slice).collect::<Vec<_>>())
    );

    sql.push_str(" AND (expires_at IS NULL OR expires_at > ?)");
    args.push(SqlValue::Integer(now_ms));

    if let Some(token) = &query.continuation {
        let mut after = decode_continuation(token, &fingerprint, keys.len() - 1)?;
        let same_direction = keys.iter().all(|(_, d)| *d == id_descending);
        if same_direction {
            let columns: Vec<&str> = keys.iter().map(|(k, _)| k.value.as_str()).collect();
            let marks = vec!["?"; keys.len()].join(", ");
            let op = if id_descending { "<" } else { ">" };
            sql.push_str(&format!(" AND ({}) {op} ({marks})", columns.join(", ")));
            args.append(&mut after);
        } else {
            // (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...: the row-value form needs one direction.
            let mut alternatives = Vec::new();
            for i in 0..keys.len() {
                let mut parts = Vec::new();
                for (j, (key, _)) in keys.iter().enumerate().take(i) {
                    parts.push(format!("{} = ?", key.value));
                    args.push(after[j].clone());
                }
                let (key, descending) = &keys[i];
                let op = if *descending { "<" } else { ">" };
                parts.push(format!("{} {op} ?", key.value));
                args.push(after[i].clone());
                alternatives.push(format!("({})", parts.join(" AND ")));
            }
            sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
        }
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
    args.push(SqlValue::Integer(
        i64::try_from(query.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1),
    ));
    Ok(RenderedQuery {
        sql,
        args,
        key_count: keys.len() - 1,
        limit: query.limit,
        fingerprint,
    })
}

/// The bound values (order keys, then id) to continue after, or `BadContinuation` for any token
/// this query did not issue.
fn decode_continuation(
    token: &str,
    fingerprint: &str,
    key_count: usize,
) -> Result<Vec<SqlValue>, StoreError> {
    let (keys, id) = keyset::decode(token, fingerprint, key_count)?;
    let mut bound = keys
        .iter()
        .map(|key| match typed_value(key) {
            // Order keys are never null (rows without them are excluded).
            Ok(Some((_, v))) => Ok(v),
            _ => Err(StoreError::BadContinuation),
        })
        .collect::<Result<Vec<_>, _>>()?;
    bound.push(SqlValue::Text(id));
    Ok(bound)
}
