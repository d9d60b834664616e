//! Google Vertex AI (LiteLLM's `vertex_ai/`): Gemini models through `generateContent` and
//! `predict` (embeddings), Claude models through `rawPredict`, both authenticated with a
//! service account's short-lived access tokens.
//!
//! The bodies, answers and stream events are those of the Gemini and Anthropic providers; this
//! folder adds where calls go (`address`), the service account (`credentials`, `jwt`, `token`) and the
//! embedding translation Vertex has of its own (`embeddings`).

mod address;
mod credentials;
mod embeddings;
mod jwt;
mod provider;
mod token;

use std::sync::Arc;

pub use address::{valid_location, DEFAULT_LOCATION};
pub use credentials::{Credentials, CredentialsError};
pub(crate) use provider::VertexAi;

/// Where a Vertex AI deployment's calls go and who they are made as.
#[derive(Clone)]
pub struct Target {
    pub project: String,
    pub location: String,
    /// Shared by the deployments using the same account, so they share its tokens.
    pub credentials: Arc<Credentials>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("client_email", &self.credentials.client_email())
            .finish()
    }
}

/// Which API a Vertex model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Gemini,
    Claude,
}

/// Models LiteLLM serves on Vertex through other APIs (partner models, Model Garden, Gemma, BGE,
/// agent engines), which Tollgate does not speak.
const OTHER_APIS: &[&str] = &[
    "meta/",
    "deepseek-ai",
    "mistral",
    "codestral",
    "jamba",
    "qwen",
    "openai/gpt-oss-",
    "minimaxai/",
    "moonshotai/",
    "zai-org/",
    "google/gemma-",
];

/// The API `model` speaks on Vertex, or why Tollgate cannot call it. Every other model speaks
/// Gemini's, as with LiteLLM.
pub(crate) fn family(model: &str) -> Result<Family, String> {
    if model.starts_with("claude") {
        return Ok(Family::Claude);
    }
    let other = OTHER_APIS.iter().any(|p| model.starts_with(p))
        || model.contains("agent_engine/")
        || model.to_ascii_lowercase().contains("bge")
        || model.contains("gemma/")
        || model.contains("openai")
        || model.starts_with("xai/");
    if other {
        return Err(format!(
            "Vertex AI model '{model}' is not supported by Tollgate: only Gemini (and other \
             generateContent) models, Google's text embedding models and Claude are"
        ));
    }
    Ok(Family::Gemini)
}

/// Why a configured upstream model cannot be served, if it cannot (checked when the config is
/// loaded, so the start fails rather than every call).
pub fn unsupported_model(model: &str) -> Option<String> {
    family(model).err()
}

/// The model as the URL names it: `gemini/<id>` (a model tuned in Gemini's format) is called by
/// its id.
fn model_in_url(model: &str) -> &str {
    if model.contains("gemini/") {
        model.rsplit('/').next().unwrap_or(model)
    } else {
        model
    }
}

/// A service-account key made once per test run, as Google's JSON key files hold it.
#[cfg(test)]
pub(crate) mod test_key {
    use std::sync::OnceLock;

    use base64::Engine;
    use rsa::pkcs8::EncodePrivateKey;

    fn pem() -> &'static str {
        static PEM: OnceLock<String> = OnceLock::new();
        PEM.get_or_init(|| {
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            let der = key.to_pkcs8_der().unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            )
        })
    }

    pub(crate) fn service_account_json() -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "test-key-1",
            "private_key": pem(),
            "client_email": "tollgate@test-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:9/token",
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_told_apart_as_litellm_does() {
        for m in [
            "gemini-2.5-flash",
            "gemini-2.0-flash-001",
            "text-embedding-005",
            "gemini-embedding-001",
            "4965075652664360960",
            "chat-bison",
        ] {
            assert_eq!(family(m), Ok(Family::Gemini), "{m}");
        }
        for m in ["claude-sonnet-4-5@20250929", "claude-3-5-haiku"] {
            assert_eq!(family(m), Ok(Family::Claude), "{m}");
        }
        for m in [
            "meta/llama-3.1-405b-instruct-maas",
            "mistral-large@2407",
            "jamba-1.5-large",
            "openai/gpt-oss-120b-maas",
            "xai/grok-4",
            "gemma/gemma-3-12b-it",
            "bge-large-en",
        ] {
            assert!(unsupported_model(m).is_some(), "{m}");
        }
        assert!(unsupported_model("gemini-2.5-pro").is_none());
    }

    #[test]
    fn tuned_gemini_models_are_called_by_id() {
        assert_eq!(model_in_url("gemini/1234567890"), "1234567890");
        assert_eq!(model_in_url("gemini-2.5-pro"), "gemini-2.5-pro");
    }

    #[test]
    fn debug_shows_no_key() {
        let creds = Credentials::from_json(&test_key::service_account_json()).unwrap();
        let t = Target {
            project: "p".into(),
            location: "us-central1".into(),
            credentials: Arc::new(creds),
        };
        let shown = format!("{t:?} {:?}", t.credentials);
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("tollgate@test-project.iam.gserviceaccount.com"));
    }
}
