//! `Scope`: the partition key of `executions` and `entities`: `GLOBAL` or `org-{uuid}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Org(Uuid),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid scope {0:?}: expected \"GLOBAL\" or \"org-<uuid>\"")]
pub struct ScopeError(pub String);

impl Scope {
    pub const GLOBAL: &'static str = "GLOBAL";

    /// Strict parse of the stored form.
    pub fn parse(input: &str) -> Result<Self, ScopeError> {
        let fail = || ScopeError(input.chars().take(80).collect());
        if input == Self::GLOBAL {
            return Ok(Scope::Global);
        }
        let raw = input.strip_prefix("org-").ok_or_else(fail)?;
        // Only the hyphenated form: `Uuid::parse_str` would also take braces and `urn:` prefixes.
        if raw.len() != 36 {
            return Err(fail());
        }
        Uuid::parse_str(raw).map(Scope::Org).map_err(|_| fail())
    }

    /// The legacy org id (`X-Organization-Id`, Table Storage partition keys): a raw uuid or `GLOBAL`.
    pub fn from_legacy_org_id(input: &str) -> Result<Self, ScopeError> {
        if input.eq_ignore_ascii_case(Self::GLOBAL) {
            return Ok(Scope::Global);
        }
        if input.len() == 36 {
            if let Ok(id) = Uuid::parse_str(input) {
                return Ok(Scope::Org(id));
            }
        }
        Scope::parse(input)
    }

    /// The legacy `orgId` the API returns: raw uuid, or `GLOBAL`.
    pub fn legacy_org_id(&self) -> String {
        match self {
            Scope::Global => Self::GLOBAL.to_owned(),
            Scope::Org(id) => id.to_string(),
        }
    }

    pub fn is_global(&self) -> bool {
        matches!(self, Scope::Global)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str(Self::GLOBAL),
            Scope::Org(id) => write!(f, "org-{}", id.hyphenated()),
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl schemars::JsonSchema for Scope {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scope".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(GLOBAL|org-[0-9a-fA-F-]{36})$",
            "description": "GLOBAL or org-{uuid}",
        })
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Scope::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_global_and_org_uuid() {
        assert_eq!(Scope::parse("GLOBAL").unwrap(), Scope::Global);
        let s = Scope::parse("org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01").unwrap();
        assert_eq!(s.to_string(), "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
        assert_eq!(s.legacy_org_id(), "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
    }

    #[test]
    fn uppercase_uuid_normalizes_to_lowercase() {
        let s = Scope::parse("org-0F4A6F6C-1111-4C2E-9A57-3D2B8F1F0A01").unwrap();
        assert_eq!(s.to_string(), "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "global",
            "org-",
            "org-123",
            "0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01",
            "org-{0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01}",
            "org-0f4a6f6c11114c2e9a573d2b8f1f0a01",
            "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01 ",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn legacy_org_ids_map_both_ways() {
        assert_eq!(Scope::from_legacy_org_id("GLOBAL").unwrap(), Scope::Global);
        let s = Scope::from_legacy_org_id("0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01").unwrap();
        assert_eq!(s.to_string(), "org-0f4a6f6c-1111-4c2e-9a57-3d2b8f1f0a01");
        assert!(Scope::from_legacy_org_id("acme").is_err());
    }
}
