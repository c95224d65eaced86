//! A document as JSON text, the way a change feed delivers it: each change-feed function decodes
//! it straight into the typed view it reads, so no intermediate tree is ever built for it.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// The JSON text of one delivered document (an object). Its syntax is checked when it is
/// decoded: a decoder that meets broken JSON reports a syntax error (see `is_syntax_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawDocument<'a>(&'a str);

impl<'a> RawDocument<'a> {
    pub fn new(json: &'a str) -> Self {
        RawDocument(json)
    }

    pub fn json(&self) -> &'a str {
        self.0
    }

    /// The document as `T`, borrowing strings from the text where they need no unescaping.
    pub fn decode<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0)
    }

    /// The whole document as a tree (dead letters and other cold paths).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.0)
    }
}

/// A JSON string member kept as the text it was delivered as, quotes and escapes included: a
/// function that only passes the string on copies that text into its own JSON (no unescaping,
/// no escaping again, no allocation), and unescapes it only where it reads the content.
#[derive(Debug, Clone, Copy)]
pub struct JsonString<'a>(&'a RawValue);

impl PartialEq for JsonString<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl<'a> JsonString<'a> {
    /// The string's content: borrowed from the text when it holds no escape. A string Rust
    /// cannot hold (a lone surrogate escape such as `\ud800`, which JSON allows) reads as empty:
    /// its text is still sent on as delivered, and the content is only compared with names
    /// (levels, skip reasons) that such a string can never be.
    pub fn unescaped(&self) -> Cow<'a, str> {
        let text = self.0.get();
        // The text is a JSON string (checked when it was read), so it is quoted.
        let inner = &text[1..text.len() - 1];
        if inner.contains('\\') {
            Cow::Owned(serde_json::from_str(text).unwrap_or_default())
        } else {
            Cow::Borrowed(inner)
        }
    }

    /// The string as JSON text, quotes included.
    pub fn json(&self) -> &'a str {
        self.0.get()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonString<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(deserializer)?;
        if raw.get().starts_with('"') {
            Ok(JsonString(raw))
        } else {
            // What `serde_json` says of a non-string where a string belongs.
            Err(serde::de::Error::custom(
                serde_json::from_str::<String>(raw.get())
                    .err()
                    .map(|e| {
                        e.to_string()
                            .split(" at line")
                            .next()
                            .unwrap_or_default()
                            .to_owned()
                    })
                    .unwrap_or_else(|| "expected a string".to_owned()),
            ))
        }
    }
}

impl Serialize for JsonString<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Whether a decoding error means the text is not JSON at all (rather than JSON of another shape).
pub fn is_syntax_error(error: &serde_json::Error) -> bool {
    matches!(
        error.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        message: JsonString<'a>,
    }

    #[test]
    fn a_json_string_is_sent_on_as_delivered_and_read_unescaped() {
        let text = r#"{"message": "say \"hi\" \u00e9\n"}"#;
        let line: Line = serde_json::from_str(text).unwrap();
        assert_eq!(line.message.json(), r#""say \"hi\" \u00e9\n""#);
        assert_eq!(line.message.unescaped(), "say \"hi\" \u{e9}\n");
        assert_eq!(
            serde_json::to_string(&line.message).unwrap(),
            line.message.json()
        );

        let plain: Line = serde_json::from_str(r#"{"message":"plain"}"#).unwrap();
        assert!(matches!(plain.message.unescaped(), Cow::Borrowed("plain")));
    }

    #[test]
    fn a_lone_surrogate_is_sent_on_as_delivered_and_reads_as_empty() {
        let line: Line = serde_json::from_str(r#"{"message": "\ud800"}"#).unwrap();
        assert_eq!(line.message.json(), r#""\ud800""#);
        assert_eq!(line.message.unescaped(), "");
    }

    #[test]
    fn a_member_of_another_type_is_refused_like_serde_refuses_it() {
        for (text, expected) in [
            (
                r#"{"message": 5}"#,
                "invalid type: integer `5`, expected a string",
            ),
            (
                r#"{"message": null}"#,
                "invalid type: null, expected a string",
            ),
            (
                r#"{"message": {"a": 1}}"#,
                "invalid type: map, expected a string",
            ),
        ] {
            let error = serde_json::from_str::<Line>(text).err().unwrap();
            assert!(!is_syntax_error(&error), "{text}");
            assert!(error.to_string().starts_with(expected), "{text}: {error}");
        }
    }
}
