//! Renders the backend-neutral `Query` as Cosmos SQL with bound parameters (pure).
//!
//! Field paths are validated identifiers and are written in bracket form (`c['group']`), so
//! reserved words such as `group` or `value` are fine; every value is a `@pN` parameter. The
//! semantics match the SQLite backend: values of different JSON types never match (each
//! comparison is guarded by `IS_STRING`/`IS_NUMBER`/`IS_BOOL`), equality with null means
//! "absent or null", documents lacking an order-by field are left out, ties are broken by `id`
//! in the direction of the last key, and pages continue by keyset (the last row's keys), so a
//! page costs one `TOP n+1` query whatever its depth.

use serde_json::Value;

use super::super::keyset;
use super::super::query::{Field, FilterOp, Query};
use super::super::StoreError;

/// A query ready for `query_items`: SQL text with placeholders only, and their values.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedQuery {
    pub sql: String,
    pub parameters: Vec<(String, Value)>,
    pub limit: usize,
    /// The order-by fields (without the `id` tie-breaker), to read a page's last keys.
    pub order_fields: Vec<Field>,
    /// Identifies the query's shape, parameters and partition, so a token from another query
    /// is refused.
    pub fingerprint: String,
}

struct Builder {
    parameters: Vec<(String, Value)>,
}

impl Builder {
    fn bind(&mut self, value: Value) -> String {
        let name = format!("@p{}", self.parameters.len());
        self.parameters.push((name.clone(), value));
        name
    }
}

/// `c['a']['b']` for field path `a.b`. Single quotes: Cosmos accepts both kinds, and the
/// SDK's emulator only parses single-quoted property names.
pub fn reference(field: &Field) -> String {
    let mut out = String::from("c");
    for segment in field.segments() {
        out.push_str("['");
        out.push_str(segment);
        out.push_str("']");
    }
    out
}

/// The type check that keeps a comparison within one JSON type; `None` for null.
fn type_guard(value: &Value) -> Result<Option<&'static str>, StoreError> {
    Ok(match value {
        Value::Null => None,
        Value::Bool(_) => Some("IS_BOOL"),
        Value::Number(_) => Some("IS_NUMBER"),
        Value::String(_) => Some("IS_STRING"),
        Value::Array(_) | Value::Object(_) => {
            return Err(StoreError::InvalidQuery(
                "filter values must be scalars".into(),
            ))
        }
    })
}

fn present(field: &str) -> String {
    format!("(IS_DEFINED({field}) AND NOT IS_NULL({field}))")
}

fn absent(field: &str) -> String {
    format!("(NOT IS_DEFINED({field}) OR IS_NULL({field}))")
}

fn comparison(b: &mut Builder, field: &str, op: &str, value: &Value) -> Result<String, StoreError> {
    Ok(match (type_guard(value)?, op) {
        (None, "=") => absent(field),
        (None, "!=") => present(field),
        // Ordering against null matches nothing, as in SQLite.
        (None, _) => "false".to_owned(),
        (Some(guard), _) => {
            let p = b.bind(value.clone());
            format!("({guard}({field}) AND {field} {op} {p})")
        }
    })
}

fn membership(b: &mut Builder, field: &str, values: &[Value]) -> Result<String, StoreError> {
    // One guarded IN per kind of value present, so mixed lists keep the no-cross-type rule.
    let mut groups: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut null = false;
    for value in values {
        match type_guard(value)? {
            None => null = true,
            Some(guard) => match groups.iter_mut().find(|(g, _)| *g == guard) {
                Some((_, group)) => group.push(value.clone()),
                None => groups.push((guard, vec![value.clone()])),
            },
        }
    }
    let mut alternatives = Vec::new();
    if null {
        alternatives.push(absent(field));
    }
    for (guard, group) in groups {
        let marks: Vec<String> = group.into_iter().map(|v| b.bind(v)).collect();
        alternatives.push(format!(
            "({guard}({field}) AND {field} IN ({}))",
            marks.join(", ")
        ));
    }
    Ok(if alternatives.is_empty() {
        "false".to_owned()
    } else {
        format!("({})", alternatives.join(" OR "))
    })
}

