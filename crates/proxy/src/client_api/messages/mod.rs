//! Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) served over the
//! chat pipeline: a Messages request becomes a chat request, and the chat answer (whole or
//! streamed) becomes a Messages answer. Pure JSON in and out, so it is tested on literal bodies.

mod blocks;
mod count_tokens;
mod error;
mod request;
mod response;
mod stream;

pub(crate) use count_tokens::count_tokens;
pub(crate) use error::{error_body, stream_error_event};
pub(crate) use request::to_chat_request;
pub(crate) use response::{from_chat_response, message_id};
pub(crate) use stream::{sse, StreamTranslator};
