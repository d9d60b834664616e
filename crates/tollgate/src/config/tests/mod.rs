//! Unit tests, one file per area of the loader.

mod deployments;
mod env_vars;
mod policy_rules;
mod providers;
mod secrets;
mod settings;
mod vertex;
mod yaml;

use super::{parse, Config, ConfigError};

pub(super) const FILE: &str = "config.yaml";

pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| {
        owned
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

pub(super) fn ok_env(yaml: &str, pairs: &[(&str, &str)]) -> Config {
    match parse(yaml, FILE, &env_of(pairs)) {
        Ok(config) => config,
        Err(e) => panic!("expected the config to load, got: {e}"),
    }
}

pub(super) fn ok(yaml: &str) -> Config {
    ok_env(yaml, &[])
}

pub(super) fn err_env(yaml: &str, pairs: &[(&str, &str)]) -> ConfigError {
    match parse(yaml, FILE, &env_of(pairs)) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

pub(super) fn err(yaml: &str) -> ConfigError {
    err_env(yaml, &[])
}

/// (path, expected) of an Invalid error.
pub(super) fn invalid(e: &ConfigError) -> (&str, &str) {
    match e {
        ConfigError::Invalid { path, expected, .. } => (path, expected),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// (path, message) of an Unsupported error.
pub(super) fn unsupported(e: &ConfigError) -> (&str, &str) {
    match e {
        ConfigError::Unsupported { path, message, .. } => (path, message),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

pub(super) fn has_warning(config: &Config, needle: &str) -> bool {
    config.warnings.iter().any(|w| w.contains(needle))
}

/// One deployment around the given litellm_params body (YAML flow mapping).
pub(super) fn one(params: &str) -> String {
    format!("model_list:\n  - model_name: m\n    litellm_params: {params}\n")
}
