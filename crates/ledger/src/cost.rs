//! The cost of one call: computed once from its usage and the deployment's price, rounded to
//! nano-USD.

use tollgate_domain::{NanoUsd, Usage};

use crate::prices::ModelPrice;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallCost {
    pub amount: NanoUsd,
    /// False when no price was known: the amount is then zero but must not be read as free.
    pub priced: bool,
}

pub fn cost_of(usage: &Usage, price: Option<&ModelPrice>) -> CallCost {
    let Some(price) = price.filter(|p| p.is_priced()) else {
        return CallCost {
            amount: NanoUsd::ZERO,
            priced: false,
        };
    };
    let input = price.input_cost_per_token.unwrap_or(0.0);
    let output = price.output_cost_per_token.unwrap_or(0.0);
    // Cached prompt tokens are part of prompt_tokens, billed at their own rate when known.
    let cache_read = usage.cache_read_input_tokens.min(usage.prompt_tokens);
    let cache_write = usage
        .cache_creation_input_tokens
        .min(usage.prompt_tokens - cache_read);
    let plain_prompt = usage.prompt_tokens - cache_read - cache_write;
    let usd = plain_prompt as f64 * input
        + cache_read as f64 * price.cache_read_input_token_cost.unwrap_or(input)
        + cache_write as f64 * price.cache_creation_input_token_cost.unwrap_or(input)
        + usage.completion_tokens as f64 * output;
    CallCost {
        amount: NanoUsd::from_usd(usd),
        priced: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> ModelPrice {
        ModelPrice {
            input_cost_per_token: Some(0.000_000_15),
            output_cost_per_token: Some(0.000_000_6),
            cache_read_input_token_cost: Some(0.000_000_075),
            ..ModelPrice::default()
        }
    }

    #[test]
    fn prices_prompt_and_completion() {
        let u = Usage {
            prompt_tokens: 1000,
            completion_tokens: 500,
            ..Usage::default()
        };
        // 1000 * 0.15e-6 + 500 * 0.6e-6 = 0.00045 USD
        assert_eq!(cost_of(&u, Some(&price())).amount, NanoUsd(450_000));
    }

    #[test]
    fn cached_tokens_use_their_rate() {
        let u = Usage {
            prompt_tokens: 1000,
            cache_read_input_tokens: 400,
            ..Usage::default()
        };
        // 600 * 0.15e-6 + 400 * 0.075e-6 = 0.00012
        assert_eq!(cost_of(&u, Some(&price())).amount, NanoUsd(120_000));
    }

    #[test]
    fn unpriced_is_flagged() {
        let u = Usage {
            prompt_tokens: 10,
            ..Usage::default()
        };
        let c = cost_of(&u, None);
        assert!(!c.priced);
        assert_eq!(c.amount, NanoUsd::ZERO);
        assert!(!cost_of(&u, Some(&ModelPrice::default())).priced);
    }
}
