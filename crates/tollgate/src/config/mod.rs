//! Reads a LiteLLM proxy `config.yaml` unchanged and turns it into Tollgate's
//! typed configuration. Anything that would silently change which upstream is
//! called, who may call, or what is charged is refused rather than ignored.

mod bedrock;
mod deployment;
mod env;
mod policy;
mod provider;
mod raw;
mod redis;
mod settings;
mod validate;
mod vertex;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use bedrock::AwsSettings;

/// Reads the file at `path` and resolves `os.environ/VAR` against the process
/// environment (after the file's own `environment_variables:`).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: file.clone(),
        source,
    })?;
    let process_env = |name: &str| std::env::var(name).ok();
    let config = parse(&text, &file, &process_env)?;
    tracing::debug!(
        file = %file,
        deployments = config.model_list.len(),
        warnings = config.warnings.len(),
        "loaded config"
    );
    Ok(config)
}

/// Parses config text; `env` stands in for the process environment so tests
/// never need to mutate it. `source` names the file in messages.
pub fn parse(
    text: &str,
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let root = raw::parse_yaml(text, source)?;
    settings::build(&root, source, env)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML: {message}")]
    Yaml { file: String, message: String },
    /// A field has the wrong type or value: `path` like `model_list[2].litellm_params.rpm`.
    #[error("{file}: {path}: expected {expected}")]
    Invalid {
        file: String,
        path: String,
        expected: String,
    },
    /// Something Tollgate will not silently ignore (unsupported provider, python hook, misplaced master_key...).
    #[error("{file}: {path}: {message}")]
    Unsupported {
        file: String,
        path: String,
        message: String,
    },
    /// More than one problem: all are listed, so one edit fixes them all.
    #[error("{file}: {} problems:\n  {}", problems.len(), problems.join("\n  "))]
    Several { file: String, problems: Vec<String> },
}

impl ConfigError {
    /// The problem without the file name (`path: message`).
    fn problem(&self) -> String {
        match self {
            ConfigError::Invalid { path, expected, .. } => format!("{path}: expected {expected}"),
            ConfigError::Unsupported { path, message, .. } => format!("{path}: {message}"),
            ConfigError::Several { problems, .. } => problems.join("\n  "),
            other => other.to_string(),
        }
    }

