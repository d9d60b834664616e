//! The providers Tollgate speaks, keyed by LiteLLM's provider prefix.

use super::Provider;

pub(super) struct Spec {
    pub name: &'static str,
    pub provider: Provider,
    /// None: the deployment must set api_base.
    pub default_base: Option<&'static str>,
    /// Variables LiteLLM reads, in its order, when a deployment sets no api_key.
    pub key_env: &'static [&'static str],
    /// Local servers usually run keyless, so a missing key is not worth a warning.
    pub key_required: bool,
    /// Ollama serves its OpenAI API under /v1, but LiteLLM configs name the
    /// bare server (`http://host:11434`).
    pub append_v1_to_bare_base: bool,
}

const fn compat(
    name: &'static str,
    default_base: Option<&'static str>,
    key_env: &'static [&'static str],
    key_required: bool,
) -> Spec {
    Spec {
        name,
        provider: Provider::OpenAiCompatible(name),
        default_base,
        key_env,
        key_required,
        append_v1_to_bare_base: false,
    }
}

const fn ollama(name: &'static str) -> Spec {
    Spec {
        append_v1_to_bare_base: true,
        ..compat(
            name,
            Some("http://localhost:11434/v1"),
            &["OLLAMA_API_KEY"],
            false,
        )
    }
}

pub(super) const PROVIDERS: &[Spec] = &[
    Spec {
        name: "openai",
        provider: Provider::OpenAi,
        default_base: Some("https://api.openai.com/v1"),
        key_env: &["OPENAI_API_KEY"],
        key_required: true,
        append_v1_to_bare_base: false,
    },
    Spec {
        name: "azure",
        provider: Provider::Azure,
        default_base: None,
        key_env: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        key_required: true,
        append_v1_to_bare_base: false,
    },
    Spec {
        name: "anthropic",
        provider: Provider::Anthropic,
        default_base: Some("https://api.anthropic.com"),
        key_env: &["ANTHROPIC_API_KEY"],
        key_required: true,
        append_v1_to_bare_base: false,
    },
    Spec {
        name: "gemini",
        provider: Provider::Gemini,
        default_base: Some("https://generativelanguage.googleapis.com"),
        key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        key_required: true,
        append_v1_to_bare_base: false,
    },
    Spec {
        name: "bedrock",
        provider: Provider::Bedrock,
        // Per region: the loader makes it from the deployment's region.
        default_base: None,
        // Signed with an AWS key pair, read by the loader's Bedrock part.
        key_env: &[],
        key_required: false,
        append_v1_to_bare_base: false,
    },
    compat(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_KEY"],
        true,
    ),
    compat(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        &["MISTRAL_API_KEY"],
        true,
    ),
    compat(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        &["DEEPSEEK_API_KEY"],
        true,
    ),
    compat(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_KEY", "OR_API_KEY"],
        true,
    ),
    compat(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        &[
            "TOGETHER_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHERAI_API_KEY",
        ],
        true,
    ),
    compat("xai", Some("https://api.x.ai/v1"), &["XAI_API_KEY"], true),
    compat(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
        &[
            "FIREWORKS_API_KEY",
            "FIREWORKS_AI_API_KEY",
            "FIREWORKSAI_API_KEY",
            "FIREWORKS_AI_TOKEN",
        ],
        true,
    ),
    compat(
        "perplexity",
        Some("https://api.perplexity.ai"),
        &["PERPLEXITYAI_API_KEY"],
        true,
    ),
    compat(
        "deepinfra",
        Some("https://api.deepinfra.com/v1/openai"),
        &["DEEPINFRA_API_KEY"],
        true,
    ),
    compat(
        "cerebras",
        Some("https://api.cerebras.ai/v1"),
        &["CEREBRAS_API_KEY"],
        true,
    ),
    compat(
        "nvidia_nim",
        Some("https://integrate.api.nvidia.com/v1"),
        &["NVIDIA_NIM_API_KEY"],
        true,
    ),
    compat(
        "sambanova",
        Some("https://api.sambanova.ai/v1"),
        &["SAMBANOVA_API_KEY"],
        true,
    ),
    compat(
        "anyscale",
        Some("https://api.endpoints.anyscale.com/v1"),
        &["ANYSCALE_API_KEY"],
        true,
    ),
    ollama("ollama"),
    ollama("ollama_chat"),
    compat("hosted_vllm", None, &["HOSTED_VLLM_API_KEY"], false),
    compat("lm_studio", None, &["LM_STUDIO_API_KEY"], false),
    compat("litellm_proxy", None, &["LITELLM_PROXY_API_KEY"], false),
    compat("openai_like", None, &[], false),
    compat("custom_openai", None, &[], false),
    vertex("vertex_ai"),
    vertex("vertex_ai_beta"),
];

/// Vertex AI's host follows `vertex_location` and its calls carry service-account tokens, so
/// there is neither a fixed base nor a key (`config::vertex` reads the rest).
const fn vertex(name: &'static str) -> Spec {
    Spec {
        name,
        provider: Provider::VertexAi,
        default_base: None,
        key_env: &[],
        key_required: false,
        append_v1_to_bare_base: false,
    }
}

/// Bare model names LiteLLM recognises as OpenAI's without a prefix.
const BARE_OPENAI: &[&str] = &[
    "gpt-",
    "o1",
    "o3",
    "o4",
    "chatgpt-",
    "text-embedding-",
    "davinci",
    "babbage",
    "gpt-image",
    "whisper",
    "tts",
    "omni-moderation",
    "dall-e",
    "ft:gpt-",
];
const BARE_ANTHROPIC: &[&str] = &["claude-"];

pub(super) fn spec(name: &str) -> Option<&'static Spec> {
    PROVIDERS.iter().find(|s| s.name == name)
}

pub(super) enum ModelError {
    /// A bare name that is neither OpenAI's nor Anthropic's.
    NoProvider,
    Unsupported(String),
    /// `openai/` with nothing after the slash.
    EmptyModel,
}

/// Splits `litellm_params.model` into provider and upstream model id. Only the
/// first `/` splits, so `openrouter/anthropic/claude-3` keeps its tail.
pub(super) fn resolve(
    model: &str,
    custom_llm_provider: Option<&str>,
) -> Result<(&'static Spec, String), ModelError> {
    let (spec, upstream) = if let Some(custom) = custom_llm_provider {
        let spec = spec(custom).ok_or_else(|| ModelError::Unsupported(custom.to_string()))?;
        // LiteLLM strips the prefix only when it repeats the override.
        let upstream = match model.split_once('/') {
            Some((prefix, rest)) if prefix == custom => rest,
            _ => model,
        };
        (spec, upstream)
    } else if let Some((prefix, rest)) = model.split_once('/') {
        let spec = spec(prefix).ok_or_else(|| ModelError::Unsupported(prefix.to_string()))?;
        (spec, rest)
    } else {
        let name = if BARE_OPENAI.iter().any(|p| model.starts_with(p)) {
            "openai"
        } else if BARE_ANTHROPIC.iter().any(|p| model.starts_with(p)) {
            "anthropic"
        } else {
            return Err(ModelError::NoProvider);
        };
        (spec(name).ok_or(ModelError::NoProvider)?, model)
    };
    if upstream.is_empty() {
        return Err(ModelError::EmptyModel);
    }
    Ok((spec, upstream.to_string()))
}
