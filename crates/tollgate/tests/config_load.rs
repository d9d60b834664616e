//! `load()` against real files: fixtures and temporary files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;

use tollgate::config::{load, ConfigError, Provider};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn loads_the_realistic_fixture() {
    // The fixture takes its master key, database and Redis host from os.environ/…, as many
    // real configs do; an unset variable there is refused, so give them values.
    let path = fixture("litellm_realistic.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |k: &str| match k {
        "LITELLM_MASTER_KEY" => Some("sk-fixture-master-0123456789".to_string()),
        "DATABASE_URL" => Some("postgresql://db.internal/litellm".to_string()),
        "REDIS_HOST" => Some("redis.internal".to_string()),
        _ => std::env::var(k).ok(),
    };
    let config = match tollgate::config::parse(&text, "litellm_realistic.yaml", &env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    // Key values depend on the machine's environment; the shape does not.
    assert_eq!(config.model_list.len(), 10);
    assert_eq!(config.model_list[1].provider, Provider::Azure);
    assert_eq!(
        config.model_list[6].api_base.as_ref().map(|u| u.as_str()),
        Some("http://vllm.internal:8000/v1")
    );
    assert!(config.drop_params);
}

#[test]
fn unset_master_key_variable_is_refused_by_load() {
    let e = load(&fixture("litellm_realistic.yaml"));
    if std::env::var("LITELLM_MASTER_KEY").is_err() {
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("LITELLM_MASTER_KEY"), "{text}");
    }
}

#[test]
fn bedrock_fixture_without_credentials_is_refused_without_leaking_keys() {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        // The machine's own AWS credentials would be used.
        return;
    }
    let e = match load(&fixture("litellm_bedrock.yaml")) {
        Ok(_) => panic!("a Bedrock deployment without credentials must be refused"),
        Err(e) => e,
    };
    let text = e.to_string();
    assert!(matches!(e, ConfigError::Unsupported { .. }));
    assert!(
        text.contains("model_list[2] (model_name 'claude-bedrock'): no AWS credentials"),
        "{text}"
    );
    assert!(text.contains("litellm_bedrock.yaml"));
    for secret in [
        "sk-fixture-openai-secret",
        "sk-ant-fixture-secret",
        "sk-fixture-master-secret",
    ] {
        assert!(!text.contains(secret));
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let e = load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cannot read config file "));
    assert!(e.to_string().contains("nope.yaml"));
}

#[test]
fn loads_a_temporary_file_and_names_it_in_errors() {
    let mut ok_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(ok_file, "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/gpt-4o, api_key: sk-x}}").unwrap();
    let config = load(ok_file.path()).unwrap();
    assert_eq!(config.model_list[0].upstream_model, "gpt-4o");

    let mut bad_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad_file, "model_list: [").unwrap();
    let e = load(bad_file.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Yaml { .. }));
    assert!(e
        .to_string()
        .contains(&bad_file.path().display().to_string()));
}
