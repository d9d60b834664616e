//! OpenAI's Responses API (`POST /v1/responses`) on top of the chat-completions pipeline.
//!
//! A deployment that speaks the Responses API itself (OpenAI, Azure) gets the request as it came
//! (`native`). For the others the translation is stateless: a Responses request becomes one chat
//! request, and the chat answer (or its stream of chunks) becomes a Response object (or its
//! stream of events). Nothing is stored, so what needs stored state is refused with a 400:
//! `previous_response_id`, `conversation`, `background`, saved `prompt`s, `item_reference`
//! input items and `file_id`s. `store: true` is accepted (it is the API's default) but the
//! Response is not kept; the echoed object says `store: false`.
//!
//! The translations are kept free of HTTP and gateway types so they can be tested on literal
//! JSON alone; `api` plugs them into the handler.

mod api;
mod error;
mod native;
mod object;
mod request;
mod response;
mod stream;

pub(crate) use api::responses;
