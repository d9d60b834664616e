//! The hot path of Tollgate: authenticate → route → forward → stream → capture usage → record.
//! `providers/` translate wire formats; nothing here touches passwords or the UI.

pub mod admission;
pub mod alerts;
pub mod auth;
pub mod body;
pub(crate) mod client_api;
pub mod deployment;
pub mod error;
pub mod forward;
pub mod handlers;
pub mod keys;
pub mod limits;
pub mod metrics;
mod prompt_bound;
pub mod providers;
pub mod record;
pub mod router;
pub mod state;
pub mod stream;
pub mod upstream;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use state::{ProxySettings, ProxyState};

/// The OpenAI-compatible routes, with and without the `/v1` prefix as LiteLLM serves them.
pub fn routes(state: Arc<ProxyState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/completions", post(handlers::completions))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/embeddings", post(handlers::embeddings))
        .route("/v1/models", get(handlers::list_models))
        .route("/models", get(handlers::list_models))
        .route("/v1/models/{id}", get(handlers::get_model))
        .route("/models/{id}", get(handlers::get_model))
        // Anthropic's Messages API, for Claude Code and Anthropic's SDKs (ANTHROPIC_BASE_URL set
        // to the gateway, or to the gateway's /anthropic).
        .route("/v1/messages", post(client_api::messages::messages))
        .route(
            "/anthropic/v1/messages",
            post(client_api::messages::messages),
        )
        .route(
            "/v1/messages/count_tokens",
            post(client_api::messages::messages_count_tokens),
        )
        .route(
            "/anthropic/v1/messages/count_tokens",
            post(client_api::messages::messages_count_tokens),
        )
        // OpenAI's Responses API (the newer SDK calls and Codex), served through chat.
        .route("/v1/responses", post(client_api::responses::responses))
        .route("/responses", post(client_api::responses::responses))
        .with_state(state)
}
