//! What every provider translation shares: its error type, the token counts it reads, and
//! checks of request fields.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The caller's request can't be expressed for the provider; the message is shown to the client (400).
    #[error("{0}")]
    BadRequest(String),
    /// The upstream answered something we can't read (502 to the client).
    #[error("{0}")]
    BadUpstream(String),
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    /// The counts as the ledger records them (reported by the upstream, not estimated).
    pub fn into_domain(self) -> tollgate_domain::Usage {
        tollgate_domain::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
            estimated: false,
        }
    }
}

/// An optional positive integer field of a request.
pub(crate) fn positive_int(
    req: &Map<String, Value>,
    key: &str,
) -> Result<Option<u64>, TranslateError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(bad_request(format!("{key} must be a positive integer"))),
        },
    }
}

/// Copies an optional numeric field of the request into `out` under the provider's name `to`.
pub(crate) fn copy_number(
    req: &Map<String, Value>,
    key: &str,
    to: &str,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.is_number() => {
            out.insert(to.into(), v.clone());
            Ok(())
        }
        Some(_) => Err(bad_request(format!("{key} must be a number"))),
    }
}

pub(crate) fn bad_request(msg: impl Into<String>) -> TranslateError {
    TranslateError::BadRequest(msg.into())
}

pub(crate) fn bad_upstream(msg: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream(msg.into())
}
