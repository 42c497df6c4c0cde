"""Only the project's own RequestError is a client error; any other exception is a 500 that names a
request id, with its traceback logged under that id."""

import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN


@pytest.fixture
def app_client(tiny_artifacts: Path):
    app = create_app(ServingSettings(artifacts_dir=tiny_artifacts, admin_token=TOKEN, candidates=50))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_an_internal_value_error_is_a_500_with_a_request_id(app_client: TestClient, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    bundle = app_client.app.state.service.bundle

    def broken(*a, **k):
        raise ValueError("operands could not be broadcast together")  # a numpy bug, not the client's

    monkeypatch.setattr(bundle, "user_vectors", broken)
    user = next(u for u, i in bundle.shoppers.row_of.items() if len(bundle.shoppers.history[i]))
    with caplog.at_level(logging.ERROR, logger="serving.errors"):
        r = app_client.post("/v1/recommendations", json={"user_id": user, "k": 3}, headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 500
    assert r.json()["request_id"] == "abc-123" and r.headers["X-Request-ID"] == "abc-123"
    assert "broadcast" not in r.text  # internals stay in the log
    rec = [x for x in caplog.records if "abc-123" in x.getMessage()]
    assert rec and rec[0].exc_info is not None  # the traceback is logged under the id


def test_a_request_error_keeps_its_status_and_reason(app_client: TestClient) -> None:
    r = app_client.post("/v1/recommendations", json={"categories": ["no-such-category"], "k": 3})
    assert r.status_code == 422 and "unknown categories" in r.json()["detail"]


def test_a_generated_request_id_when_none_or_an_unsafe_one_is_given(app_client: TestClient,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = app_client.app.state.service.bundle
    monkeypatch.setattr(bundle.image_model, "classify", lambda *a: (_ for _ in ()).throw(RuntimeError("onnx failed")))
    img = (np.random.default_rng(0).integers(0, 255, (28, 28))).astype(np.uint8)
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    r = app_client.post("/v1/images/classify", files={"image": ("x.png", buf.getvalue(), "image/png")},
                        headers={"X-Request-ID": "../../etc/passwd"})
    assert r.status_code == 500
    rid = r.json()["request_id"]
    assert len(rid) == 32 and rid.isalnum()
