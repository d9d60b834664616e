//! JSON Schema (as OpenAI tools and structured outputs carry it) → the OpenAPI subset Gemini
//! accepts in `parameters` and `responseSchema`.
//!
//! Gemini refuses a request whose schema holds a keyword it doesn't know (`additionalProperties`,
//! `$schema`, `$ref`, …), so unknown keywords are dropped, `$ref`s into `$defs`/`definitions`
//! are inlined, and the JSON Schema spellings of nullability and constants are rewritten.

use serde_json::{json, Map, Value};

use crate::providers::translate::{bad_request, TranslateError};

/// Keywords Gemini's Schema knows, copied as they are.
const KEPT: [&str; 17] = [
    "description",
    "title",
    "nullable",
    "enum",
    "required",
    "format",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "default",
    "propertyOrdering",
];

/// How deep a schema may nest once references are inlined; a recursive `$ref` hits it.
const MAX_DEPTH: usize = 32;

pub(super) fn clean_schema(schema: &Value) -> Result<Value, TranslateError> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    clean(schema, defs, 0)
}

fn clean(node: &Value, defs: &Map<String, Value>, depth: usize) -> Result<Value, TranslateError> {
    if depth > MAX_DEPTH {
        return Err(bad_request(
            "a JSON schema nests too deeply for Gemini (a recursive $ref?)",
        ));
    }
    let Value::Object(obj) = node else {
        return Ok(node.clone());
    };
    let mut out = Map::new();
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"))
            .ok_or_else(|| {
                bad_request(format!(
                    "schema reference '{r}' is not supported for Gemini models (only #/$defs/…)"
                ))
            })?;
        let target = defs
            .get(name)
            .ok_or_else(|| bad_request(format!("schema reference '{r}' has no definition")))?;
        if let Value::Object(t) = clean(target, defs, depth + 1)? {
            out = t;
        }
    }
    for (key, value) in obj {
        match key.as_str() {
            "properties" => {
                let props = value
                    .as_object()
                    .ok_or_else(|| bad_request("schema 'properties' must be an object"))?;
                let mut cleaned = Map::with_capacity(props.len());
                for (name, prop) in props {
                    cleaned.insert(name.clone(), clean(prop, defs, depth + 1)?);
                }
                // Gemini refuses an empty properties object.
                if !cleaned.is_empty() {
                    out.insert(key.clone(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert(key.clone(), clean(value, defs, depth + 1)?);
            }
            // Gemini knows anyOf only; for a value matching one of several schemas it's the same.
            "anyOf" | "oneOf" => {
                let alternatives = value
                    .as_array()
                    .ok_or_else(|| bad_request(format!("schema '{key}' must be an array")))?;
                let cleaned = alternatives
                    .iter()
                    .map(|a| clean(a, defs, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("anyOf".into(), Value::Array(cleaned));
            }
            // Pydantic wraps a described reference as allOf:[{$ref}]: merge the parts.
            "allOf" => {
                let parts = value
                    .as_array()
                    .ok_or_else(|| bad_request("schema 'allOf' must be an array"))?;
                for part in parts {
                    if let Value::Object(p) = clean(part, defs, depth + 1)? {
                        for (k, v) in p {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
            }
            "type" => match value {
                // ["string", "null"] is JSON Schema's nullable string.
                Value::Array(types) => {
                    let concrete: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if concrete.len() < types.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                    match concrete.as_slice() {
                        [] => {}
                        [one] => {
                            out.insert("type".into(), (*one).clone());
                        }
                        many => {
                            let alternatives =
                                many.iter().map(|t| json!({"type": t})).collect::<Vec<_>>();
                            out.insert("anyOf".into(), Value::Array(alternatives));
                        }
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), json!([value]));
            }
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            // $schema, $id, $defs, $ref (inlined above), additionalProperties, examples,
            // exclusiveMinimum, patternProperties, strict, ...: unknown to Gemini.
            _ => {}
        }
    }
    // Gemini refuses string formats other than these two (uri, email, uuid, ... are common).
    let string_format_ok = matches!(
        out.get("format").and_then(Value::as_str),
        Some("enum") | Some("date-time")
    );
    if out.get("type").and_then(Value::as_str) == Some("string") && !string_format_ok {
        out.remove("format");
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keywords_dropped_recursively() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "x",
            "type": "object",
            "title": "Query",
            "additionalProperties": false,
            "properties": {
                "q": {"type": "string", "minLength": 1, "examples": ["a"], "format": "email"},
                "when": {"type": "string", "format": "date-time"},
                "n": {"type": "integer", "format": "int64", "exclusiveMinimum": 0, "maximum": 9},
                "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "uniqueItems": true},
                "kind": {"const": "search"},
                "meta": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
            },
            "required": ["q"]
        });
        assert_eq!(
            clean_schema(&schema).unwrap(),
            json!({
                "type": "object",
                "title": "Query",
                "properties": {
                    "q": {"type": "string", "minLength": 1},
                    "when": {"type": "string", "format": "date-time"},
                    "n": {"type": "integer", "format": "int64", "maximum": 9},
                    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
                    "kind": {"enum": ["search"]},
                    "meta": {"type": "object"}
                },
                "required": ["q"]
            })
        );
    }

    #[test]
    fn references_inlined_and_unions_rewritten() {
        // The shape Pydantic writes for nested models.
        let schema = json!({
            "$defs": {
                "Address": {"type": "object", "additionalProperties": false,
                            "properties": {"city": {"type": "string"}}, "required": ["city"]}
            },
            "type": "object",
            "properties": {
                "home": {"$ref": "#/$defs/Address", "description": "Where they live"},
                "work": {"allOf": [{"$ref": "#/$defs/Address"}], "description": "Where they work"},
                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "score": {"type": ["number", "integer", "null"]}
            }
        });
        let address = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let mut home = address.clone();
        home["description"] = json!("Where they live");
        let mut work = address;
        work["description"] = json!("Where they work");
        assert_eq!(
            clean_schema(&schema).unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "home": home,
                    "work": work,
                    "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "score": {"nullable": true, "anyOf": [{"type": "number"}, {"type": "integer"}]}
                }
            })
        );
    }

    #[test]
    fn bad_references_refused() {
        let recursive = json!({
            "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}},
            "$ref": "#/definitions/Node"
        });
        assert!(matches!(
            clean_schema(&recursive),
            Err(TranslateError::BadRequest(m)) if m.contains("recursive")
        ));
        assert!(matches!(
            clean_schema(&json!({"$ref": "#/$defs/Missing"})),
            Err(TranslateError::BadRequest(m)) if m == "schema reference '#/$defs/Missing' has no definition"
        ));
        assert!(matches!(
            clean_schema(&json!({"$ref": "https://example.com/schema.json"})),
            Err(TranslateError::BadRequest(m)) if m.contains("not supported")
        ));
    }
}
