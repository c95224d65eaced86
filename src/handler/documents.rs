//! The Cosmos trigger's documents out of a host payload, in one pass over the body.
//!
//! The host sends `Data.<binding>` as JSON text inside a JSON string inside the body's JSON (how
//! the Cosmos trigger binding reaches a custom handler): a 100-document batch is ~70 KB in which
//! every quote of a document is `\\\"`. Decoding that with a general JSON parser unescapes it twice
//! and parses it three times. `fast` instead walks the envelope, unescapes both string levels at
//! once while copying (64 bytes at a time with bit masks where the CPU allows, `blocks`; byte by
//! byte around what those do not take), and finds where each document starts and ends on the way,
//! so the documents come out as JSON text (`RawDocument`s) that each function decodes once into
//! its own view.
//! Whatever the fast path does not expect (another encoding depth, escapes other than quote and
//! backslash at the outer levels, a malformed payload) goes to `general`, the tolerant decoder
//! built on `serde_json` values, which gives the same documents or the same error.

mod blocks;

use std::ops::Range;

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::protocol::{self, Invocation, ProtocolError, RetryContext};
use crate::model::RawDocument;

/// A decoded batch: the documents' JSON text and where each one is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    text: String,
    spans: Vec<Range<usize>>,
    pub retry: Option<RetryContext>,
}

impl DecodedBatch {
    pub fn documents(&self) -> Vec<RawDocument<'_>> {
        self.spans
            .iter()
            .map(|span| RawDocument::new(&self.text[span.clone()]))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The documents of binding `binding` and the retry context of a Cosmos-trigger invocation body.
pub fn decode_batch(body: &[u8], binding: &str) -> Result<DecodedBatch, ProtocolError> {
    if let Some(decoded) = fast::decode(body, binding) {
        return Ok(decoded);
    }
    general(body, binding)
}

/// Through `serde_json` values: every tolerated form, and the precise error for the others.
pub fn general(body: &[u8], binding: &str) -> Result<DecodedBatch, ProtocolError> {
    let invocation = Invocation::parse(body)?;
    let documents = protocol::decode_documents(&invocation, binding)?;
    let mut text = String::new();
    let mut spans = Vec::with_capacity(documents.len());
    text.push('[');
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        let start = text.len();
        text.push_str(&document.to_string());
        spans.push(start..text.len());
    }
    text.push(']');
    Ok(DecodedBatch {
        text,
        spans,
        retry: invocation.retry_context(),
    })
}

mod fast {
    use super::*;

    /// `None` whenever anything is not as the host writes it; the caller then takes the
    /// general path, which decides.
    pub(super) fn decode(body: &[u8], binding: &str) -> Option<DecodedBatch> {
        let mut walker = Envelope { body, at: 0 };
        let mut documents = None;
        let mut metadata: Option<Range<usize>> = None;
        let mut seen_data = false;
        walker.object(|walker, key| {
            if key.eq_ignore_ascii_case("data") {
                if seen_data {
                    return None;
                }
                seen_data = true;
                walker.object(|walker, name| {
                    if name == binding {
                        if documents.is_some() {
                            return None;
                        }
                        documents = Some(walker.documents()?);
                        Some(())
                    } else {
                        walker.skip_value()
                    }
                })
            } else if key.eq_ignore_ascii_case("metadata") {
                if metadata.is_some() {
                    return None;
                }
                let start = walker.at;
                walker.skip_value()?;
                metadata = Some(start..walker.at);
                Some(())
            } else {
                walker.skip_value()
            }
        })?;
        walker.whitespace();
        if walker.at != body.len() {
            return None;
        }
        let (text, spans) = documents?;
        let retry = match metadata {
            Some(range) => match serde_json::from_slice::<Value>(&body[range]).ok()? {
                Value::Object(map) => Invocation {
                    data: Map::new(),
                    metadata: map,
                }
                .retry_context(),
                _ => None,
            },
            None => None,
        };
        Some(DecodedBatch { text, spans, retry })
    }

