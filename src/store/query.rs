//! A backend-neutral, parameterized query within one partition.
//!
//! Callers build a `Query` from typed parts; each backend renders it with bound parameters
//! (SQLite: `json_extract` + `?`; Cosmos: `c.field` + `@p0`). Field paths come from code and are
//! validated as identifiers, and values are always bound, so no input ever becomes SQL text.

use serde_json::Value;

use super::error::StoreError;

/// A dotted path of identifiers into a document, e.g. `status` or `data.kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(String);

impl Field {
    pub fn new(path: &str) -> Result<Self, StoreError> {
        let valid = !path.is_empty()
            && path.split('.').all(|part| {
                let mut chars = part.chars();
                matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if valid {
            Ok(Field(path.to_owned()))
        } else {
            Err(StoreError::InvalidQuery(format!(
                "invalid field path {path:?}"
            )))
        }
    }

    pub fn path(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    Eq(Value),
    Ne(Value),
    Lt(Value),
    Le(Value),
    Gt(Value),
    Ge(Value),
    /// Matches when the field equals any of the values (an empty list matches nothing).
    In(Vec<Value>),
    /// `true`: the field is present (and not null); `false`: absent or null.
    Defined(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: Field,
    pub op: FilterOp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub field: Field,
    pub descending: bool,
}

/// All filters are ANDed. Results are ordered by `order_by`, then by `id` in the direction of the
/// last order key (so pages are stable); documents lacking an order-by field are not returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub filters: Vec<Filter>,
    pub order_by: Vec<OrderBy>,
    /// Page size, at least 1.
    pub limit: usize,
    /// Opaque token from a previous `Page`; a token the backend did not issue is `BadContinuation`.
    pub continuation: Option<String>,
}

impl Query {
    pub fn new(limit: usize) -> Self {
        Query {
            filters: Vec::new(),
            order_by: Vec::new(),
            limit,
            continuation: None,
        }
    }

    /// Adds a filter on a code-defined field path. Panics only on an invalid literal path,
    /// which is a programming error caught by the first test that runs the query.
    pub fn filter(mut self, path: &str, op: FilterOp) -> Self {
        self.filters.push(Filter {
            field: Field::new(path).expect("field paths are code constants"),
            op,
        });
        self
    }

    pub fn order_by(mut self, path: &str, descending: bool) -> Self {
        self.order_by.push(OrderBy {
            field: Field::new(path).expect("field paths are code constants"),
            descending,
        });
        self
    }

    pub fn after(mut self, continuation: Option<String>) -> Self {
        self.continuation = continuation;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Documents with their system properties (`_etag`, `_ts`, `_lsn`).
    pub items: Vec<Value>,
    /// Present when more results may follow.
    pub continuation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_are_identifiers_only() {
        assert!(Field::new("status").is_ok());
        assert!(Field::new("data.kind_2").is_ok());
        for bad in [
            "", ".", "a..b", "1a", "a-b", "a'; DROP", "a b", "$.x", "a[0]",
        ] {
            assert!(Field::new(bad).is_err(), "{bad:?}");
        }
    }
}
