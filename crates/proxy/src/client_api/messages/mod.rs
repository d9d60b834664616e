//! Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) served over the
//! chat pipeline. An Anthropic deployment gets the request as it came (`native`); for the others a
//! Messages request becomes a chat request, and the chat answer (whole or streamed) becomes a
//! Messages answer. The translations are pure JSON in and out, so they are
//! tested on literal bodies; `api` and `routes` plug them into the gateway.

mod api;
mod blocks;
mod count_tokens;
mod error;
mod native;
mod request;
mod response;
mod routes;
mod stream;

pub(crate) use routes::{messages, messages_count_tokens};