    struct Envelope<'b> {
        body: &'b [u8],
        at: usize,
    }

    impl<'b> Envelope<'b> {
        fn peek(&self) -> Option<u8> {
            self.body.get(self.at).copied()
        }

        fn whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                self.at += 1;
            }
        }

        fn expect(&mut self, byte: u8) -> Option<()> {
            self.whitespace();
            (self.peek()? == byte).then(|| self.at += 1)
        }

        /// A key without escapes (the fast path needs no other).
        fn key(&mut self) -> Option<&'b str> {
            self.expect(b'"')?;
            let start = self.at;
            let length = self.body[start..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            if self.body[start + length] != b'"' {
                return None;
            }
            self.at = start + length + 1;
            std::str::from_utf8(&self.body[start..start + length]).ok()
        }

        /// `{ "key": value, … }`, calling `member` with each key to consume its value.
        fn object(
            &mut self,
            mut member: impl FnMut(&mut Self, &'b str) -> Option<()>,
        ) -> Option<()> {
            self.expect(b'{')?;
            self.whitespace();
            if self.peek()? == b'}' {
                self.at += 1;
                return Some(());
            }
            loop {
                let key = self.key()?;
                self.expect(b':')?;
                self.whitespace();
                member(self, key)?;
                self.whitespace();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }

        /// Any JSON value, checked by `serde_json` (these are small: metadata, other bindings).
        fn skip_value(&mut self) -> Option<()> {
            let mut values = serde_json::Deserializer::from_slice(&self.body[self.at..])
                .into_iter::<IgnoredAny>();
            values.next()?.ok()?;
            self.at += values.byte_offset();
            Some(())
        }

        /// The documents binding: a JSON string holding JSON text of the array (one level), or
        /// of a JSON string holding it (two levels, what the host sends).
        fn documents(&mut self) -> Option<(String, Vec<Range<usize>>)> {
            if self.peek()? != b'"' {
                return None;
            }
            self.at += 1;
            let mut output = Documents::with_capacity(self.body.len() - self.at);
            // What the outer string's text starts with decides the depth.
            let mut at = self.at;
            loop {
                match self.body.get(at..at + 2)? {
                    [b' ', _] => at += 1,
                    [b'\\', b'n' | b'r' | b't'] => at += 2,
                    _ => break,
                }
            }
            self.at = match self.body.get(at..at + 2)? {
                [b'\\', b'"'] => decode_twice(self.body, at + 2, &mut output)?,
                [b'[', _] => decode_once(self.body, at, &mut output)?,
                _ => return None,
            };
            output.finish()
        }
    }

    /// Two levels: `body[at..]` is the outer string's text right after the inner string's
    /// opening quote (`\"`); returns the position after the outer string's closing quote.
    fn decode_twice(body: &[u8], mut at: usize, out: &mut Documents) -> Option<usize> {
        let by_blocks = blocks::available();
        // Past a block the block path could not take, the byte-by-byte one goes on to here.
        let mut bytewise_until = 0;
        loop {
            if by_blocks && at >= bytewise_until {
                // SAFETY: `blocks::available()` said the CPU has what the block path needs.
                at = unsafe { out.blocks(body, at)? };
                bytewise_until = at + blocks::BLOCK;
            }
            at += out.plain(&body[at..])?;
            match body.get(at..at + 2)? {
                // `\\` opens an escape of the inner string: `\\\"` is a quote and `\\\\` a
                // backslash of the documents' text.
                [b'\\', b'\\'] => {
                    match body.get(at + 2..at + 4)? {
                        [b'\\', b'"'] => out.push(b'"')?,
                        [b'\\', b'\\'] => out.push(b'\\')?,
                        _ => return None,
                    }
                    at += 4;
                }
                // `\"`: the inner string's closing quote, so the documents' text ends.
                [b'\\', b'"'] => {
                    at += 2;
                    break;
                }
                _ => return None,
            }
        }
        // Only whitespace may follow the inner string inside the outer one.
        loop {
            match body.get(at..at + 2)? {
                [b'"', _] => return Some(at + 1),
                [b' ', _] => at += 1,
                [b'\\', b'n' | b'r' | b't'] => at += 2,
                _ => return None,
            }
        }
    }

    /// One level: `body[at..]` is the outer string's text, which is the documents' text.
    fn decode_once(body: &[u8], mut at: usize, out: &mut Documents) -> Option<usize> {
        loop {
            at += out.plain(&body[at..])?;
            match body.get(at..at + 2)? {
                [b'\\', b'"'] => out.push(b'"')?,
                [b'\\', b'\\'] => out.push(b'\\')?,
                [b'"', _] => return Some(at + 1),
                _ => return None,
            }
            at += 2;
        }
    }

    /// Where the next document starts in an array.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Expect {
        /// Before the array's `[`.
        Array,
        /// After `[`: a document or `]`.
        FirstItem,
        /// After `,`: a document.
        Item,
        /// After a document: `,` or `]`.
        Separator,
        /// Inside a document.
        Inside,
        /// After the array's `]`.
        End,
    }

    /// The documents' text being written, with just enough of its structure tracked to cut it
    /// into documents: whether we are in a string (and after a backslash in it), the nesting
    /// depth, and what may come next at the array's level. The documents themselves are checked
    /// by the views that decode them.
    pub(super) struct Documents {
        text: Vec<u8>,
        pub(super) spans: Vec<Range<usize>>,
        in_string: bool,
        escaped: bool,
        depth: u32,
        expect: Expect,
        start: usize,
    }

    impl Documents {
        pub(super) fn with_capacity(capacity: usize) -> Self {
            Documents {
                text: Vec::with_capacity(capacity),
                spans: Vec::new(),
                in_string: false,
                escaped: false,
                depth: 0,
                expect: Expect::Array,
                start: 0,
            }
        }

        /// Takes the longest prefix of `input` that holds no quote, backslash or control byte
        /// (of the outer string: those are its escapes and its end) as documents' text, and
        /// returns its length; `None` if that text breaks the documents' structure. An empty
        /// `input` is `Some(0)`: the caller finds the end missing.
        fn plain(&mut self, input: &[u8]) -> Option<usize> {
            let mut length = 0;
            // The byte after a backslash of the documents' text is taken alone (`push` ends the
            // escape).
            if self.in_string && self.escaped {
                match input.first() {
                    Some(&byte) if !is_special(byte) => {
                        self.push(byte)?;
                        length = 1;
                    }
                    _ => return Some(0),
                }
            }
            if self.in_string {
                return Some(length + copy_plain(&mut self.text, &input[length..]));
            }
            let run = length + plain_len(&input[length..]);
            self.structure(&input[length..run])?;
            Some(run)
        }

        /// The two-level text of the documents from `body[at..]` on, a block at a time, for as
        /// long as the blocks hold nothing but plain bytes and the two escapes; returns where
        /// it stopped (a block it cannot take, or less than a block left).
        ///
        /// # Safety
        /// `blocks::available()` must be true.
        // With the feature on here too, the block functions are inlined into this loop.
        #[cfg_attr(target_arch = "x86_64", target_feature(enable = "ssse3,popcnt"))]
        pub(super) unsafe fn blocks(&mut self, body: &[u8], mut at: usize) -> Option<usize> {
            // A block must not start inside an escape, of either level.
            if self.escaped || at == 0 || body[at - 1] == b'\\' {
                return Some(at);
            }
            while let Some(block) = body.get(at..).and_then(|rest| rest.first_chunk()) {
                // SAFETY: the caller's promise.
                let Some(block_text) =
                    blocks::classify(unsafe { blocks::masks(block) }, self.in_string)
                else {
                    break;
                };
                let base = self.text.len();
                // SAFETY: the caller's promise.
                unsafe { blocks::compact(block, block_text.keep, &mut self.text) };
                // Between documents, every byte moves the array's structure; inside one, only
                // its brackets count (to find where it ends).
                let mut unread = base;
                let mut brackets = block_text.brackets;
                while brackets != 0 {
                    let bit = brackets.trailing_zeros();
                    brackets &= brackets - 1;
                    let kept_before = block_text.keep & ((1u64 << bit) - 1);
                    let position = base + kept_before.count_ones() as usize;
                    if self.expect != Expect::Inside {
                        self.between_documents(unread, position)?;
                    }
                    self.structural(block[bit as usize], position)?;
                    unread = position + 1;
                }
                if self.expect != Expect::Inside {
                    self.between_documents(unread, self.text.len())?;
                }
                self.in_string = block_text.in_string;
                at += block_text.length;
            }
            Some(at)
        }

        /// The text at `from..to`, written by the block path, read as the array's structure
        /// (whitespace and separators between documents).
        fn between_documents(&mut self, from: usize, to: usize) -> Option<()> {
            for position in from..to {
                self.structural(self.text[position], position)?;
            }
            Some(())
        }

        /// Bytes of the documents' text outside its strings (never a quote or a backslash:
        /// those come escaped): brackets and commas move the structure, the rest is copied.
        fn structure(&mut self, text: &[u8]) -> Option<()> {
            let base = self.text.len();
            self.text.extend_from_slice(text);
            for (offset, &byte) in text.iter().enumerate() {
                let inside_value =
                    self.expect == Expect::Inside && !matches!(byte, b'{' | b'}' | b'[' | b']');
                if !inside_value {
                    self.structural(byte, base + offset)?;
                }
            }
            Some(())
        }

        /// One byte of the documents' text (from an escape of the outer string).
        fn push(&mut self, byte: u8) -> Option<()> {
            self.text.push(byte);
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                } else if byte < 0x20 {
                    return None;
                }
                return Some(());
            }
            self.structural(byte, self.text.len() - 1)
        }

        /// A byte outside the documents' strings, written at `position` of the text.
        fn structural(&mut self, byte: u8, position: usize) -> Option<()> {
            match byte {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b'[' | b'{' => {
                    match (self.expect, byte) {
                        (Expect::Array, b'[') => self.expect = Expect::FirstItem,
                        (Expect::FirstItem | Expect::Item, b'{') => {
                            self.expect = Expect::Inside;
                            self.start = position;
                        }
                        (Expect::Inside, _) => {}
                        _ => return None,
                    }
                    self.depth += 1;
                }
                b']' | b'}' => {
                    self.depth = self.depth.checked_sub(1)?;
                    match (self.expect, self.depth, byte) {
                        (Expect::Inside, 1, b'}') => {
                            self.spans.push(self.start..position + 1);
                            self.expect = Expect::Separator;
                        }
                        (Expect::Inside, 2.., _) => {}
                        (Expect::FirstItem | Expect::Separator, 0, b']') => {
                            self.expect = Expect::End
                        }
                        _ => return None,
                    }
                }
                b',' if self.expect == Expect::Separator => self.expect = Expect::Item,
                b'"' if self.expect == Expect::Inside => self.in_string = true,
                _ if self.expect == Expect::Inside => {}
                _ => return None,
            }
            Some(())
        }

        fn finish(self) -> Option<(String, Vec<Range<usize>>)> {
            if self.expect != Expect::End {
                return None;
            }
            String::from_utf8(self.text)
                .ok()
                .map(|text| (text, self.spans))
        }
    }

    /// A byte that ends a plain run of the outer string: its escapes, its end, or what it may
    /// not hold raw.
    fn is_special(byte: u8) -> bool {
        matches!(byte, b'"' | b'\\' | 0..=0x1f)
    }

    /// The length of the longest prefix of `input` without a special byte: 16 bytes at a time
    /// where SSE2 is there (every x86_64), then 8 at a time.
    fn plain_len(input: &[u8]) -> usize {
        let mut length = 0;
        #[cfg(target_arch = "x86_64")]
        while let Some(chunk) = input[length..].first_chunk::<16>() {
            let special = special_bytes_16(chunk);
            if special != 0 {
                return length + special.trailing_zeros() as usize;
            }
            length += 16;
        }
        while let Some(word) = input[length..].first_chunk::<8>() {
            let special = special_bytes_8(u64::from_le_bytes(*word));
            if special != 0 {
                // Exact up to the first special byte, which is all that is used.
                return length + (special.trailing_zeros() / 8) as usize;
            }
            length += 8;
        }
        length
            + input[length..]
                .iter()
                .take_while(|&&b| !is_special(b))
                .count()
    }

    /// `plain_len` that also appends the prefix to `text`. Most runs inside the documents'
    /// strings are a few bytes (between escaped quotes), so each word is copied whole and the
    /// copy cut back at the special byte: a fixed-size copy is a store or two, where copying the
    /// exact length would call `memcpy` for every run.
    fn copy_plain(text: &mut Vec<u8>, input: &[u8]) -> usize {
        let mut length = 0;
        #[cfg(target_arch = "x86_64")]
        while let Some(chunk) = input[length..].first_chunk::<16>() {
            text.extend_from_slice(chunk);
            let special = special_bytes_16(chunk);
            if special != 0 {
                let kept = special.trailing_zeros() as usize;
                text.truncate(text.len() - 16 + kept);
                return length + kept;
            }
            length += 16;
        }
        while let Some(word) = input[length..].first_chunk::<8>() {
            text.extend_from_slice(word);
            let special = special_bytes_8(u64::from_le_bytes(*word));
            if special != 0 {
                let kept = (special.trailing_zeros() / 8) as usize;
                text.truncate(text.len() - 8 + kept);
                return length + kept;
            }
            length += 8;
        }
        let rest = plain_len(&input[length..]);
        text.extend_from_slice(&input[length..length + rest]);
        length + rest
    }

    /// The high bit of each byte of `word` (read little-endian) that ends a plain run, as
    /// `is_special`; exact up to the first such byte, which is all the callers use.
    fn special_bytes_8(word: u64) -> u64 {
        has_byte(word, b'"') | has_byte(word, b'\\') | has_below(word, 0x20)
    }

    /// A bit for each byte of `chunk` that ends a plain run (bit `i`: byte `i`), as `is_special`.
    #[cfg(target_arch = "x86_64")]
    fn special_bytes_16(chunk: &[u8; 16]) -> u32 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned load reads exactly the
        // 16 bytes of `chunk`.
        unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
            // Unsigned `byte <= 0x1f`: the byte is its own minimum with 0x1f.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        }
    }

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// High bit set in each byte of `word` equal to `byte` (and possibly above the first match).
    fn has_byte(word: u64, byte: u8) -> u64 {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    }

    /// High bit set in each byte of `word` below `limit` (≤ 0x80; exact up to the first match).
    fn has_below(word: u64, limit: u8) -> u64 {
        word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What the host sends: the array's text, JSON-encoded, JSON-encoded again, in the body.
    fn host_body(documents: &Value, metadata: &Value) -> Vec<u8> {
        let once = Value::String(documents.to_string()).to_string();
        json!({"Data": {"documents": once}, "Metadata": metadata})
            .to_string()
            .into_bytes()
    }

    fn texts(batch: &DecodedBatch) -> Vec<Value> {
        batch
            .documents()
            .iter()
            .map(|d| d.to_value().unwrap())
            .collect()
    }

    #[test]
    fn the_fast_path_reads_the_hosts_encoding_and_agrees_with_the_general_one() {
        let documents = json!([
            {"id": "a", "message": "say \"hi\" \\ \u{e9}\u{1F600}\n\t{[,]}", "n": [1, {"x": null}]},
            {"id": "b", "_etag": "\"0f00\"", "data": {"k": "v\\\"w"}}
        ]);
        let metadata = json!({"RetryContext": {"RetryCount": 2, "MaxRetryCount": 5}});
        let body = host_body(&documents, &metadata);
        let fast = fast::decode(&body, "documents").expect("the fast path takes the host's form");
        assert_eq!(Value::Array(texts(&fast)), documents);
        assert_eq!(fast.retry.unwrap().retry_count, 2);
        let general = general(&body, "documents").unwrap();
        assert_eq!(texts(&general), texts(&fast));
        assert_eq!(general.retry, fast.retry);
    }

    /// A log document as the engine writes it, with the system properties Cosmos adds.
    fn log_document(sequence: usize) -> Value {
        json!({
            "id": format!("log-0b5e7c1e-8d1c-4a0e-9f1b-2f4c9d1e7a10-{sequence:08}"),
            "executionId": "0b5e7c1e-8d1c-4a0e-9f1b-2f4c9d1e7a10", "type": "log",
            "timestamp": "2025-04-09T04:46:10.723203Z", "level": "info",
            "message": format!("step {sequence}: processed 3 records for \"user {sequence}\""),
            "data": {"step": sequence, "records": [3, {"deep": null}]}, "sequence": sequence,
            "_etag": "\"0000d2a5-0000-0800-0000-67f5fb920000\"", "_ts": 1744173970,
        })
    }

    #[test]
    fn the_hosts_documents_go_through_by_blocks_up_to_their_end() {
        if !blocks::available() {
            return;
        }
        let documents: Vec<Value> = (0..20).map(log_document).collect();
        let body = host_body(&Value::Array(documents.clone()), &json!({}));
        let text = String::from_utf8(body.clone()).unwrap();
        // Right after the inner string's opening `\"`.
        let start = text.find(r#""\"["#).unwrap() + 3;
        let mut out = fast::Documents::with_capacity(body.len());
        // SAFETY: `blocks::available()` is true.
        let stopped = unsafe { out.blocks(&body, start) }.unwrap();
        // Only the block holding the strings' ends is left to the byte-by-byte path.
        assert!(
            stopped + 2 * blocks::BLOCK > body.len(),
            "stopped at {stopped} of {}",
            body.len()
        );
        assert_eq!(
            out.spans.len(),
            19,
            "every document but the last is cut by then"
        );
        let fast = fast::decode(&body, "documents").unwrap();
        assert_eq!(texts(&fast), documents);
    }

    #[test]
    fn spaces_between_documents_are_read_as_the_general_path_reads_them() {
        let documents: Vec<Value> = (0..6).map(log_document).collect();
        let items: Vec<String> = documents.iter().map(Value::to_string).collect();
        for separator in [" , ", ",   ", "   ,", " ,  , "] {
            let array = format!("  [ {} ]  ", items.join(separator));
            let once = Value::String(array).to_string();
            let body = json!({"Data": {"documents": once}})
                .to_string()
                .into_bytes();
            let ours = decode_batch(&body, "documents").map(|b| texts(&b));
            let reference = general(&body, "documents").map(|b| texts(&b));
            match separator {
                " ,  , " => assert!(ours.is_err() && reference.is_err(), "{ours:?}"),
                _ => {
                    assert_eq!(ours.unwrap(), documents);
                    assert!(fast::decode(&body, "documents").is_some());
                    assert_eq!(reference.unwrap(), documents);
                }
            }
        }
    }

    #[test]
    fn other_depths_and_forms_are_decoded_too() {
        let documents = json!([{"id": "a"}, {"id": "b", "v": [1, 2]}]);
        let one_level = json!({"Data": {"documents": documents.to_string()}})
            .to_string()
            .into_bytes();
        assert!(fast::decode(&one_level, "documents").is_some());
        let array = json!({"Data": {"documents": documents}})
            .to_string()
            .into_bytes();
        let three = Value::String(Value::String(documents.to_string()).to_string()).to_string();
        let three_levels = json!({"data": {"documents": three}})
            .to_string()
            .into_bytes();
        let pretty =
            json!({"Data": {"documents": serde_json::to_string_pretty(&documents).unwrap()}})
                .to_string()
                .into_bytes();
        for body in [one_level, array, three_levels, pretty] {
            let batch = decode_batch(&body, "documents").unwrap();
            assert_eq!(Value::Array(texts(&batch)), documents);
            assert_eq!(batch.retry, None);
        }
        let empty = host_body(&json!([]), &json!({}));
        assert!(decode_batch(&empty, "documents").unwrap().is_empty());
    }

    #[test]
    fn malformed_payloads_get_the_general_paths_errors() {
        for (body, needle) in [
            (&b"{not json"[..], "not valid JSON"),
            (b"[1,2,3]", "JSON object"),
            (br#"{"Data":5}"#, "\"Data\" must be"),
            (br#"{"Data":{}}"#, "missing input binding"),
            (br#"{"Data":{"documents":5}}"#, "got a number"),
            (br#"{"Data":{"documents":"[1,2]"}}"#, "item 0 is a number"),
            (br#"{"Data":{"documents":"\"oops"}}"#, "in string starting"),
            (
                br#"{"Data":{"documents":"\"[{}]\""}} trailing"#,
                "not valid JSON",
            ),
            (
                br#"{"Data":{"documents":"\"[{},]\""}}"#,
                "in string starting",
            ),
        ] {
            let error = decode_batch(body, "documents").unwrap_err().to_string();
            assert!(
                error.contains(needle),
                "{}: {error}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("\"".to_owned()),
                Just("\\".to_owned()),
                Just("\n".to_owned()),
                Just("{[,:]}".to_owned()),
                Just("\u{e9}\u{2028}\u{1F600}".to_owned()),
                "[a-z ]{0,12}",
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    fn document_strategy() -> impl Strategy<Value = Value> {
        (
            text_strategy(),
            text_strategy(),
            any::<i64>(),
            any::<bool>(),
        )
            .prop_map(|(id, message, n, nested)| {
                let data = if nested {
                    json!({"deep": [message.clone(), {"n": n}], "e": {}})
                } else {
                    Value::Null
                };
                json!({"id": id, "message": message, "n": n, "data": data, "list": []})
            })
    }

    proptest! {
        /// Whatever the documents hold, the fast path gives exactly their text's documents,
        /// and the same as the general path.
        #[test]
        fn fast_and_general_agree(documents in prop::collection::vec(document_strategy(), 0..6)) {
            let array = Value::Array(documents);
            let body = host_body(&array, &json!({"sys": {"MethodName": "LogStream"}}));
            let fast = fast::decode(&body, "documents");
            prop_assert!(fast.is_some());
            let fast = fast.unwrap();
            prop_assert_eq!(Value::Array(texts(&fast)), array);
            prop_assert_eq!(texts(&general(&body, "documents").unwrap()), texts(&fast));
        }

        /// Any change to a valid body either decodes to the general path's documents or fails
        /// with its error: the fast path never accepts what the general path refuses.
        #[test]
        fn corrupted_bodies_decode_as_the_general_path_decides(
            documents in prop::collection::vec(document_strategy(), 1..4),
            position in any::<prop::sample::Index>(),
            byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b','), Just(b']'), Just(b'x')],
        ) {
            let mut body = host_body(&Value::Array(documents), &json!({}));
            let at = position.index(body.len());
            body[at] = byte;
            let ours = decode_batch(&body, "documents").map_err(|e| e.to_string());
            let reference = general(&body, "documents").map(|b| texts(&b)).map_err(|e| e.to_string());
            match (ours, reference) {
                (Ok(batch), Ok(reference)) => prop_assert_eq!(texts(&batch), reference),
                // The fast path cuts documents without reading inside them: one that is not JSON
                // makes the views refuse the batch (it is dead-lettered as unreadable).
                (Ok(batch), Err(_)) => prop_assert!(
                    batch.documents().iter().any(|d| d.to_value().is_err()),
                    "accepted a body the general path refuses"
                ),
                (Err(ours), Err(reference)) => prop_assert_eq!(ours, reference),
                (Err(ours), Ok(_)) => prop_assert!(false, "refused a body the general path reads: {}", ours),
            }
        }
    }
}