pub fn render(
    container: &str,
    partition_key: &str,
    query: &Query,
) -> Result<RenderedQuery, StoreError> {
    if query.limit == 0 {
        return Err(StoreError::InvalidQuery("limit must be at least 1".into()));
    }
    let mut b = Builder {
        parameters: Vec::new(),
    };
    let mut conditions = Vec::new();
    for filter in &query.filters {
        let field = reference(&filter.field);
        conditions.push(match &filter.op {
            FilterOp::Eq(v) => comparison(&mut b, &field, "=", v)?,
            FilterOp::Ne(v) => comparison(&mut b, &field, "!=", v)?,
            FilterOp::Lt(v) => comparison(&mut b, &field, "<", v)?,
            FilterOp::Le(v) => comparison(&mut b, &field, "<=", v)?,
            FilterOp::Gt(v) => comparison(&mut b, &field, ">", v)?,
            FilterOp::Ge(v) => comparison(&mut b, &field, ">=", v)?,
            FilterOp::In(values) => membership(&mut b, &field, values)?,
            FilterOp::Defined(true) => present(&field),
            FilterOp::Defined(false) => absent(&field),
        });
    }
    // Keys: the order-by fields, then id in the direction of the last key (a total order).
    let mut keys: Vec<(String, bool)> = query
        .order_by
        .iter()
        .map(|o| (reference(&o.field), o.descending))
        .collect();
    for (key, _) in &keys {
        conditions.push(present(key));
    }
    let id_descending = keys.last().is_some_and(|(_, descending)| *descending);
    keys.push(("c['id']".to_owned(), id_descending));
    let order = keys
        .iter()
        .map(|(key, d)| format!("{key} {}", if *d { "DESC" } else { "ASC" }))
        .collect::<Vec<_>>()
        .join(", ");

    // The fingerprint covers everything but the page position and size (the size may change
    // between pages), plus where the query runs.
    let shape = format!(
        "{} WHERE {} ORDER BY {order}",
        container,
        conditions.join(" AND ")
    );
    let mut hashed: Vec<Vec<u8>> = vec![partition_key.as_bytes().to_vec(), shape.into_bytes()];
    hashed.extend(b.parameters.iter().map(|(_, v)| v.to_string().into_bytes()));
    let fingerprint = format!(
        "{:016x}",
        keyset::fnv1a(&hashed.iter().map(Vec::as_slice).collect::<Vec<_>>())
    );

    if let Some(token) = &query.continuation {
        let (after_keys, after_id) = keyset::decode(token, &fingerprint, keys.len() - 1)?;
        let mut after: Vec<String> = after_keys.into_iter().map(|v| b.bind(v)).collect();
        after.push(b.bind(Value::String(after_id)));
        // (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...: each key in its own direction.
        let mut alternatives = Vec::new();
        for i in 0..keys.len() {
            let mut parts: Vec<String> = keys[..i]
                .iter()
                .zip(&after)
                .map(|((key, _), value)| format!("{key} = {value}"))
                .collect();
            let (key, descending) = &keys[i];
            let op = if *descending { "<" } else { ">" };
            parts.push(format!("{key} {op} {}", after[i]));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        conditions.push(format!("({})", alternatives.join(" OR ")));
    }
    let top = b.bind(Value::from(query.limit.saturating_add(1)));
    let mut sql = format!("SELECT TOP {top} * FROM c");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&order);
    Ok(RenderedQuery {
        sql,
        parameters: b.parameters,
        limit: query.limit,
        order_fields: query.order_by.iter().map(|o| o.field.clone()).collect(),
        fingerprint,
    })
}

/// The value at a field path of a document (for a page's last keys).
pub fn field_value<'a>(doc: &'a Value, field: &Field) -> Option<&'a Value> {
    field
        .segments()
        .try_fold(doc, |value, segment| value.get(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_is_a_parameter() {
        let evil = "x\"); DROP --";
        let query = Query::new(10)
            .filter("status", FilterOp::Eq(json!(evil)))
            .filter("n", FilterOp::In(vec![json!(1), json!(evil), json!(null)]))
            .filter("group", FilterOp::Defined(true))
            .order_by("data.startedAt", true);
        let rendered = render("executions", evil, &query).unwrap();
        assert!(!rendered.sql.contains("DROP"), "{}", rendered.sql);
        assert!(
            rendered.sql.starts_with("SELECT TOP @p"),
            "{}",
            rendered.sql
        );
        assert!(rendered
            .sql
            .contains("c['data']['startedAt'] DESC, c['id'] DESC"));
        for (name, _) in &rendered.parameters {
            assert!(rendered.sql.contains(name.as_str()), "{name} unused");
        }
        assert_eq!(rendered.parameters.len(), 4, "status, two IN values, TOP");
        let nested = Query::new(1).filter("n", FilterOp::Eq(json!({"a": 1})));
        assert!(matches!(
            render("executions", "p", &nested),
            Err(StoreError::InvalidQuery(_))
        ));
    }

    #[test]
    fn fingerprint_depends_on_partition_and_values_not_page_size() {
        let a = Query::new(2).filter("n", FilterOp::Eq(json!(1)));
        let fp = |pk: &str, q: &Query| render("executions", pk, q).unwrap().fingerprint;
        assert_eq!(
            fp("p", &a),
            fp(
                "p",
                &Query {
                    limit: 9,
                    ..a.clone()
                }
            )
        );
        assert_ne!(fp("p", &a), fp("q", &a));
        assert_ne!(
            fp("p", &a),
            fp("p", &Query::new(2).filter("n", FilterOp::Eq(json!(2))))
        );
    }
}
