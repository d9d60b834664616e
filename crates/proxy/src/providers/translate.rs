//! What every provider translation shares: its error type and the token counts it reads.

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

pub(crate) fn bad_request(msg: impl Into<String>) -> TranslateError {
    TranslateError::BadRequest(msg.into())
}

pub(crate) fn bad_upstream(msg: impl Into<String>) -> TranslateError {
    TranslateError::BadUpstream(msg.into())
}
