"""Property-based HTTP fuzzing with schemathesis: requests generated from the OpenAPI document
(valid and invalid, admin routes reached with the token) never get a 5xx, invalid ones are refused,
responses match their declared schemas, status codes, content types, headers and ``Allow``.

Every check runs but ``positive_data_acceptance``: three rules the service enforces cannot be
written in JSON Schema — a price range whose ``price_min`` is above its ``price_max``, an upload that
is not a decodable image, and a multipart ``null`` (the form encoding has none) — each a 422 with its
reason (docs/reliability.md)."""

import shutil
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from serving.app import create_app  # noqa: E402
from serving.reload import reload_current  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402
from serving.state import ServiceState  # noqa: E402
from tests.serving.conftest import TOKEN  # noqa: E402

app = create_app(ServingSettings(artifacts_dir=Path("/nonexistent"), admin_token=TOKEN))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _loaded(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The OpenAPI document needs no bundle; the calls do: load a private copy of the tiny one (the
    admin calls change it) into the app's state."""
    art = tmp_path_factory.mktemp("fuzz") / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    state = ServiceState(ServingSettings(artifacts_dir=art, admin_token=TOKEN, candidates=50))
    ok, detail = reload_current(state)
    assert ok, detail
    app.state.service = state


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformance(case) -> None:
    c = schemathesis.checks
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=[c.positive_data_acceptance])
