#!/usr/bin/env python3
"""Refreshes crates/ledger/data/prices.json, the price table compiled into Tollgate.

Source: LiteLLM's model price map, `model_prices_and_context_window.json` (the file LiteLLM
publishes in its repository and ships in its PyPI package as
`litellm/model_prices_and_context_window_backup.json`). Pass its path:

    python3 scripts/refresh-prices.py path/to/model_prices_and_context_window.json

Keeps the chat, completion, responses and embedding models of the providers Tollgate serves,
with only the fields Tollgate reads, sorted, so a refresh shows as a readable diff.
"""
import json
import sys
from pathlib import Path

PROVIDERS = {
    "openai", "text-completion-openai", "azure", "azure_text", "anthropic", "gemini",
    "vertex_ai-language-models", "vertex_ai-anthropic_models", "vertex_ai-embedding-models",
    "vertex_ai-text-models", "vertex_ai", "bedrock", "bedrock_converse", "mistral", "groq", "deepseek",
    "together_ai", "xai", "fireworks_ai", "openrouter", "cohere", "cohere_chat", "perplexity",
    "cerebras", "ollama",
}
MODES = {"chat", "completion", "responses", "embedding"}
FIELDS = [
    "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
    "cache_creation_input_token_cost", "max_tokens", "max_input_tokens", "max_output_tokens",
    "litellm_provider", "mode",
]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source = json.loads(Path(sys.argv[1]).read_text())
    out = {}
    for name, entry in source.items():
        if not isinstance(entry, dict) or name == "sample_spec":
            continue
        if entry.get("litellm_provider") not in PROVIDERS or entry.get("mode") not in MODES:
            continue
        if not isinstance(entry.get("input_cost_per_token"), (int, float)):
            continue
        out[name] = {k: entry[k] for k in FIELDS if k in entry and entry[k] is not None}
    target = Path(__file__).resolve().parent.parent / "crates/ledger/data/prices.json"
    target.write_text(json.dumps(dict(sorted(out.items())), indent=1, sort_keys=True) + "\n")
    print(f"{len(out)} models written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
