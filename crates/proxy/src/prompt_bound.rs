//! An upper bound on a prompt's tokens, read straight from the request's JSON: every BPE
//! tokenizer emits at most one token per byte, and the JSON around the text stands in for the
//! chat template's own tokens. Images, audio and files count by a fixed bound instead of their
//! (base64) bytes. The JSON is walked without building a `serde_json::Value`, which would
//! allocate every string of the prompt once more on each call.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::body::RawBody;

/// Tokens counted for an image, audio or file part of a prompt: above what providers bill for
/// one (OpenAI's largest high-detail image is ~1.1k tokens, Anthropic's ~1.6k).
const MEDIA_PART_TOKENS: u64 = 3_000;

/// The request fields that reach the model as prompt.
const PROMPT_FIELDS: &[&str] = &[
    "messages",
    "prompt",
    "input",
    "system",
    "tools",
    "functions",
    "response_format",
];

pub(crate) fn prompt_token_bound(body: &RawBody) -> u64 {
    PROMPT_FIELDS
        .iter()
        .filter_map(|field| body.get(field))
        .map(|raw| {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            match Walk.deserialize(&mut de) {
                Ok(b) => b.tokens,
                Err(_) => raw.get().len() as u64,
            }
        })
        .sum()
}

/// One JSON value's bound, and whether it is a string naming a media part type (which makes
/// the object it is the `type` of a media part).
struct Bound {
    tokens: u64,
    names_media: bool,
}

impl Bound {
    fn plain(tokens: u64) -> Bound {
        Bound {
            tokens,
            names_media: false,
        }
    }
}

fn is_media_type(t: &str) -> bool {
    matches!(
        t,
        "image_url" | "input_image" | "image" | "input_audio" | "file" | "document"
    )
}

fn digits(mut n: u64) -> u64 {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[derive(Clone, Copy)]
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Bound;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Bound, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Bound;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bound, E> {
        Ok(Bound::plain(if v { 4 } else { 5 }))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bound, E> {
        Ok(Bound::plain(digits(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bound, E> {
        Ok(Bound::plain(digits(v.unsigned_abs()) + u64::from(v < 0)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Bound, E> {
        // The longest shortest-round-trip form of an f64 (`-2.2250738585072014e-308`).
        Ok(Bound::plain(24))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bound, E> {
        Ok(Bound {
            tokens: v.len() as u64 + 2,
            names_media: is_media_type(v),
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Bound, E> {
        Ok(Bound::plain(4))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bound, A::Error> {
        let mut tokens = 2u64;
        while let Some(b) = seq.next_element_seed(Walk)? {
            tokens = tokens.saturating_add(b.tokens);
        }
        Ok(Bound::plain(tokens))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bound, A::Error> {
        let mut tokens = 2u64;
        let mut media = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let b = map.next_value_seed(Walk)?;
            media |= key == "type" && b.names_media;
            tokens = tokens.saturating_add(key.len() as u64 + 3 + b.tokens);
        }
        Ok(Bound::plain(if media { MEDIA_PART_TOKENS } else { tokens }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(json: &str) -> u64 {
        prompt_token_bound(&RawBody::parse(json.as_bytes()).unwrap())
    }

    #[test]
    fn the_bound_is_at_least_the_text_and_caps_media() {
        let n = bound(r#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#);
        assert!((11..64).contains(&n), "{n}");
        let img = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}]}}"#,
            "A".repeat(100_000)
        );
        let n = bound(&img);
        assert!(
            n < 4_000,
            "an image counts by its bound, not its bytes: {n}"
        );
        // The media part's type may come after its payload.
        let late = img
            .replace(r#"{"type":"image_url","#, "{")
            .replace(r#""}}]}]}"#, r#""},"type":"image_url"}]}]}"#);
        assert_ne!(late, img);
        assert!(bound(&late) < 4_000);
    }

    #[test]
    fn every_prompt_field_counts_and_escapes_count_as_their_text() {
        let parts = bound(r#"{"messages":[],"tools":[{"name":"weather"}],"system":"be brief"}"#);
        // messages [], tools [{name: "weather"}], system "be brief".
        assert_eq!(parts, 2 + (2 + (2 + (4 + 3 + 9))) + 10);
        // `\u00e9` is six bytes of JSON and two of text: the text is what is counted.
        assert_eq!(bound(r#"{"prompt":"caf\u00e9"}"#), "café".len() as u64 + 2);
        assert_eq!(
            bound(r#"{"input":[1,-20,true,null,1.5]}"#),
            2 + 1 + 3 + 4 + 4 + 24
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_below_the_texts_bytes(texts in prop::collection::vec("\\PC{0,40}", 0..6)) {
                let messages: Vec<serde_json::Value> = texts
                    .iter()
                    .map(|t| serde_json::json!({"role": "user", "content": t}))
                    .collect();
                let body = serde_json::json!({"model": "m", "messages": messages}).to_string();
                let total: usize = texts.iter().map(String::len).sum();
                prop_assert!(bound(&body) >= total as u64);
            }
        }
    }
}
