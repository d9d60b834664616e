//! The Response object both the plain answer and the stream's lifecycle events carry: ids, the
//! request settings it echoes, its status and its usage.

use serde_json::{json, Map, Value};
use tollgate_domain::Usage;

/// What a Response repeats from its request (the SDK's `Response` model requires `tools`,
/// `tool_choice` and `parallel_tool_calls`; the rest are shown as OpenAI shows them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestEcho {
    fields: Map<String, Value>,
}

impl RequestEcho {
    /// Reads the echoed settings from a Responses request, defaulting each as OpenAI does.
    /// Run it on a request `to_chat_request` accepted; it does no validation of its own.
    pub(crate) fn from_request(req: &Map<String, Value>) -> Self {
        let given = |key: &str| req.get(key).filter(|v| !v.is_null()).cloned();
        let mut fields = Map::new();
        fields.insert("background".into(), json!(false));
        fields.insert(
            "instructions".into(),
            given("instructions").unwrap_or(Value::Null),
        );
        fields.insert(
            "max_output_tokens".into(),
            given("max_output_tokens").unwrap_or(Value::Null),
        );
        fields.insert(
            "metadata".into(),
            given("metadata").unwrap_or_else(|| json!({})),
        );
        fields.insert(
            "parallel_tool_calls".into(),
            given("parallel_tool_calls").unwrap_or(json!(true)),
        );
        fields.insert("previous_response_id".into(), Value::Null);
        let reasoning = req.get("reasoning");
        let reasoning_field = |key: &str| {
            reasoning
                .and_then(|r| r.get(key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        fields.insert(
            "reasoning".into(),
            json!({"effort": reasoning_field("effort"), "summary": reasoning_field("summary")}),
        );
        // Whatever the caller asked, nothing was kept.
        fields.insert("store".into(), json!(false));
        fields.insert(
            "temperature".into(),
            given("temperature").unwrap_or(Value::Null),
        );
        let mut text = Map::new();
        let format = req
            .get("text")
            .and_then(|t| t.get("format"))
            .filter(|f| !f.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "text"}));
        text.insert("format".into(), format);
        if let Some(v) = req.get("text").and_then(|t| t.get("verbosity")) {
            text.insert("verbosity".into(), v.clone());
        }
        fields.insert("text".into(), Value::Object(text));
        fields.insert(
            "tool_choice".into(),
            given("tool_choice").unwrap_or(json!("auto")),
        );
        fields.insert("tools".into(), given("tools").unwrap_or(json!([])));
        fields.insert("top_p".into(), given("top_p").unwrap_or(Value::Null));
        fields.insert(
            "truncation".into(),
            given("truncation").unwrap_or(json!("disabled")),
        );
        fields.insert("user".into(), given("user").unwrap_or(Value::Null));
        RequestEcho { fields }
    }
}

/// How a Response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    InProgress,
    Completed,
    /// Stopped early; the reason as `incomplete_details.reason` gives it.
    Incomplete(&'static str),
    Failed,
}

impl Status {
    /// Reads a chat `finish_reason`: a cut at the token limit or by the content filter leaves
    /// the Response incomplete, anything else completed it.
    pub(super) fn from_finish_reason(reason: Option<&str>) -> Status {
        match reason {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed => "failed",
        }
    }

    /// The status of the output item the Response ended on.
    pub(super) fn item_status(self) -> &'static str {
        match self {
            Status::Incomplete(_) => "incomplete",
            _ => "completed",
        }
    }
}

/// Everything a Response object is built from besides the request echo.
pub(super) struct Parts<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created_at: i64,
    pub status: Status,
    pub output: Vec<Value>,
    pub usage: Value,
    pub error: Value,
}

