//! Model prices in LiteLLM's `model_prices_and_context_window.json` format. Tollgate ships a
//! table of common models; a file in the same format can extend or override it.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// The list prices Tollgate ships, in LiteLLM's format.
const SHIPPED: &str = include_str!("../data/prices.json");

/// Prices in USD per token, as LiteLLM's map gives them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub max_input_tokens: Option<u64>,
    #[serde(default)]
    pub mode: Option<String>,
}

impl ModelPrice {
    /// A price is usable when at least the input price is known.
    pub fn is_priced(&self) -> bool {
        self.input_cost_per_token.is_some() || self.output_cost_per_token.is_some()
    }
}

/// Some entries of LiteLLM's map hold strings or floats where a count is expected; a bad value
/// there should cost us the limit, not the whole file.
fn lenient_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read price file {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("price file {file} is not a JSON object of model prices: {message}")]
    Format { file: String, message: String },
    #[error("price file {file}: model {model}: {message}")]
    BadPrice {
        file: String,
        model: String,
        message: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    by_name: foldhash::HashMap<String, ModelPrice>,
}

impl PriceTable {
    /// The table Tollgate ships.
    pub fn shipped() -> Result<PriceTable, PriceError> {
        let mut t = PriceTable::default();
        t.merge_json(SHIPPED, "built-in prices")?;
        Ok(t)
    }

    /// Adds (overriding) the entries of a file in LiteLLM's format.
    pub fn merge_file(&mut self, path: &Path) -> Result<usize, PriceError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            file: file.clone(),
            source,
        })?;
        self.merge_json(&text, &file)
    }

    pub fn merge_json(&mut self, text: &str, file: &str) -> Result<usize, PriceError> {
        // Entries stay raw until each is read into a ModelPrice: a whole Value tree of a large
        // price map would cost megabytes at start for nothing.
        let raw: HashMap<String, &serde_json::value::RawValue> = serde_json::from_str(text)
            .map_err(|e| PriceError::Format {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        let mut added = 0;
        for (model, value) in raw {
            // LiteLLM's map documents its own schema under this key.
            if model == "sample_spec" || !value.get().starts_with('{') {
                continue;
            }
            let price: ModelPrice =
                serde_json::from_str(value.get()).map_err(|e| PriceError::BadPrice {
                    file: file.to_string(),
                    model: model.clone(),
                    message: e.to_string(),
                })?;
            for (name, v) in [
                ("input_cost_per_token", price.input_cost_per_token),
                ("output_cost_per_token", price.output_cost_per_token),
                (
                    "cache_read_input_token_cost",
                    price.cache_read_input_token_cost,
                ),
                (
                    "cache_creation_input_token_cost",
                    price.cache_creation_input_token_cost,
                ),
            ] {
                if let Some(v) = v {
                    if !v.is_finite() || v < 0.0 {
                        return Err(PriceError::BadPrice {
                            file: file.to_string(),
                            model,
                            message: format!("{name} must be a finite number ≥ 0"),
                        });
                    }
                }
            }
            self.by_name.insert(model, price);
            added += 1;
        }
        Ok(added)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Looks a model up the way LiteLLM does: `provider/model` first, then the bare model name.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        if !provider.is_empty() {
            if let Some(p) = qualified(provider, model, |name| self.by_name.get(name)) {
                return Some(p);
            }
        }
        self.by_name.get(model)
    }
}

/// Calls `f` with `provider/model`, the way the table spells a provider's own names, built on
/// the stack when it is short: a call looks its prices up several times, and a `format!` each
/// time was an allocation each.
fn qualified<R>(provider: &str, model: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 128];
    let len = provider.len() + 1 + model.len();
    if len <= buf.len() {
        buf[..provider.len()].copy_from_slice(provider.as_bytes());
        buf[provider.len()] = b'/';
        buf[provider.len() + 1..len].copy_from_slice(model.as_bytes());
        // Two whole strings and an ASCII slash: always UTF-8.
        if let Ok(name) = std::str::from_utf8(&buf[..len]) {
            return f(name);
        }
    }
    f(&format!("{provider}/{model}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_joined_on_the_stack_or_the_heap_alike() {
        let long = "m".repeat(200);
        for (provider, model) in [
            ("openai", "gpt-4o"),
            ("vertex_ai", "é/ü"),
            ("x", long.as_str()),
        ] {
            assert_eq!(
                qualified(provider, model, str::to_string),
                format!("{provider}/{model}")
            );
        }
    }

    #[test]
    fn shipped_table_has_common_models() {
        let t = PriceTable::shipped().unwrap();
        let p = t.lookup("openai", "gpt-4o-mini").unwrap();
        assert!(p.input_cost_per_token.unwrap() > 0.0);
        assert!(t.lookup("azure", "gpt-4o").is_some());
        assert!(t.lookup("openai", "no-such-model").is_none());
    }

    #[test]
    fn reads_litellm_price_map() {
        // The shipped table is a slice of LiteLLM's price map in its own format
        // (scripts/refresh-prices.py), so reading it as a file exercises the --prices path.
        let mut t = PriceTable::default();
        let n = t
            .merge_file(Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/prices.json"
            )))
            .unwrap();
        assert!(n > 1000, "only {n} models read");
        assert!(t.lookup("anthropic", "claude-sonnet-4-5").is_some());
        assert!(t.lookup("gemini", "gemini-2.5-flash").is_some());
        assert!(t.lookup("bedrock", "amazon.nova-lite-v1:0").is_some());
        // The Bedrock ids deployments name: plain, cross-region, embeddings, and regional names.
        for id in [
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "amazon.titan-embed-text-v1",
            "amazon.titan-embed-text-v2:0",
            "cohere.embed-english-v3",
            "cohere.embed-multilingual-v3",
            "us-gov-east-1/amazon.titan-embed-text-v1",
        ] {
            assert!(
                t.lookup("bedrock", id).is_some_and(|p| p.is_priced()),
                "{id}"
            );
        }
    }

    #[test]
    fn provider_prefixed_entry_wins() {
        let mut t = PriceTable::default();
        t.merge_json(
            r#"{"m": {"input_cost_per_token": 1.0}, "azure/m": {"input_cost_per_token": 2.0}}"#,
            "t",
        )
        .unwrap();
        assert_eq!(
            t.lookup("azure", "m").unwrap().input_cost_per_token,
            Some(2.0)
        );
        assert_eq!(
            t.lookup("openai", "m").unwrap().input_cost_per_token,
            Some(1.0)
        );
    }

    #[test]
    fn refuses_negative_prices() {
        let mut t = PriceTable::default();
        let err = t
            .merge_json(r#"{"m": {"input_cost_per_token": -1.0}}"#, "t")
            .unwrap_err();
        assert!(err.to_string().contains("input_cost_per_token"));
    }
}
