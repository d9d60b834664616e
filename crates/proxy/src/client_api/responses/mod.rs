//! OpenAI's Responses API (`POST /v1/responses`) on top of the chat-completions pipeline.
//!
//! The translation is stateless: a Responses request becomes one chat request, and the chat
//! answer (or its stream of chunks) becomes a Response object (or its stream of events).
//! Nothing is stored, so what needs stored state is refused with a 400 that says so:
//! `previous_response_id`, `conversation`, `background`, saved `prompt`s, `item_reference`
//! input items and `file_id`s. `store: true` is accepted (it is the API's default) but the
//! Response is not kept; the echoed object says `store: false`.
//!
//! Kept free of HTTP and gateway types so it can be tested on literal JSON alone.

// The handler wires these in; until then only the tests use them.
#![allow(dead_code, unused_imports)]

mod error;
mod object;
mod request;
mod response;
mod stream;

pub(crate) use error::stream_error_event;
pub(crate) use object::{response_id_for, RequestEcho};
pub(crate) use request::to_chat_request;
pub(crate) use response::from_chat_response;
pub(crate) use stream::StreamTranslator;
