"""The official `openai` Python SDK against a running Tollgate.

Run by crates/tollgate/tests/openai_sdk.rs, which starts the gateway in front of a fake upstream and
sets TOLLGATE_BASE_URL (http://127.0.0.1:PORT/v1) and TOLLGATE_API_KEY (the master key). Models in
that config: gpt-4o-mini and text-embedding-3-small (fake OpenAI upstream), always-429 (the upstream
always answers 429 with retry-after: 0) and claude-3-5-sonnet (fake Anthropic upstream).
"""

import os

import openai
import pytest

BASE_URL = os.environ.get("TOLLGATE_BASE_URL")
API_KEY = os.environ.get("TOLLGATE_API_KEY")

pytestmark = pytest.mark.skipif(
    not BASE_URL or not API_KEY,
    reason="set TOLLGATE_BASE_URL and TOLLGATE_API_KEY to a running gateway",
)

MESSAGES = [{"role": "user", "content": "Say hello."}]


def make_client(api_key=None):
    return openai.OpenAI(
        base_url=BASE_URL,
        api_key=api_key if api_key is not None else API_KEY,
        max_retries=0,
        timeout=30,
    )


@pytest.fixture
def client():
    c = make_client()
    yield c
    c.close()


def collect_stream(stream):
    """Reads a chat stream to its end; returns (chunks, concatenated content)."""
    chunks = []
    text = []
    with stream:
        for chunk in stream:
            chunks.append(chunk)
            for choice in chunk.choices:
                if choice.delta is not None and choice.delta.content:
                    text.append(choice.delta.content)
    return chunks, "".join(text)


def test_chat_completion(client):
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices, resp
    assert resp.choices[0].message.content
    assert resp.choices[0].message.role == "assistant"
    assert resp.usage is not None
    assert resp.usage.total_tokens > 0


def test_chat_stream(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks, text = collect_stream(stream)
    assert len(chunks) >= 3
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], finishes
    # Without stream_options.include_usage there must be no usage-only chunk.
    assert all(c.choices != [] for c in chunks), [c.model_dump() for c in chunks]


def test_chat_stream_include_usage(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, text = collect_stream(stream)
    assert text.strip()
    last = chunks[-1]
    assert last.usage is not None, last.model_dump()
    assert last.usage.total_tokens > 0
    assert last.choices == []


def test_chat_stream_context_manager_closes_early(client):
    # Leaving the stream before its end must not break the client or the next request.
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with stream:
        first = next(iter(stream))
        assert first.object == "chat.completion.chunk"
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices[0].message.content


def test_embeddings(client):
    resp = client.embeddings.create(model="text-embedding-3-small", input="The quick brown fox")
    assert len(resp.data) == 1
    vec = resp.data[0].embedding
    assert isinstance(vec, list) and len(vec) > 0
    assert all(isinstance(x, float) for x in vec)


def test_embeddings_batch(client):
    resp = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert len(resp.data) >= 1
    assert resp.data[0].embedding


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids, ids


def test_wrong_key_is_authentication_error():
    c = make_client(api_key="sk-definitely-not-the-master-key")
    try:
        with pytest.raises(openai.AuthenticationError) as ei:
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert ei.value.status_code == 401
    finally:
        c.close()


def test_upstream_429_is_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model="always-429", messages=MESSAGES)
    assert ei.value.status_code == 429


def test_unknown_model_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="no-such-model-anywhere", messages=MESSAGES)
    assert ei.value.status_code == 400


def test_client_side_api_base_is_rejected(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_body={"api_base": "http://169.254.169.254"},
        )
    assert ei.value.status_code == 400


def test_anthropic_chat(client):
    resp = client.chat.completions.create(model="claude-3-5-sonnet", messages=MESSAGES, max_tokens=64)
    assert resp.choices[0].message.content
    assert resp.choices[0].message.role == "assistant"
    assert resp.usage is not None and resp.usage.total_tokens > 0


def test_anthropic_chat_stream(client):
    stream = client.chat.completions.create(
        model="claude-3-5-sonnet", messages=MESSAGES, max_tokens=64, stream=True
    )
    chunks, text = collect_stream(stream)
    assert chunks
    assert text.strip()
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
