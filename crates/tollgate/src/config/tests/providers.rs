//! Rule 3: provider parsing, default API bases and provider env keys.

use super::*;
use crate::config::provider::PROVIDERS;
use crate::config::{ApiKey, Deployment, Provider, Secret};

fn deployment(params: &str) -> Deployment {
    ok(&one(params)).model_list.remove(0)
}

fn base(d: &Deployment) -> Option<&str> {
    d.api_base.as_ref().map(|u| u.as_str())
}

#[test]
fn only_the_first_slash_splits() {
    let d = deployment("{model: openrouter/anthropic/claude-3, api_key: k}");
    assert_eq!(d.provider, Provider::OpenAiCompatible("openrouter"));
    assert_eq!(d.upstream_model, "anthropic/claude-3");
    assert_eq!(base(&d), Some("https://openrouter.ai/api/v1"));
}

#[test]
fn bare_openai_and_anthropic_names() {
    for model in [
        "gpt-4o",
        "o1-mini",
        "o3",
        "o4-mini",
        "chatgpt-4o-latest",
        "text-embedding-3-small",
        "davinci-002",
        "babbage-002",
        "gpt-image-1",
        "whisper-1",
        "tts-1",
        "omni-moderation-latest",
    ] {
        let d = deployment(&format!("{{model: {model}, api_key: k}}"));
        assert_eq!(d.provider, Provider::OpenAi, "{model}");
        assert_eq!(d.upstream_model, model);
        assert_eq!(base(&d), Some("https://api.openai.com/v1"));
    }
    let d = deployment("{model: claude-3-5-haiku-20241022, api_key: k}");
    assert_eq!(d.provider, Provider::Anthropic);
    assert_eq!(base(&d), Some("https://api.anthropic.com/"));
}

#[test]
fn unknown_bare_name_is_unsupported() {
    let e = err("model_list:\n  - model_name: llama\n    litellm_params: {model: llama3}\n");
    assert_eq!(
        unsupported(&e),
        (
            "model_list[0] (model_name 'llama')",
            "cannot tell the provider of model 'llama3'; write it as <provider>/<model>"
        )
    );
}

