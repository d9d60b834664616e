//! Rules 4, 5, 9 and 10: URLs, numbers, default params and model_info.

use super::*;
use crate::config::Deployment;

fn deployment(params: &str) -> Deployment {
    ok(&one(params)).model_list.remove(0)
}

#[test]
fn bad_api_base_is_invalid_with_path_and_value() {
    let e = err(&one("{model: openai/x, api_key: k, api_base: not a url}"));
    assert_eq!(
        invalid(&e),
        (
            "model_list[0].litellm_params.api_base",
            "an http(s) URL, got \"not a url\""
        )
    );
    for bad in [
        "ftp://files.example.com",
        "/v1",
        "http://",
        "localhost:8000",
    ] {
        let e = err(&one(&format!(
            "{{model: openai/x, api_key: k, api_base: '{bad}'}}"
        )));
        assert_eq!(
            invalid(&e).0,
            "model_list[0].litellm_params.api_base",
            "{bad}"
        );
    }
}

#[test]
fn bad_url_echo_masks_credentials() {
    let e = err(&one(
        "{model: openai/x, api_key: k, api_base: 'http://user:hunter2@bad host/v1?key=topsecret'}",
    ));
    let text = e.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(text.contains("***"), "{text}");
}

#[test]
fn debug_output_masks_url_credentials() {
    let config = ok(&one(
        "{model: openai/x, api_key: sk-CANARYkey, api_base: 'http://user:CANARYpass@host/v1?key=CANARYq'}",
    ));
    let shown = format!("{config:?}");
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(shown.contains("http://***@host/v1?key=***"), "{shown}");
}

#[test]
fn base_url_is_an_alias_and_api_base_wins() {
    let d = deployment("{model: hosted_vllm/x, base_url: 'http://vllm:8000/v1'}");
    assert_eq!(
        d.api_base.map(|u| u.to_string()).as_deref(),
        Some("http://vllm:8000/v1")
    );
    let config = ok(&one(
        "{model: hosted_vllm/x, api_base: 'http://a/v1', base_url: 'http://b/v1'}",
    ));
    assert_eq!(
        config.model_list[0].api_base.as_ref().map(|u| u.as_str()),
        Some("http://a/v1")
    );
    assert!(has_warning(
        &config,
        "model_list[0].litellm_params.base_url: ignored"
    ));
    let e = err(&one("{model: hosted_vllm/x, base_url: nope}"));
    assert_eq!(invalid(&e).0, "model_list[0].litellm_params.base_url");
}

#[test]
fn integer_fields_reject_text_negatives_and_fractions() {
    for (params, path) in [
        ("rpm: abc", "rpm"),
        ("rpm: -1", "rpm"),
        ("tpm: 1.5", "tpm"),
        ("tpm: true", "tpm"),
        ("max_retries: -2", "max_retries"),
        ("max_retries: 5000000000", "max_retries"),
    ] {
        let e = err(&one(&format!("{{model: openai/x, api_key: k, {params}}}")));
        assert_eq!(
            invalid(&e).0,
            format!("model_list[0].litellm_params.{path}"),
            "{params}"
        );
    }
}

#[test]
fn integer_fields_accept_integral_numbers_and_digit_strings() {
    let d = deployment("{model: openai/x, api_key: k, rpm: '60', tpm: 1000.0, max_retries: 3}");
    assert_eq!(
        (d.rpm, d.tpm, d.max_retries),
        (Some(60), Some(1000), Some(3))
    );
}

#[test]
fn costs_must_be_finite_and_non_negative() {
    for bad in ["-0.1", ".nan", "'NaN'", ".inf", "'-1e-6'", "cheap", "[1]"] {
        let e = err(&one(&format!(
            "{{model: openai/x, api_key: k, input_cost_per_token: {bad}}}"
        )));
        assert_eq!(
            invalid(&e),
            (
                "model_list[0].litellm_params.input_cost_per_token",
                "a finite number >= 0"
            ),
            "{bad}"
        );
    }
    let e = err("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n    model_info: {output_cost_per_token: -1}\n");
    assert_eq!(
        invalid(&e).0,
        "model_list[0].model_info.output_cost_per_token"
    );
}

#[test]
fn costs_accept_numeric_strings() {
    let d = deployment(
        "{model: openai/x, api_key: k, input_cost_per_token: '0.000001', output_cost_per_token: 0}",
    );
    assert_eq!(d.input_cost_per_token, Some(0.000001));
    assert_eq!(d.output_cost_per_token, Some(0.0));
}

#[test]
fn timeout_must_be_positive_and_finite() {
    for bad in ["0", "-5", ".inf", "soon"] {
        let e = err(&one(&format!(
            "{{model: openai/x, api_key: k, timeout: {bad}}}"
        )));
        assert_eq!(
            invalid(&e).0,
            "model_list[0].litellm_params.timeout",
            "{bad}"
        );
    }
    let d = deployment("{model: openai/x, api_key: k, timeout: '30'}");
    assert_eq!(d.timeout_secs, Some(30.0));
}