    /// One error for all the problems found (`problems` is not empty).
    fn combined(file: &str, mut problems: Vec<ConfigError>) -> ConfigError {
        if problems.len() == 1 {
            if let Some(only) = problems.pop() {
                return only;
            }
        }
        ConfigError::Several {
            file: file.to_string(),
            problems: problems.iter().map(ConfigError::problem).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub model_list: Vec<Deployment>,
    /// `general_settings.master_key`, else env `LITELLM_MASTER_KEY`.
    pub master_key: Option<Secret>,
    /// `general_settings.database_url`, else env `DATABASE_URL`.
    pub database_url: Option<Secret>,
    pub router: RouterSettings,
    /// Redis for several instances: `router_settings.redis_*`, else `REDIS_URL` / `REDIS_HOST`…
    pub redis_url: Option<Secret>,
    /// `litellm_settings.drop_params` (default false).
    pub drop_params: bool,
    /// `general_settings.max_request_size_mb` in bytes; default 8 MiB.
    pub max_request_body_bytes: usize,
    /// `general_settings.dangerously_permit_weak_or_unset_master_key`, or env
    /// `LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true`.
    pub permit_weak_master_key: bool,
    /// `litellm_settings.default_internal_user_params.user_role` (default
    /// `internal_user_viewer`): the role of users made at their first SSO sign-in.
    pub default_user_role: tollgate_domain::role::Role,
    /// One line each, naming the key, for the caller to log.
    pub warnings: Vec<String>,
}

/// A string that must never be printed: Debug shows "***".
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub routing_strategy: RoutingStrategy,
    /// `router_settings.num_retries`, else `litellm_settings.num_retries`, else 0.
    pub num_retries: u32,
    /// `router_settings.timeout`, else `litellm_settings.request_timeout`;
    /// None means the gateway's default.
    pub timeout_secs: Option<f64>,
    /// `[{"gpt-4": ["gpt-3.5"]}]`; `default_fallbacks` appear under `"*"`.
    pub fallbacks: Vec<(String, Vec<String>)>,
    pub context_window_fallbacks: Vec<(String, Vec<String>)>,
    pub allowed_fails: u32,
    pub cooldown_time_secs: f64,
    pub retry_after_secs: f64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            routing_strategy: RoutingStrategy::SimpleShuffle,
            num_retries: 0,
            timeout_secs: None,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            allowed_fails: 3,
            cooldown_time_secs: 5.0,
            retry_after_secs: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingStrategy {
    SimpleShuffle,
    LeastBusy,
    UsageBased,
    LatencyBased,
}

#[derive(Clone)]
pub struct Deployment {
    /// Position in `model_list`.
    pub index: usize,
    /// Public name; may be a wildcard pattern like "openai/*", "claude-*", "*".
    pub model_name: String,
    pub provider: Provider,
    /// Model id sent upstream, provider prefix stripped ("*" for "openai/*").
    pub upstream_model: String,
    /// Explicit or the provider's default; None only for mock deployments
    /// whose provider has no default base.
    pub api_base: Option<url::Url>,
    pub api_key: Option<ApiKey>,
    /// Azure defaults to "2024-10-21".
    pub api_version: Option<String>,
    pub organization: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub timeout_secs: Option<f64>,
    pub max_retries: Option<u32>,
    /// `litellm_params.drop_params`: overrides `litellm_settings.drop_params` for this deployment.
    pub drop_params: Option<bool>,
    /// From litellm_params, else model_info.
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    pub mock_response: Option<String>,
    /// Request params sent upstream unless the client sets them.
    pub default_params: serde_json::Map<String, serde_json::Value>,
    pub model_info: ModelInfo,
    /// A `vertex_ai/` deployment's project, location and service account (None when mocked).
    pub vertex: Option<tollgate_proxy::providers::vertex::Target>,
    /// A `bedrock/` deployment's AWS key pair and region; None for other providers (and mocks).
    pub aws: Option<AwsSettings>,
}

/// `api_base` may carry credentials, so Debug shows it redacted.
impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("index", &self.index)
            .field("model_name", &self.model_name)
            .field("provider", &self.provider)
            .field("upstream_model", &self.upstream_model)
            .field(
                "api_base",
                &self
                    .api_base
                    .as_ref()
                    .map(tollgate_proxy::deployment::redact_url),
            )
            .field("api_key", &self.api_key)
            .field("api_version", &self.api_version)
            .field("organization", &self.organization)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_retries", &self.max_retries)
            .field("drop_params", &self.drop_params)
            .field("input_cost_per_token", &self.input_cost_per_token)
            .field("output_cost_per_token", &self.output_cost_per_token)
            .field("mock_response", &self.mock_response)
            .field("default_params", &self.default_params)
            .field("model_info", &self.model_info)
            .field("vertex", &self.vertex)
            .field("aws", &self.aws)
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub id: Option<String>,
    pub mode: Option<String>,
    pub base_model: Option<String>,
    pub access_groups: Vec<String>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKey {
    Literal(Secret),
    /// From `os.environ/VAR`; `value` None when the variable is unset at load
    /// (calls to this deployment must then fail naming the var).
    Env {
        var: String,
        value: Option<Secret>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
    /// Carries the LiteLLM provider prefix, e.g. "groq", "hosted_vllm".
    OpenAiCompatible(&'static str),
    /// Google Vertex AI (`vertex_ai/`, also `vertex_ai_beta/`).
    VertexAi,
    Bedrock,
}
