//! Partial updates (Cosmos "patch"): a few field operations applied to a stored document in
//! one atomic step. On Cosmos this is one server-side PATCH, which sends only the changed
//! fields and costs fewer RUs than a read plus a replace; on SQLite `apply` runs inside the
//! write transaction. (The trait's default patch, read + conditional replace, is in `contract`.)

use serde_json::Value;

use super::containers::Container;
use super::error::StoreError;
use super::query::Field;

#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Sets the field, creating it if absent (its parent object must exist).
    Set(Field, Value),
    /// Adds to an existing numeric field. (Real Cosmos would create a missing one; the SDK's
    /// emulator refuses, so the contract requires the field, and every backend refuses.)
    Increment(Field, i64),
    /// Removes the field, which must exist.
    Remove(Field),
}

impl PatchOp {
    pub fn field(&self) -> &Field {
        match self {
            PatchOp::Set(field, _) | PatchOp::Increment(field, _) | PatchOp::Remove(field) => field,
        }
    }

    /// The JSON pointer Cosmos expects: `data.kind` → `/data/kind`.
    pub fn pointer(&self) -> String {
        self.field().segments().map(|s| format!("/{s}")).collect()
    }
}

/// Refuses patches Cosmos refuses: none at all, more than 10 operations (one server-side
/// PATCH), touching `id`, the partition key or a system property.
pub fn check(container: Container, ops: &[PatchOp]) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidDocument {
        container: container.name(),
        reason,
    };
    if ops.is_empty() || ops.len() > 10 {
        return Err(invalid(format!(
            "a patch has 1 to 10 operations, not {}",
            ops.len()
        )));
    }
    for op in ops {
        let first = op.field().segments().next().unwrap_or_default();
        if first == "id" || first == container.partition_key_field() || first.starts_with('_') {
            return Err(invalid(format!("a patch cannot change {first:?}")));
        }
    }
    Ok(())
}

/// Applies the operations to a document body (without system properties), all or nothing.
pub fn apply(container: Container, doc: &mut Value, ops: &[PatchOp]) -> Result<(), StoreError> {
    check(container, ops)?;
    let invalid = |reason: String| StoreError::InvalidDocument {
        container: container.name(),
        reason,
    };
    let mut patched = doc.clone();
    for op in ops {
        let segments: Vec<&str> = op.field().segments().collect();
        let (last, parents) = segments
            .split_last()
            .ok_or_else(|| invalid("empty patch path".into()))?;
        let mut parent = &mut patched;
        for segment in parents {
            parent = parent
                .get_mut(*segment)
                .ok_or_else(|| invalid(format!("{} has no parent object", op.pointer())))?;
        }
        let Value::Object(parent) = parent else {
            return Err(invalid(format!(
                "the parent of {} is not an object",
                op.pointer()
            )));
        };
        match op {
            PatchOp::Set(_, value) => {
                parent.insert((*last).to_owned(), value.clone());
            }
            PatchOp::Increment(_, by) => {
                let next = match parent.get(*last) {
                    None => return Err(invalid(format!("{} does not exist", op.pointer()))),
                    Some(Value::Number(n)) => {
                        match n.as_i64() {
                            Some(i) => Value::from(i.checked_add(*by).ok_or_else(|| {
                                invalid(format!("{} would overflow", op.pointer()))
                            })?),
                            None => Value::from(n.as_f64().unwrap_or_default() + *by as f64),
                        }
                    }
                    Some(_) => return Err(invalid(format!("{} is not a number", op.pointer()))),
                };
                parent.insert((*last).to_owned(), next);
            }
            PatchOp::Remove(_) => {
                parent
                    .remove(*last)
                    .ok_or_else(|| invalid(format!("{} does not exist", op.pointer())))?;
            }
        }
    }
    *doc = patched;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(path: &str) -> Field {
        Field::new(path).unwrap()
    }

    #[test]
    fn operations_apply_all_or_nothing() {
        let c = Container::Entities;
        let mut doc = json!({"id": "m", "scope": "GLOBAL", "n": 1, "data": {"k": "v"}});
        apply(
            c,
            &mut doc,
            &[
                PatchOp::Increment(field("n"), 4),
                PatchOp::Set(field("data.k"), json!("w")),
                PatchOp::Remove(field("data.k")),
                PatchOp::Set(field("data.x"), json!(true)),
            ],
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"id": "m", "scope": "GLOBAL", "n": 5, "data": {"x": true}})
        );
        let before = doc.clone();
        for bad in [
            vec![
                PatchOp::Set(field("n"), json!(0)),
                PatchOp::Remove(field("missing")),
            ],
            vec![PatchOp::Increment(field("data"), 1)],
            vec![PatchOp::Increment(field("absent"), 1)],
            vec![PatchOp::Set(field("nope.deeper"), json!(1))],
            vec![PatchOp::Set(field("scope"), json!("other"))],
            vec![PatchOp::Set(field("id"), json!("other"))],
            vec![],
        ] {
            assert!(apply(c, &mut doc, &bad).is_err(), "{bad:?}");
            assert_eq!(doc, before, "{bad:?} changed the document");
        }
        assert_eq!(PatchOp::Remove(field("data.x")).pointer(), "/data/x");
    }
}
