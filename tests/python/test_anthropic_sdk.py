"""The official `anthropic` Python SDK against a running Tollgate's Messages API.

Run by crates/tollgate/tests/anthropic_messages.rs, which starts the gateway in front of a fake
upstream and sets TOLLGATE_ANTHROPIC_BASE_URL (http://127.0.0.1:PORT, the SDK adds /v1/messages)
and TOLLGATE_API_KEY (the master key). Models in that config: gpt-4o-mini (fake OpenAI upstream),
claude-sonnet (fake Anthropic upstream, which gets the request as sent), gpt-tools (streams a text and two tool calls) and
always-429 (the upstream always answers 429).
"""

import os

import pytest

# Skipped, not failed, where only the openai SDK is installed; the Rust test refuses skips.
anthropic = pytest.importorskip("anthropic")

BASE_URL = os.environ.get("TOLLGATE_ANTHROPIC_BASE_URL")
API_KEY = os.environ.get("TOLLGATE_API_KEY")

pytestmark = pytest.mark.skipif(
    not BASE_URL or not API_KEY,
    reason="set TOLLGATE_ANTHROPIC_BASE_URL and TOLLGATE_API_KEY to a running gateway",
)

MESSAGES = [{"role": "user", "content": "Say hello."}]


def make_client(api_key=None):
    return anthropic.Anthropic(
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


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet"])
def test_create(client, model):
    msg = client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    assert msg.type == "message"
    assert msg.role == "assistant"
    # Translated answers name the model as the caller did; Anthropic's own answer names its model.
    assert msg.model == {"gpt-4o-mini": "gpt-4o-mini", "claude-sonnet": "claude-sonnet-4-5"}[model]
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "end_turn"
    assert len(msg.content) == 1 and msg.content[0].type == "text"
    assert msg.content[0].text.startswith("Hello from")
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet"])
def test_stream_helper(client, model):
    with client.messages.stream(
        model=model, max_tokens=64, system="Be brief.", messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello from")
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0


def test_raw_stream_event_order(client):
    events = list(
        client.messages.create(
            model="gpt-4o-mini", max_tokens=64, messages=MESSAGES, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}


def test_streamed_tool_calls(client):
    tools = [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    with client.messages.stream(
        model="gpt-tools",
        max_tokens=256,
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
        tools=tools,
        tool_choice={"type": "auto"},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Let me check."
    assert final.content[1].name == "get_weather"
    assert final.content[1].input == {"city": "Paris"}
    assert final.content[2].name == "get_time"
    assert final.content[2].input == {}
    assert final.stop_reason == "tool_use"

    # The answer goes back as tool results; the gateway accepts the whole conversation.
    follow_up = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=64,
        tools=tools,
        messages=[
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": final.content[1].id, "content": "18C"},
                    {"type": "tool_result", "tool_use_id": final.content[2].id, "content": "noon"},
                ],
            },
        ],
    )
    assert follow_up.content[0].text.startswith("Hello from")


def test_count_tokens(client):
    count = client.messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES)
    assert count.input_tokens > 0


def test_errors_are_the_sdk_exceptions(client):
    with pytest.raises(anthropic.AuthenticationError):
        make_client(api_key="sk-wrong").messages.create(
            model="gpt-4o-mini", max_tokens=8, messages=MESSAGES
        )
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="always-429", max_tokens=8, messages=MESSAGES)
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="gpt-4o-mini",
            max_tokens=8,
            messages=MESSAGES,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "web_search_20250305" in e.value.body["error"]["message"]
    # An unknown model is a 400 from the gateway, as on its chat route.
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="no-such-model", max_tokens=8, messages=MESSAGES)
    assert e.value.body["error"]["type"] == "invalid_request_error"


def test_thinking_reaches_an_anthropic_deployment_and_is_refused_elsewhere(client):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(model="claude-sonnet", max_tokens=2048, thinking=thinking, messages=MESSAGES)
    assert msg.content[0].text.startswith("Hello from")
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.create(model="gpt-4o-mini", max_tokens=2048, thinking=thinking, messages=MESSAGES)
    assert "thinking" in str(ei.value)
