//! Rule 2: environment_variables and os.environ/ references.

use super::*;
use crate::config::{ApiKey, Secret};

#[test]
fn environment_variables_override_the_process_env_for_lookups() {
    let yaml = "
environment_variables:
  MY_KEY: from-config
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/MY_KEY}
";
    let config = ok_env(yaml, &[("MY_KEY", "from-process")]);
    assert_eq!(
        config.model_list[0].api_key,
        Some(ApiKey::Env {
            var: "MY_KEY".into(),
            value: Some(Secret::new("from-config".into())),
        })
    );
}

#[test]
fn environment_variables_never_touch_the_real_environment() {
    let yaml = "environment_variables:\n  TOLLGATE_CONFIG_TEST_ONLY_VAR: x\n";
    ok(yaml);
    assert!(std::env::var("TOLLGATE_CONFIG_TEST_ONLY_VAR").is_err());
}

#[test]
fn environment_variables_may_reference_earlier_entries_and_the_process() {
    let yaml = "
environment_variables:
  BASE: os.environ/REAL_BASE
  COPY: os.environ/BASE
  PORT: 8000
  FLAG: true
model_list:
  - model_name: m
    litellm_params:
      model: hosted_vllm/qwen
      api_base: os.environ/COPY
      extra_body: {port: os.environ/PORT, flag: os.environ/FLAG}
";
    let config = ok_env(yaml, &[("REAL_BASE", "http://vllm:8000/v1")]);
    let d = &config.model_list[0];
    assert_eq!(
        d.api_base.as_ref().map(|u| u.as_str()),
        Some("http://vllm:8000/v1")
    );
    // LiteLLM stores str(value): Python's spelling of booleans.
    assert_eq!(
        d.default_params["extra_body"],
        serde_json::json!({"port": "8000", "flag": "True"})
    );
}

#[test]
fn blocked_environment_variables_are_not_overridden() {
    let yaml = "
environment_variables:
  HOME: /tmp/evil
general_settings:
  master_key: os.environ/HOME
";
    let config = ok_env(yaml, &[("HOME", "/root")]);
    assert_eq!(
        config.master_key.as_ref().map(|s| s.expose()),
        Some("/root")
    );
    assert!(has_warning(&config, "environment_variables.HOME: ignored"));
}

#[test]
fn environment_variables_with_unset_source_or_null_value_warn() {
    let yaml = "environment_variables:\n  A: os.environ/NOPE\n  B:\n";
    let config = ok(yaml);
    assert!(has_warning(
        &config,
        "environment_variables.A: uses os.environ/NOPE"
    ));
    assert!(has_warning(
        &config,
        "environment_variables.B: has no value"
    ));
}

#[test]
fn environment_variables_must_be_scalars() {
    assert_eq!(
        invalid(&err("environment_variables:\n  A: [1]\n")).0,
        "environment_variables.A"
    );
}

#[test]
fn unset_api_key_var_gives_env_none_and_a_warning() {
    let yaml = "
model_list:
  - model_name: x
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/MISSING_KEY}
";
    let config = ok(yaml);
    assert_eq!(
        config.model_list[0].api_key,
        Some(ApiKey::Env {
            var: "MISSING_KEY".into(),
            value: None
        })
    );
    assert_eq!(
        config.warnings,
        ["model_list[0] (model_name 'x'): api_key uses os.environ/MISSING_KEY, which is not set; calls to this deployment will fail".to_string()]
    );
}

#[test]
fn empty_env_value_counts_as_unset() {
    let config = ok_env(
        &one("{model: openai/gpt-4o, api_key: os.environ/K}"),
        &[("K", "")],
    );
    assert_eq!(
        config.model_list[0].api_key,
        Some(ApiKey::Env {
            var: "K".into(),
            value: None
        })
    );
}

#[test]
fn unset_api_base_var_is_invalid_naming_path_and_var() {
    let e = err(&one(
        "{model: hosted_vllm/q, api_base: os.environ/VLLM_URL}",
    ));
    let (path, expected) = invalid(&e);
    assert_eq!(path, "model_list[0].litellm_params.api_base");
    assert!(expected.contains("VLLM_URL"), "{expected}");
}

#[test]
fn unset_var_in_other_consumed_fields_is_invalid() {
    let e = err(&one(
        "{model: openai/gpt-4o, api_key: k, rpm: os.environ/RPM}",
    ));
    let (path, expected) = invalid(&e);
    assert_eq!(path, "model_list[0].litellm_params.rpm");
    assert!(expected.contains("RPM"));
}

#[test]
fn numbers_from_env_are_accepted() {
    let config = ok_env(
        &one("{model: openai/gpt-4o, api_key: k, rpm: os.environ/RPM, timeout: os.environ/T}"),
        &[("RPM", "120"), ("T", "2.5")],
    );
    assert_eq!(config.model_list[0].rpm, Some(120));
    assert_eq!(config.model_list[0].timeout_secs, Some(2.5));
}

#[test]
fn unset_var_in_default_params_drops_the_param_with_a_warning() {
    let config = ok(&one(
        "{model: openai/gpt-4o, api_key: k, user: os.environ/NOPE, seed: 1}",
    ));
    let d = &config.model_list[0];
    assert!(!d.default_params.contains_key("user"));
    assert_eq!(d.default_params["seed"], serde_json::json!(1));
    assert!(has_warning(
        &config,
        "model_list[0].litellm_params.user: uses os.environ/NOPE"
    ));
}

#[test]
fn unset_master_key_or_database_url_var_is_refused() {
    // Falling back to a generated key or to local SQLite would hide the mistake.
    for key in ["master_key", "database_url"] {
        let e = err(&format!("general_settings:\n  {key}: os.environ/NOPE\n"));
        let text = e.to_string();
        assert!(text.contains(&format!("general_settings.{key}")), "{text}");
        assert!(text.contains("NOPE"), "{text}");
    }
}

#[test]
fn master_key_and_database_url_fall_back_to_env() {
    let env = [
        ("LITELLM_MASTER_KEY", "sk-env-master"),
        ("DATABASE_URL", "postgres://x"),
    ];
    let config = ok_env("", &env);
    assert_eq!(
        config.master_key.as_ref().map(|s| s.expose()),
        Some("sk-env-master")
    );
    assert_eq!(
        config.database_url.as_ref().map(|s| s.expose()),
        Some("postgres://x")
    );
    // environment_variables count as environment for these too.
    let config = ok("environment_variables:\n  LITELLM_MASTER_KEY: sk-cfg\n");
    assert_eq!(
        config.master_key.as_ref().map(|s| s.expose()),
        Some("sk-cfg")
    );
}

#[test]
fn explicit_master_key_wins_over_env() {
    let config = ok_env(
        "general_settings:\n  master_key: sk-file\n",
        &[("LITELLM_MASTER_KEY", "sk-env")],
    );
    assert_eq!(
        config.master_key.as_ref().map(|s| s.expose()),
        Some("sk-file")
    );
}

#[test]
fn empty_master_key_is_kept_so_the_start_refuses_it() {
    let config = ok("general_settings:\n  master_key: ''\n");
    assert_eq!(config.master_key.as_ref().map(|s| s.expose()), Some(""));
    let config = ok("general_settings:\n  database_url: ''\n");
    assert!(config.database_url.is_none());
}

#[test]
fn reference_without_a_name_is_invalid() {
    let e = err(&one("{model: openai/gpt-4o, api_key: os.environ/}"));
    assert_eq!(invalid(&e).0, "model_list[0].litellm_params.api_key");
}
