"""The official `openai` Python SDK's Responses API (`client.responses`) against a running Tollgate.

Run by crates/tollgate/tests/openai_sdk.rs like test_openai_sdk.py (same models and variables):
the gateway passes POST /v1/responses through to the OpenAI deployment (gpt-4o-mini, the fake's
own Responses API) and translates it to and from chat completions for the Anthropic one.
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

TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
]


@pytest.fixture
def client():
    c = openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0, timeout=30)
    yield c
    c.close()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-3-5-sonnet"])
def test_responses_create(client, model):
    resp = client.responses.create(
        model=model, instructions="Be brief.", input="Say hello.", max_output_tokens=64, tools=TOOLS
    )
    assert resp.id.startswith("resp_")
    assert resp.object == "response"
    assert resp.status == "completed"
    assert resp.output_text.strip()
    assert resp.output[0].type == "message"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    assert resp.tools[0].name == "weather"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-3-5-sonnet"])
def test_responses_create_stream(client, model):
    stream = client.responses.create(model=model, input="Say hello.", max_output_tokens=64, stream=True)
    kinds, text, last = [], [], None
    with stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text.append(event.delta)
            last = event
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "".join(text).strip()
    assert last.response.output_text == "".join(text)
    assert last.response.usage is not None and last.response.usage.total_tokens > 0


def test_responses_stream_helper_accumulates(client):
    # The SDK's own accumulator checks that item ids and indices stay consistent.
    with client.responses.stream(model="gpt-4o-mini", input="Say hello.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas)


def test_responses_previous_response_id_reaches_openai(client):
    first = client.responses.create(model="gpt-4o-mini", input="hi")
    follow_up = client.responses.create(model="gpt-4o-mini", input="and?", previous_response_id=first.id)
    assert follow_up.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model="gpt-4o-mini", input="hi", previous_response_id="resp_123")
    assert "resp_123" in str(ei.value)


def test_responses_previous_response_id_is_bad_request_where_translated(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model="claude-3-5-sonnet", input="hi", previous_response_id="resp_123")
    assert "previous_response_id is not supported" in str(ei.value)


def test_responses_wrong_key_is_authentication_error():
    c = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        c.responses.create(model="gpt-4o-mini", input="hi")
    c.close()