#[test]
fn stream_timeout_is_ignored_with_a_warning() {
    let config = ok(&one("{model: openai/x, api_key: k, stream_timeout: 10}"));
    let d = &config.model_list[0];
    assert_eq!(d.timeout_secs, None);
    assert!(!d.default_params.contains_key("stream_timeout"));
    assert!(has_warning(
        &config,
        "model_list[0].litellm_params.stream_timeout: ignored"
    ));
}

#[test]
fn other_litellm_params_become_default_params() {
    let d = deployment(
        "{model: openai/x, api_key: k, max_tokens: 100, max_completion_tokens: 200, temperature: 0.5, top_p: 0.9,
          stop: [END], seed: 3, presence_penalty: 0.1, frequency_penalty: 0.2,
          response_format: {type: json_object}, extra_body: {a: [1, null]}, user: svc, reasoning_effort: low}",
    );
    let expected = serde_json::json!({
        "max_tokens": 100, "max_completion_tokens": 200, "temperature": 0.5, "top_p": 0.9,
        "stop": ["END"], "seed": 3, "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "response_format": {"type": "json_object"}, "extra_body": {"a": [1, null]},
        "user": "svc", "reasoning_effort": "low"
    });
    assert_eq!(serde_json::Value::Object(d.default_params), expected);
}

#[test]
fn consumed_keys_never_become_default_params() {
    let d = deployment(
        "{model: azure/x, api_base: 'https://r.openai.azure.com', base_url: 'https://r.openai.azure.com',
          api_key: k, api_version: v, organization: o, rpm: 1, tpm: 2, timeout: 3, stream_timeout: 4,
          max_retries: 5, input_cost_per_token: 0.1, output_cost_per_token: 0.2, mock_response: m,
          custom_llm_provider: azure, model_info: {id: x}, tags: [a], temperature: 1}",
    );
    let keys: Vec<&String> = d.default_params.keys().collect();
    assert_eq!(keys, ["temperature"]);
}

#[test]
fn null_params_are_unset() {
    let d = deployment("{model: openai/x, api_key: k, rpm: null, temperature: ~}");
    assert_eq!(d.rpm, None);
    assert!(d.default_params.is_empty());
}

#[test]
fn lite_llm_internal_and_pricing_keys_are_not_forwarded() {
    let config = ok(&one(
        "{model: openai/x, api_key: k, drop_params: true, cache_read_input_token_cost: 0.1, tags: [x]}",
    ));
    assert!(config.model_list[0].default_params.is_empty());
    // A deployment's own drop_params is read (it overrides litellm_settings.drop_params).
    assert_eq!(config.model_list[0].drop_params, Some(true));
    assert_eq!(
        deployment("{model: openai/x, api_key: k}").drop_params,
        None
    );
    for key in ["cache_read_input_token_cost", "tags"] {
        assert!(
            has_warning(&config, &format!("litellm_params.{key}: ignored")),
            "{key}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn model_info_costs_fill_missing_prices() {
    let config = ok("
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: k}
    model_info: {input_cost_per_token: 0.001, output_cost_per_token: '0.002'}
  - model_name: b
    litellm_params: {model: openai/b, api_key: k, input_cost_per_token: 0.5}
    model_info: {input_cost_per_token: 0.001, output_cost_per_token: 0.002}
");
    let a = &config.model_list[0];
    assert_eq!(
        (a.input_cost_per_token, a.output_cost_per_token),
        (Some(0.001), Some(0.002))
    );
    let b = &config.model_list[1];
    assert_eq!(
        (b.input_cost_per_token, b.output_cost_per_token),
        (Some(0.5), Some(0.002))
    );
}

#[test]
fn model_info_fields_and_extra() {
    let d = ok("
model_list:
  - model_name: a
    litellm_params:
      model: openai/a
      api_key: k
      model_info: {base_model: gpt-4o, max_tokens: 10, supports_vision: false}
    model_info:
      id: 42
      mode: embedding
      access_groups: [team-a, team-b]
      max_tokens: 8192
      max_output_tokens: 4096
      supports_vision: true
      team_id: t1
")
    .model_list
    .remove(0);
    let info = &d.model_info;
    assert_eq!(info.id.as_deref(), Some("42"));
    assert_eq!(info.mode.as_deref(), Some("embedding"));
    assert_eq!(info.base_model.as_deref(), Some("gpt-4o"));
    assert_eq!(info.access_groups, ["team-a", "team-b"]);
    assert_eq!(info.max_tokens, Some(8192));
    assert_eq!(info.max_output_tokens, Some(4096));
    assert_eq!(info.max_input_tokens, None);
    assert_eq!(
        serde_json::Value::Object(info.extra.clone()),
        serde_json::json!({"supports_vision": true, "team_id": "t1"})
    );
}

#[test]
fn model_info_type_errors_name_the_path() {
    let e = err("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n    model_info: {max_tokens: lots}\n");
    assert_eq!(
        invalid(&e),
        (
            "model_list[0].model_info.max_tokens",
            "a non-negative integer"
        )
    );
    let e = err("model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_key: k}\n    model_info: {access_groups: [1]}\n");
    assert_eq!(invalid(&e).0, "model_list[0].model_info.access_groups[0]");
}