pub(super) fn response_object(p: Parts<'_>, echo: &RequestEcho) -> Value {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(p.id));
    obj.insert("object".into(), json!("response"));
    obj.insert("created_at".into(), json!(p.created_at));
    obj.insert("status".into(), json!(p.status.as_str()));
    obj.insert("error".into(), p.error);
    let incomplete = match p.status {
        Status::Incomplete(reason) => json!({"reason": reason}),
        _ => Value::Null,
    };
    obj.insert("incomplete_details".into(), incomplete);
    obj.insert("model".into(), json!(p.model));
    obj.insert("output".into(), Value::Array(p.output));
    obj.insert("usage".into(), p.usage);
    for (k, v) in &echo.fields {
        obj.insert(k.clone(), v.clone());
    }
    Value::Object(obj)
}

/// The Response id for a chat completion id: `chatcmpl-abc` → `resp_abc`. A chat answer
/// without an id gets a fresh one.
pub(crate) fn response_id_for(chat_id: &str) -> String {
    let stem = chat_id
        .strip_prefix("chatcmpl-")
        .or_else(|| chat_id.strip_prefix("chatcmpl_"))
        .unwrap_or(chat_id);
    if stem.is_empty() {
        format!("resp_{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("resp_{stem}")
    }
}

/// Output item ids share the Response id's stem and carry their output index, so they are
/// unique within the Response and stable between the stream's added and done events.
pub(super) fn item_id(response_id: &str, prefix: &str, output_index: usize) -> String {
    let stem = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{stem}_{output_index}")
}

fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// A chat `usage` object in the Responses shape.
pub(super) fn usage_from_chat(u: &Value) -> Value {
    let input = count(u.get("prompt_tokens"));
    let output = count(u.get("completion_tokens"));
    let prompt_details = u.get("prompt_tokens_details");
    let cached = count(prompt_details.and_then(|d| d.get("cached_tokens")));
    // OpenAI-compatible servers name cache writes either way; LiteLLM's is the top-level one.
    let written = prompt_details
        .and_then(|d| d.get("cache_write_tokens"))
        .or_else(|| u.get("cache_creation_input_tokens"));
    let reasoning = count(
        u.get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens")),
    );
    let total = u
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(input.saturating_add(output));
    usage_json(input, cached, count(written), output, reasoning, total)
}

/// The gateway's own counts (an estimate when the upstream reported none) in the Responses
/// shape; reasoning tokens come from the upstream's usage when it gave one.
pub(super) fn usage_from_counts(u: &Usage, chat_usage: Option<&Value>) -> Value {
    let reasoning = count(
        chat_usage
            .and_then(|c| c.get("completion_tokens_details"))
            .and_then(|d| d.get("reasoning_tokens")),
    );
    usage_json(
        u.prompt_tokens,
        u.cache_read_input_tokens,
        u.cache_creation_input_tokens,
        u.completion_tokens,
        reasoning,
        u.total_tokens(),
    )
}

fn usage_json(
    input: u64,
    cached: u64,
    written: u64,
    output: u64,
    reasoning: u64,
    total: u64,
) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn echo_defaults_as_openai_shows_them() {
        let echo = RequestEcho::from_request(&map(json!({"model": "m", "input": "hi"})));
        let obj = response_object(
            Parts {
                id: "resp_1",
                model: "m",
                created_at: 7,
                status: Status::Completed,
                output: vec![],
                usage: Value::Null,
                error: Value::Null,
            },
            &echo,
        );
        assert_eq!(
            obj,
            json!({
                "id": "resp_1", "object": "response", "created_at": 7, "status": "completed",
                "error": null, "incomplete_details": null, "model": "m", "output": [], "usage": null,
                "background": false, "instructions": null, "max_output_tokens": null,
                "metadata": {}, "parallel_tool_calls": true, "previous_response_id": null,
                "reasoning": {"effort": null, "summary": null}, "store": false,
                "temperature": null, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "top_p": null, "truncation": "disabled", "user": null
            })
        );
    }

    #[test]
    fn echo_repeats_the_request_settings() {
        let tools = json!([{"type": "function", "name": "f", "parameters": {}, "strict": true}]);
        let echo = RequestEcho::from_request(&map(json!({
            "model": "m", "input": "hi", "instructions": "be brief", "max_output_tokens": 50,
            "metadata": {"a": "b"}, "parallel_tool_calls": false, "store": true,
            "reasoning": {"effort": "low"}, "temperature": 0.2, "top_p": 0.9,
            "text": {"format": {"type": "json_object"}, "verbosity": "low"},
            "tool_choice": "required", "tools": tools, "user": "u1"
        })));
        let f = &echo.fields;
        assert_eq!(f["instructions"], json!("be brief"));
        assert_eq!(f["max_output_tokens"], json!(50));
        assert_eq!(f["metadata"], json!({"a": "b"}));
        assert_eq!(f["parallel_tool_calls"], json!(false));
        assert_eq!(f["store"], json!(false));
        assert_eq!(f["reasoning"], json!({"effort": "low", "summary": null}));
        assert_eq!(f["temperature"], json!(0.2));
        assert_eq!(f["top_p"], json!(0.9));
        assert_eq!(
            f["text"],
            json!({"format": {"type": "json_object"}, "verbosity": "low"})
        );
        assert_eq!(f["tool_choice"], json!("required"));
        assert_eq!(f["tools"], tools);
        assert_eq!(f["user"], json!("u1"));
    }

    #[test]
    fn ids_follow_the_chat_id() {
        assert_eq!(response_id_for("chatcmpl-abc123"), "resp_abc123");
        assert_eq!(response_id_for("xyz"), "resp_xyz");
        let fresh = response_id_for("");
        assert!(fresh.starts_with("resp_") && fresh.len() > 10, "{fresh}");
        assert_ne!(fresh, response_id_for(""));
        assert_eq!(item_id("resp_abc", "msg", 0), "msg_abc_0");
        assert_eq!(item_id("resp_abc", "fc", 2), "fc_abc_2");
    }

    #[test]
    fn usage_from_chat_carries_cache_and_reasoning_counts() {
        let u = usage_from_chat(&json!({
            "prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 3},
            "cache_creation_input_tokens": 2
        }));
        assert_eq!(
            u,
            json!({
                "input_tokens": 20,
                "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2},
                "output_tokens": 9,
                "output_tokens_details": {"reasoning_tokens": 3},
                "total_tokens": 29
            })
        );
        let bare = usage_from_chat(&json!({"prompt_tokens": 5, "completion_tokens": 1}));
        assert_eq!(bare["total_tokens"], json!(6));
        assert_eq!(bare["input_tokens_details"]["cached_tokens"], json!(0));
    }

    #[test]
    fn usage_from_counts_keeps_upstream_reasoning_tokens() {
        let counts = Usage {
            prompt_tokens: 10,
            completion_tokens: 4,
            cache_read_input_tokens: 2,
            cache_creation_input_tokens: 1,
            estimated: false,
        };
        let chat = json!({"completion_tokens_details": {"reasoning_tokens": 3}});
        let u = usage_from_counts(&counts, Some(&chat));
        assert_eq!(
            u,
            json!({
                "input_tokens": 10,
                "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 1},
                "output_tokens": 4,
                "output_tokens_details": {"reasoning_tokens": 3},
                "total_tokens": 14
            })
        );
        assert_eq!(
            usage_from_counts(&counts, None)["output_tokens_details"]["reasoning_tokens"],
            json!(0)
        );
    }

    #[test]
    fn finish_reasons_map_to_statuses() {
        assert_eq!(
            Status::from_finish_reason(Some("length")),
            Status::Incomplete("max_output_tokens")
        );
        assert_eq!(
            Status::from_finish_reason(Some("content_filter")),
            Status::Incomplete("content_filter")
        );
        for r in [Some("stop"), Some("tool_calls"), None] {
            assert_eq!(Status::from_finish_reason(r), Status::Completed);
        }
    }
}
