//! Reading one OpenAI-style stream event (`chat.completion.chunk` or a text completion chunk) in a
//! single typed pass: how much text it carried, its usage, whether it is the usage-only chunk, and
//! an in-band error. Text is measured, never copied: the string visitor only takes lengths.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;
use tollgate_domain::Usage;

use super::wire::RawUsage;

/// What one event carried.
#[derive(Debug, Default, PartialEq)]
pub struct ChunkSummary {
    /// Bytes of generated text: content, reasoning, refusals, completion text and tool-call
    /// arguments (the decoded strings, escapes counted once).
    pub text_bytes: usize,
    pub usage: Option<Usage>,
    /// No choices at all, or an empty list (the usage-only chunk `include_usage` adds).
    pub no_choices: bool,
    /// An in-band `{"error": …}` event: (message, status code if the upstream gave one).
    pub error: Option<(String, Option<u16>)>,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("the event is not valid UTF-8")]
    NotUtf8,
    #[error("the event is not a JSON chunk: {0}")]
    Json(#[from] serde_json::Error),
}

/// Reads the `data` payloads of one stream's events. Anything that is not a JSON object of this
/// shape is an error: the stream is then failed rather than passed on unread.
#[derive(Default)]
pub struct ChunkReader {
    /// The leading fields of the event read last, which the next is likely to repeat.
    prefix: Vec<u8>,
    /// Events in a row the scanner left to serde.
    misses: u8,
}

/// Past this many events in a row that the scanner left to serde (an upstream that puts usage
/// or tool calls in every event), the rest of the stream goes to serde without a scan first.
const MISSES_TO_GIVE_UP: u8 = 4;

impl ChunkReader {
    /// `data` need not be UTF-8: the scanner checks what it reads, and an event it leaves to
    /// serde is checked whole first (serde would pass over bytes that are not UTF-8 in a string
    /// it skips).
    pub fn read(&mut self, data: &[u8]) -> Result<ChunkSummary, ChunkError> {
        if self.misses < MISSES_TO_GIVE_UP {
            if let Some(summary) = super::chunk_scan::scan(data, &mut self.prefix) {
                self.misses = 0;
                return Ok(summary);
            }
            self.misses += 1;
        }
        let text = std::str::from_utf8(data).map_err(|_| ChunkError::NotUtf8)?;
        Ok(read_chunk_typed(text)?)
    }
}

/// One event read on its own.
#[cfg(test)]
pub fn read_chunk(data: &str) -> Result<ChunkSummary, ChunkError> {
    ChunkReader::default().read(data.as_bytes())
}

/// An event read by one typed serde pass: what the scanner leaves, and the scanner's reference.
pub(super) fn read_chunk_typed(data: &str) -> Result<ChunkSummary, serde_json::Error> {
    let chunk: Chunk = serde_json::from_str(data)?;
    let mut text_bytes = 0;
    let no_choices = chunk.choices.as_ref().is_none_or(Vec::is_empty);
    for choice in chunk.choices.unwrap_or_default() {
        text_bytes += choice.text.0;
        for part in [choice.delta, choice.message].into_iter().flatten() {
            text_bytes += part.content.0 + part.reasoning_content.0 + part.refusal.0;
            if let Some(f) = part.function_call {
                text_bytes += f.arguments.0 + f.name.0;
            }
            for call in part.tool_calls.unwrap_or_default() {
                if let Some(f) = call.function {
                    text_bytes += f.arguments.0 + f.name.0;
                }
            }
        }
    }
    Ok(ChunkSummary {
        text_bytes,
        usage: chunk.usage.map(RawUsage::into_usage),
        no_choices,
        error: chunk.error.and_then(error_of),
    })
}

fn error_of(v: serde_json::Value) -> Option<(String, Option<u16>)> {
    match v {
        serde_json::Value::Object(o) => {
            let message = o
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("upstream error")
                .to_string();
            let code = o
                .get("code")
                .and_then(|c| {
                    c.as_u64()
                        .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
                })
                .and_then(|c| u16::try_from(c).ok());
            Some((message, code))
        }
        serde_json::Value::String(message) => Some((message, None)),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Part>,
    /// Some servers stream whole messages instead of deltas.
    #[serde(default)]
    message: Option<Part>,
    /// Text completions (`/v1/completions`).
    #[serde(default)]
    text: TextLen,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    content: TextLen,
    #[serde(default)]
    reasoning_content: TextLen,
    #[serde(default)]
    refusal: TextLen,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    function_call: Option<Function>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    #[serde(default)]
    name: TextLen,
    #[serde(default)]
    arguments: TextLen,
}

/// The length in bytes of a string value; 0 for null. Content given as an array of parts
/// (`[{"type":"text","text":…}]`) counts its `text` strings.
#[derive(Default)]
struct TextLen(usize);

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextLenVisitor)
    }
}

