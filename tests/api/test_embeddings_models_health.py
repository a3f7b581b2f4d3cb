"""Embeddings, model listing and health endpoints."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from tests.fakes.openai import FakeOpenAI
from tests.support.gateway import RunningGateway


def test_simulator_embeddings_default_base64(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it: the vectors must survive that.
    result = client.embeddings.create(model="sim-embed", input=["reset my password", "pizza"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 64 for d in result.data)
    assert math.isclose(sum(v * v for v in result.data[0].embedding), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens > 0


def test_embeddings_float_and_dimensions(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="sim-embed", input="hello", dimensions=16, encoding_format="float"
    )
    assert len(result.data[0].embedding) == 16


def test_similar_texts_embed_closer(client: openai.OpenAI) -> None:
    a, b, c = client.embeddings.create(
        model="sim-embed",
        input=["reset my account password", "reset the password", "best pizza in naples"],
    ).data
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a.embedding, b.embedding) > dot(a.embedding, c.embedding)


def test_embeddings_pass_through_to_openai_and_azure(
    client: openai.OpenAI, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = fake_openai
    result = client.embeddings.create(model="fakeoai/text-embed", input=["a", "b"])
    assert result.data[1].embedding == pytest.approx([0.2, 0.2, 0.3])
    assert fake.recorder.requests[-1]["model"] == "text-embed"
    result = client.embeddings.create(model="azure-embed", input="a")
    assert fake.recorder.paths[-1].startswith("/openai/deployments/text-embed/embeddings")
    assert result.data[0].embedding == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "bad",
    [
        {"input": ""},
        {"input": []},
        {"input": [""]},
        {"input": 3},
        {"input": "x", "encoding_format": "hex"},
        {"input": "x", "dimensions": -1},
    ],
)
def test_invalid_embedding_requests(gateway: RunningGateway, bad: dict[str, object]) -> None:
    response = httpx.post(
        gateway.v1 + "/embeddings",
        json={"model": "sim-embed", **bad},
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert response.status_code == 400
    param = response.json()["error"]["param"]  # `input[0]` names the item at fault
    assert param.split("[")[0] in {"input", "encoding_format", "dimensions"}


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:3] == ["fast", "failover", "no-failover"]
    assert "simulator/sim-small" in ids and "fakeoai/gpt-echo" in ids
    model = client.models.retrieve("fast")
    assert model.id == "fast" and model.owned_by == "simulator"
    assert client.models.retrieve("fakeoai/gpt-echo").owned_by == "fakeoai"


def test_health_and_readiness(gateway: RunningGateway) -> None:
    assert httpx.get(gateway.base_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.base_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    # The embedded queue: this gateway runs its jobs itself, so they can always be taken.
    assert ready.json()["status"] == "ready"
    jobs = ready.json()["jobs"]
    assert jobs["state"] == "ok" and jobs["queue"] == "embedded" and jobs["runs_here"] is True
    assert ready.json()["checks"]["jobs"].startswith("ok (run in this process;")
