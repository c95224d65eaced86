//! A document as JSON text, the way a change feed delivers it: each change-feed function decodes
//! it straight into the typed view it reads, so no intermediate tree is ever built for it.

use serde::Deserialize;
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

/// Whether a decoding error means the text is not JSON at all (rather than JSON of another shape).
pub fn is_syntax_error(error: &serde_json::Error) -> bool {
    matches!(
        error.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    )
}