struct TextLenVisitor;

impl<'de> Visitor<'de> for TextLenVisitor {
    type Value = TextLen;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, null, or a list of content parts")
    }

    fn visit_str<E>(self, v: &str) -> Result<TextLen, E> {
        Ok(TextLen(v.len()))
    }

    fn visit_unit<E>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_none<E>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TextLen, A::Error> {
        #[derive(Deserialize)]
        struct ContentPart {
            #[serde(default)]
            text: TextLen,
        }
        let mut total = 0;
        while let Some(part) = seq.next_element::<ContentPart>()? {
            total += part.text.0;
        }
        Ok(TextLen(total))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TextLen, A::Error> {
        // An object where text was expected carries no text we know how to measure.
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(TextLen(0))
    }

    fn visit_bool<E>(self, _: bool) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_i64<E>(self, _: i64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_u64<E>(self, _: u64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_f64<E>(self, _: f64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_text_whatever_the_spacing() {
        let tight = read_chunk(r#"{"choices":[{"delta":{"content":"he\"llo"}}]}"#).unwrap();
        let spaced = read_chunk(
            "{\"choices\": [ {\"index\": 0, \"delta\" : {\"content\":  \"he\\\"llo\"}} ] }",
        )
        .unwrap();
        assert_eq!(tight.text_bytes, 6);
        assert_eq!(spaced.text_bytes, 6);
        let pretty = read_chunk("{\n  \"choices\": [\n    {\n      \"delta\": {\n        \"content\": \"abc\"\n      }\n    }\n  ]\n}").unwrap();
        assert_eq!(pretty.text_bytes, 3);
    }

    #[test]
    fn counts_every_kind_of_generated_text() {
        let c = read_chunk(
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think","tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}},{"text":"xy"}]}"#,
        )
        .unwrap();
        assert_eq!(c.text_bytes, 5 + 1 + 7 + 2);
        let parts =
            read_chunk(r#"{"choices":[{"delta":{"content":[{"type":"text","text":"abcd"}]}}]}"#)
                .unwrap();
        assert_eq!(parts.text_bytes, 4);
        let role_only = read_chunk(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#).unwrap();
        assert_eq!(role_only.text_bytes, 0);
        assert!(!role_only.no_choices);
    }

    #[test]
    fn reads_usage_and_the_usage_only_chunk() {
        let c = read_chunk(
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3, "completion_tokens": 5}}"#,
        )
        .unwrap();
        assert!(c.no_choices);
        assert_eq!(
            c.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((3, 5))
        );
        let with_choice =
            read_chunk(r#"{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}"#).unwrap();
        assert!(!with_choice.no_choices);
        assert!(read_chunk(r#"{"choices":[{"delta":{}}],"usage":null}"#)
            .unwrap()
            .usage
            .is_none());
    }

    #[test]
    fn reads_in_band_errors() {
        let c = read_chunk(r#"{"error": {"message": "overloaded", "code": "503"}}"#).unwrap();
        assert_eq!(c.error, Some(("overloaded".to_string(), Some(503))));
        let s = read_chunk(r#"{"error":"boom"}"#).unwrap();
        assert_eq!(s.error, Some(("boom".to_string(), None)));
    }

    #[test]
    fn a_stream_the_scanner_cannot_read_goes_to_serde_alone() {
        let common = r#"{"id":"c","choices":[{"delta":{"content":"ab"}}]}"#;
        let with_usage =
            r#"{"id":"c","choices":[{"delta":{"content":"ab"}}],"usage":{"prompt_tokens":1}}"#;
        let mut reader = ChunkReader::default();
        // Misses in a row short of the limit: the scanner keeps being tried.
        for _ in 0..MISSES_TO_GIVE_UP - 1 {
            assert!(reader.read(with_usage.as_bytes()).unwrap().usage.is_some());
        }
        assert_eq!(reader.read(common.as_bytes()).unwrap().text_bytes, 2);
        assert_eq!(reader.misses, 0);
        for _ in 0..MISSES_TO_GIVE_UP {
            reader.read(with_usage.as_bytes()).unwrap();
        }
        // Given up: every event is still read, by serde.
        assert_eq!(reader.misses, MISSES_TO_GIVE_UP);
        assert_eq!(reader.read(common.as_bytes()).unwrap().text_bytes, 2);
        assert_eq!(reader.misses, MISSES_TO_GIVE_UP);
        assert!(reader.read(b"{not json").is_err());
    }

    #[test]
    fn refuses_what_is_not_a_chunk() {
        for bad in [
            "{not json",
            "",
            "[1,2]",
            "42",
            "\"text\"",
            r#"{"choices":"x"}"#,
        ] {
            assert!(read_chunk(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
