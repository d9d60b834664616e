//! Secrets never show up in Debug output, errors or warnings.

use super::*;
use crate::config::{ApiKey, Secret};

const SECRETS: &[&str] = &[
    "sk-live-openai-0123456789",
    "sk-master-abcdef987654",
    "pg-password-5f5f5f",
    "azure-key-7a7a7a",
];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "secret {secret} leaked in: {text}");
    }
}

#[test]
fn secret_debug_hides_the_value() {
    let s = Secret::new("sk-live-openai-0123456789".into());
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert_eq!(s.expose(), "sk-live-openai-0123456789");
    let key = ApiKey::Literal(s.clone());
    assert_no_secret(&format!("{key:?} {key:#?}"));
    let env = ApiKey::Env {
        var: "OPENAI_API_KEY".into(),
        value: Some(s),
    };
    let shown = format!("{env:?}");
    assert!(shown.contains("OPENAI_API_KEY"));
    assert_no_secret(&shown);
}

#[test]
fn loaded_config_debug_hides_all_secrets() {
    let yaml = "
model_list:
  - model_name: a
    litellm_params: {model: openai/x, api_key: sk-live-openai-0123456789}
  - model_name: b
    litellm_params: {model: azure/x, api_base: 'https://r.openai.azure.com', api_key: os.environ/AZ}
general_settings:
  master_key: sk-master-abcdef987654
  database_url: postgres://u:pg-password-5f5f5f@db/x
";
    let config = ok_env(yaml, &[("AZ", "azure-key-7a7a7a")]);
    assert_no_secret(&format!("{config:?}"));
    assert_no_secret(&format!("{config:#?}"));
    assert_no_secret(&config.warnings.join("\n"));
}

#[test]
fn errors_and_warnings_never_contain_secret_values() {
    let failing = [
        // Wrong types for secret fields.
        "general_settings: {master_key: [sk-master-abcdef987654]}",
        "model_list: [{model_name: a, litellm_params: {model: openai/x, api_key: {k: sk-live-openai-0123456789}}}]",
        // Secrets misplaced.
        "litellm_settings: {master_key: sk-master-abcdef987654}",
        "master_key: sk-master-abcdef987654",
        "database_url: postgres://u:pg-password-5f5f5f@db/x",
        "model_list: [{model_name: a, litellm_params: {model: openai/x, master_key: sk-master-abcdef987654}}]",
        // Errors elsewhere in a deployment that carries a key.
        "model_list: [{model_name: a, litellm_params: {model: bedrock/x, api_key: sk-live-openai-0123456789}}]",
        "model_list: [{model_name: a, litellm_params: {model: openai/x, api_key: sk-live-openai-0123456789, rpm: x}}]",
        "model_list: [{model_name: a, litellm_params: {model: openai/x, api_key: sk-live-openai-0123456789, api_base: 'http://u:pg-password-5f5f5f@bad host'}}]",
        "general_settings: {master_key: os.environ/UNSET_MASTER}\nrouter_settings: {redis_password: sk-master-abcdef987654}",
        // Syntax error right after a secret.
        "general_settings:\n  master_key: sk-master-abcdef987654: x\n",
        "general_settings:\n  master_key: \"sk-master-abcdef987654\n",
    ];
    for yaml in failing {
        let e = err_env(yaml, &[("AZ", "azure-key-7a7a7a")]);
        assert_no_secret(&e.to_string());
        assert_no_secret(&format!("{e:?}"));
    }
    let warning_configs = [
        "model_list: [{model_name: a, litellm_params: {model: openai/x, api_key: os.environ/UNSET_KEY}}]",
        "router_settings: {redis_password: sk-master-abcdef987654}",
        "environment_variables: {HOME: sk-master-abcdef987654}",
        "model_list: [{model_name: a, litellm_params: {model: hosted_vllm/x, api_base: 'http://a/v1', api_base_extra: 1, base_url: 'http://u:pg-password-5f5f5f@b/v1'}}]",
    ];
    for yaml in warning_configs {
        let config = ok_env(yaml, &[("AZ", "azure-key-7a7a7a")]);
        assert_no_secret(&config.warnings.join("\n"));
    }
}
