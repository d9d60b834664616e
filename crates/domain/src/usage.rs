//! Token usage of one call, as OpenAI reports it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Part of `prompt_tokens` served from the provider's prompt cache.
    pub cache_read_input_tokens: u64,
    /// Part of `prompt_tokens` written to the provider's prompt cache.
    pub cache_creation_input_tokens: u64,
    /// True when the upstream reported no usage and Tollgate counted the tokens itself.
    pub estimated: bool,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A deliberately simple token estimate for text whose tokens the upstream did not report:
/// about four bytes of English per BPE token, never less than one token for non-empty text.
/// Loading a real tokenizer costs tens of MiB of memory, more than the whole gateway may use.
pub fn estimate_tokens(text_bytes: usize) -> u64 {
    if text_bytes == 0 {
        0
    } else {
        (text_bytes as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_monotonic_and_nonzero_for_text() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
    }

    #[test]
    fn total_is_prompt_plus_completion() {
        let u = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            ..Usage::default()
        };
        assert_eq!(u.total_tokens(), 7);
    }
}