#[test]
fn bedrock_without_credentials_is_refused_naming_index_and_model_name() {
    let e = err("
model_list:
  - model_name: a
    litellm_params: {model: openai/a, api_key: k}
  - model_name: b
    litellm_params: {model: openai/b, api_key: k}
  - model_name: c
    litellm_params: {model: openai/c, api_key: k}
  - model_name: claude-bedrock
    litellm_params: {model: bedrock/anthropic.claude-v2, aws_region_name: us-east-1}
");
    assert_eq!(
        e.to_string(),
        "config.yaml: model_list[3] (model_name 'claude-bedrock'): no AWS credentials: set \
         aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY); profiles, role assumption and instance roles are not supported"
    );
}

#[test]
fn every_refusal_is_listed_at_once() {
    let e = err("
general_settings:
  pass_through_endpoints: [{path: /x, target: 'http://h'}]
model_list:
  - model_name: fine
    litellm_params: {model: openai/a, api_key: k}
  - model_name: claude-bedrock
    litellm_params: {model: bedrock/anthropic.claude-v2, aws_region_name: us-east-1}
  - model_name: sage
    litellm_params: {model: sagemaker/x}
  - model_name: bad-rpm
    litellm_params: {model: openai/b, api_key: k, rpm: -3}
");
    assert_eq!(
        e.to_string(),
        "config.yaml: 4 problems:\n  \
         general_settings.pass_through_endpoints: pass-through endpoints are not supported\n  \
         model_list[1] (model_name 'claude-bedrock'): no AWS credentials: set aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); profiles, role assumption and instance roles are not supported\n  \
         model_list[2] (model_name 'sage'): provider 'sagemaker' is not supported by Tollgate\n  \
         model_list[3].litellm_params.rpm: expected a non-negative integer"
    );
}

#[test]
fn other_litellm_providers_are_unsupported() {
    for model in ["cohere/command-r", "sagemaker/x", "huggingface/x", "vllm/x"] {
        let e = err(&one(&format!("{{model: {model}}}")));
        let provider = model.split('/').next().unwrap_or_default();
        assert_eq!(
            unsupported(&e).1,
            format!("provider '{provider}' is not supported by Tollgate")
        );
    }
}

#[test]
fn custom_llm_provider_overrides_and_strips_only_its_own_prefix() {
    let d = deployment(
        "{model: my-model, custom_llm_provider: hosted_vllm, api_base: 'http://h:8000/v1'}",
    );
    assert_eq!(d.provider, Provider::OpenAiCompatible("hosted_vllm"));
    assert_eq!(d.upstream_model, "my-model");
    let d = deployment("{model: groq/llama-3.1-8b, custom_llm_provider: groq, api_key: k}");
    assert_eq!(d.upstream_model, "llama-3.1-8b");
    let d = deployment("{model: meta/llama, custom_llm_provider: together_ai, api_key: k}");
    assert_eq!(d.provider, Provider::OpenAiCompatible("together_ai"));
    assert_eq!(d.upstream_model, "meta/llama");
    let e = err(&one("{model: gpt-4o, custom_llm_provider: sagemaker}"));
    assert_eq!(
        unsupported(&e).1,
        "provider 'sagemaker' is not supported by Tollgate"
    );
}

#[test]
fn default_api_bases() {
    let cases = [
        ("groq/x", "https://api.groq.com/openai/v1"),
        ("mistral/x", "https://api.mistral.ai/v1"),
        ("deepseek/x", "https://api.deepseek.com/v1"),
        ("together_ai/x", "https://api.together.xyz/v1"),
        ("xai/x", "https://api.x.ai/v1"),
        ("fireworks_ai/x", "https://api.fireworks.ai/inference/v1"),
        ("perplexity/x", "https://api.perplexity.ai/"),
        ("deepinfra/x", "https://api.deepinfra.com/v1/openai"),
        ("cerebras/x", "https://api.cerebras.ai/v1"),
        ("ollama/x", "http://localhost:11434/v1"),
        ("ollama_chat/x", "http://localhost:11434/v1"),
        ("nvidia_nim/x", "https://integrate.api.nvidia.com/v1"),
        ("sambanova/x", "https://api.sambanova.ai/v1"),
    ];
    for (model, expected) in cases {
        let d = deployment(&format!("{{model: {model}, api_key: k}}"));
        assert_eq!(base(&d), Some(expected), "{model}");
    }
}

#[test]
fn every_default_base_parses_as_http_url() {
    for spec in PROVIDERS {
        if let Some(base) = spec.default_base {
            let url = url::Url::parse(base);
            assert!(
                url.is_ok_and(|u| u.scheme().starts_with("http")),
                "{}",
                spec.name
            );
        }
    }
}

#[test]
fn providers_without_default_need_api_base() {
    for provider in [
        "hosted_vllm",
        "lm_studio",
        "openai_like",
        "custom_openai",
        "litellm_proxy",
        "azure",
    ] {
        let e = err(&one(&format!("{{model: {provider}/x, api_key: k}}")));
        let (path, expected) = invalid(&e);
        assert_eq!(path, "model_list[0].litellm_params.api_base");
        assert_eq!(
            expected,
            format!("an http(s) URL: api_base is required for provider {provider}")
        );
    }
}

#[test]
fn ollama_bare_server_url_gets_v1() {
    let d = deployment("{model: ollama/llama3, api_base: 'http://gpu-box:11434'}");
    assert_eq!(base(&d), Some("http://gpu-box:11434/v1"));
    let d = deployment("{model: ollama_chat/llama3, api_base: 'http://gpu-box:11434/'}");
    assert_eq!(base(&d), Some("http://gpu-box:11434/v1"));
    let d = deployment("{model: ollama/llama3, api_base: 'http://proxy/ollama/v1'}");
    assert_eq!(base(&d), Some("http://proxy/ollama/v1"));
    // Ollama runs keyless: no key, no warning.
    let config = ok(&one("{model: ollama/llama3}"));
    assert!(config.model_list[0].api_key.is_none());
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn azure_gets_default_api_version() {
    let d =
        deployment("{model: azure/my-deploy, api_base: 'https://r.openai.azure.com', api_key: k}");
    assert_eq!(d.provider, Provider::Azure);
    assert_eq!(d.upstream_model, "my-deploy");
    assert_eq!(d.api_version.as_deref(), Some("2024-10-21"));
    let d = deployment("{model: azure/d, api_base: 'https://r.openai.azure.com', api_key: k, api_version: '2025-01-01-preview'}");
    assert_eq!(d.api_version.as_deref(), Some("2025-01-01-preview"));
    let d = deployment("{model: openai/gpt-4o, api_key: k}");
    assert_eq!(d.api_version, None);
}

#[test]
fn wildcard_deployments() {
    let config = ok("
model_list:
  - model_name: openai/*
    litellm_params: {model: openai/*, api_key: k}
  - model_name: claude-*
    litellm_params: {model: anthropic/claude-*, api_key: k}
  - model_name: '*'
    litellm_params: {model: openrouter/*, api_key: k}
");
    let got: Vec<(&str, Provider, &str)> = config
        .model_list
        .iter()
        .map(|d| (d.model_name.as_str(), d.provider, d.upstream_model.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("openai/*", Provider::OpenAi, "*"),
            ("claude-*", Provider::Anthropic, "claude-*"),
            ("*", Provider::OpenAiCompatible("openrouter"), "*"),
        ]
    );
}

#[test]
fn several_deployments_may_share_a_model_name() {
    let config = ok("
model_list:
  - {model_name: gpt-4o, litellm_params: {model: openai/gpt-4o, api_key: a}}
  - {model_name: gpt-4o, litellm_params: {model: azure/gpt-4o, api_base: 'https://x.openai.azure.com', api_key: b}}
  - {model_name: gpt-4o, litellm_params: {model: openai/gpt-4o, api_key: c, api_base: 'https://eu.api.openai.com/v1'}}
");
    assert_eq!(config.model_list.len(), 3);
    assert!(config.model_list.iter().all(|d| d.model_name == "gpt-4o"));
    assert_eq!(config.model_list[2].index, 2);
}

#[test]
fn provider_prefix_without_model_is_invalid() {
    let e = err(&one("{model: openai/, api_key: k}"));
    assert_eq!(invalid(&e).0, "model_list[0].litellm_params.model");
}

#[test]
fn mock_deployment_needs_no_key_or_base_but_a_known_provider() {
    let d = deployment("{model: hosted_vllm/x, mock_response: hi}");
    assert_eq!(d.mock_response.as_deref(), Some("hi"));
    assert_eq!(d.api_base, None);
    let config = ok(&one("{model: openai/gpt-4o, mock_response: hi}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let d = &config.model_list[0];
    assert_eq!(base(d), Some("https://api.openai.com/v1"));
    assert!(!d.default_params.contains_key("mock_response"));
    // A mock Bedrock deployment calls nothing, so it needs no AWS credentials or region.
    let d = deployment("{model: bedrock/x, mock_response: hi}");
    assert_eq!((d.provider, d.aws.as_ref()), (Provider::Bedrock, None));
    assert!(matches!(
        err(&one("{model: sagemaker/x, mock_response: hi}")),
        crate::config::ConfigError::Unsupported { .. }
    ));
    assert!(matches!(
        err(&one("{model: llama3, mock_response: hi}")),
        crate::config::ConfigError::Unsupported { .. }
    ));
    assert_eq!(
        invalid(&err(&one("{model: openai/x, mock_response: {a: 1}}"))).0,
        "model_list[0].litellm_params.mock_response"
    );
}

#[test]
fn missing_api_key_falls_back_to_the_providers_env_var() {
    let config = ok_env(
        &one("{model: anthropic/claude-3-5-sonnet}"),
        &[("ANTHROPIC_API_KEY", "sk-ant")],
    );
    assert_eq!(
        config.model_list[0].api_key,
        Some(ApiKey::Env {
            var: "ANTHROPIC_API_KEY".into(),
            value: Some(Secret::new("sk-ant".into())),
        })
    );
    // Later names in LiteLLM's list are used when the first is unset.
    let config = ok_env(
        &one("{model: together_ai/x}"),
        &[("TOGETHERAI_API_KEY", "t")],
    );
    assert!(matches!(
        &config.model_list[0].api_key,
        Some(ApiKey::Env { var, value: Some(_) }) if var == "TOGETHERAI_API_KEY"
    ));
    let config = ok(&one("{model: openai/gpt-4o}"));
    assert_eq!(
        config.model_list[0].api_key,
        Some(ApiKey::Env {
            var: "OPENAI_API_KEY".into(),
            value: None
        })
    );
    assert!(has_warning(
        &config,
        "model_list[0] (model_name 'm'): no api_key is set and OPENAI_API_KEY is not set"
    ));
}

#[test]
fn gemini_deployments() {
    let config = ok_env(
        &one("{model: gemini/gemini-2.0-flash}"),
        &[("GEMINI_API_KEY", "g-key")],
    );
    let d = &config.model_list[0];
    assert_eq!(d.provider, Provider::Gemini);
    assert_eq!(d.upstream_model, "gemini-2.0-flash");
    assert_eq!(base(d), Some("https://generativelanguage.googleapis.com/"));
    assert_eq!(
        d.api_key,
        Some(ApiKey::Env {
            var: "GEMINI_API_KEY".into(),
            value: Some(Secret::new("g-key".into())),
        })
    );
    // LiteLLM also reads GOOGLE_API_KEY.
    let config = ok_env(
        &one("{model: gemini/text-embedding-004}"),
        &[("GOOGLE_API_KEY", "k")],
    );
    assert!(matches!(
        &config.model_list[0].api_key,
        Some(ApiKey::Env { var, value: Some(_) }) if var == "GOOGLE_API_KEY"
    ));
    let d = deployment(
        "{model: gemini/gemini-1.5-pro, api_key: k, api_base: 'https://gw.example/google/v1beta'}",
    );
    assert_eq!(base(&d), Some("https://gw.example/google/v1beta"));
}

#[test]
fn literal_api_key_and_organization() {
    let d = deployment("{model: openai/gpt-4o, api_key: sk-literal, organization: org-1}");
    assert_eq!(
        d.api_key,
        Some(ApiKey::Literal(Secret::new("sk-literal".into())))
    );
    assert_eq!(d.organization.as_deref(), Some("org-1"));
}

const AWS_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIAENV"),
    ("AWS_SECRET_ACCESS_KEY", "env-secret"),
];

fn literal(s: &str) -> ApiKey {
    ApiKey::Literal(Secret::new(s.into()))
}

fn from_env(var: &str, value: &str) -> ApiKey {
    ApiKey::Env {
        var: var.into(),
        value: Some(Secret::new(value.into())),
    }
}

#[test]
fn bedrock_deployments() {
    let d = deployment(
        "{model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0, aws_access_key_id: AKIA1, \
         aws_secret_access_key: s3cr3t, aws_session_token: tok, aws_region_name: eu-central-1}",
    );
    assert_eq!(d.provider, Provider::Bedrock);
    assert_eq!(
        d.upstream_model,
        "anthropic.claude-3-5-sonnet-20240620-v1:0"
    );
    assert_eq!(
        base(&d),
        Some("https://bedrock-runtime.eu-central-1.amazonaws.com/")
    );
    assert_eq!(d.api_key, None);
    assert!(d.default_params.is_empty(), "{:?}", d.default_params);
    let aws = d.aws.as_ref().unwrap();
    assert_eq!(aws.access_key_id, literal("AKIA1"));
    assert_eq!(aws.secret_access_key, literal("s3cr3t"));
    assert_eq!(aws.session_token, Some(literal("tok")));
    assert_eq!(aws.region, "eu-central-1");
    // Debug never shows the secrets.
    let shown = format!("{d:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("tok\""),
        "{shown}"
    );

    // api_base, then aws_bedrock_runtime_endpoint, then AWS_BEDROCK_RUNTIME_ENDPOINT.
    let d = deployment(
        "{model: bedrock/converse/meta.llama3-8b-instruct-v1:0, aws_access_key_id: a, \
         aws_secret_access_key: s, aws_region_name: us-east-1, \
         aws_bedrock_runtime_endpoint: 'https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com'}",
    );
    assert_eq!(d.upstream_model, "meta.llama3-8b-instruct-v1:0");
    assert_eq!(
        base(&d),
        Some("https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com/")
    );
    let config = ok_env(
        &one("{model: bedrock/x, api_base: 'http://127.0.0.1:9', aws_region_name: us-east-1}"),
        &[
            AWS_ENV,
            &[("AWS_BEDROCK_RUNTIME_ENDPOINT", "https://other.example")],
        ]
        .concat(),
    );
    assert_eq!(base(&config.model_list[0]), Some("http://127.0.0.1:9/"));
    let config = ok_env(
        &one("{model: bedrock/x, aws_region_name: us-east-1}"),
        &[
            AWS_ENV,
            &[("AWS_BEDROCK_RUNTIME_ENDPOINT", "https://other.example")],
        ]
        .concat(),
    );
    assert_eq!(base(&config.model_list[0]), Some("https://other.example/"));
}

#[test]
fn bedrock_credentials_and_region_fall_back_to_aws_variables() {
    let config = ok_env(
        &one("{model: bedrock/amazon.titan-embed-text-v2:0}"),
        &[
            AWS_ENV,
            &[
                ("AWS_SESSION_TOKEN", "env-token"),
                ("AWS_DEFAULT_REGION", "us-west-2"),
            ],
        ]
        .concat(),
    );
    let aws = config.model_list[0].aws.clone().unwrap();
    assert_eq!(aws.access_key_id, from_env("AWS_ACCESS_KEY_ID", "AKIAENV"));
    assert_eq!(
        aws.secret_access_key,
        from_env("AWS_SECRET_ACCESS_KEY", "env-secret")
    );
    assert_eq!(
        aws.session_token,
        Some(from_env("AWS_SESSION_TOKEN", "env-token"))
    );
    assert_eq!(aws.region, "us-west-2");
    // LiteLLM's order: aws_region_name, the region in the model path or ARN, AWS_REGION_NAME,
    // AWS_REGION, AWS_DEFAULT_REGION.
    let region = |params: &str, env: &[(&str, &str)]| {
        ok_env(&one(params), &[AWS_ENV, env].concat()).model_list[0]
            .aws
            .clone()
            .unwrap()
            .region
    };
    let all = [
        ("AWS_REGION_NAME", "eu-west-1"),
        ("AWS_REGION", "eu-west-2"),
        ("AWS_DEFAULT_REGION", "eu-west-3"),
    ];
    assert_eq!(
        region("{model: bedrock/x, aws_region_name: us-east-2}", &all),
        "us-east-2"
    );
    assert_eq!(region("{model: bedrock/ap-south-1/x}", &all), "ap-south-1");
    assert_eq!(
        region(
            "{model: 'bedrock/arn:aws:bedrock:ca-central-1:123456789012:inference-profile/x'}",
            &all
        ),
        "ca-central-1"
    );
    assert_eq!(region("{model: bedrock/x}", &all), "eu-west-1");
    assert_eq!(region("{model: bedrock/x}", &all[1..]), "eu-west-2");
    assert_eq!(region("{model: bedrock/x}", &all[2..]), "eu-west-3");
    // The region in the path is not part of the model id.
    let config = ok_env(
        &one("{model: bedrock/us-gov-west-1/amazon.titan-embed-text-v1}"),
        AWS_ENV,
    );
    let d = &config.model_list[0];
    assert_eq!(d.upstream_model, "amazon.titan-embed-text-v1");
    // LiteLLM prices such a deployment by its regional name.
    assert_eq!(
        d.aws.as_ref().and_then(|a| a.regional_model.as_deref()),
        Some("us-gov-west-1/amazon.titan-embed-text-v1")
    );
}

#[test]
fn bedrock_unset_variables_warn_and_fail_at_call_time() {
    let config = ok(&one(
        "{model: bedrock/x, aws_access_key_id: os.environ/MY_AWS_ID, \
         aws_secret_access_key: os.environ/MY_AWS_SECRET, aws_region_name: us-east-1}",
    ));
    let aws = config.model_list[0].aws.clone().unwrap();
    assert_eq!(
        aws.secret_access_key,
        ApiKey::Env {
            var: "MY_AWS_SECRET".into(),
            value: None
        }
    );
    assert!(has_warning(
        &config,
        "model_list[0] (model_name 'm'): aws_secret_access_key uses os.environ/MY_AWS_SECRET, which is not set"
    ));
}

#[test]
fn bedrock_refusals() {
    let problem = |params: &str, env: &[(&str, &str)]| err_env(&one(params), env).to_string();
    assert!(problem("{model: bedrock/x}", AWS_ENV).contains("no AWS region: set aws_region_name"));
    assert!(problem(
        "{model: bedrock/x, aws_region_name: us-east-1, aws_access_key_id: a}",
        &[]
    )
    .contains("aws_access_key_id is set but no aws_secret_access_key"));
    assert!(
        problem("{model: bedrock/x, aws_region_name: 'US East'}", AWS_ENV)
            .contains("an AWS region name like us-east-1")
    );
    let e = problem(
        "{model: bedrock/x, aws_region_name: us-east-1, aws_role_name: r, aws_profile_name: p}",
        AWS_ENV,
    );
    assert!(e.contains("litellm_params.aws_role_name: AWS profiles, role assumption and web identity are not supported"), "{e}");
    assert!(e.contains("litellm_params.aws_profile_name"), "{e}");
    let e = problem(
        "{model: bedrock/invoke/anthropic.claude-v2, aws_region_name: us-east-1}",
        AWS_ENV,
    );
    assert!(
        e.contains("the Bedrock 'invoke/' route is not supported"),
        "{e}"
    );
    let e = problem(
        "{model: bedrock/x, aws_region_name: us-east-1, api_key: bedrock-api-key-123456}",
        AWS_ENV,
    );
    assert!(
        e.contains("Bedrock API keys (bearer tokens) are not supported"),
        "{e}"
    );
    assert!(!e.contains("bedrock-api-key-123456"), "{e}");
    let e = problem(
        "{model: openai/x, api_key: k, aws_region_name: us-east-1}",
        &[],
    );
    assert!(
        e.contains("aws_* settings apply to bedrock/ deployments only"),
        "{e}"
    );
}
