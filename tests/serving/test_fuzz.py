"""Property-based HTTP fuzzing with schemathesis: requests generated from the OpenAPI document
(valid and invalid) never get a 5xx, and responses match their declared schemas."""

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
def _loaded(tiny_artifacts: Path) -> None:
    """The OpenAPI document needs no bundle; the calls do: load the tiny one into the app's state."""
    state = ServiceState(ServingSettings(artifacts_dir=tiny_artifacts, admin_token=TOKEN, candidates=50))
    ok, detail = reload_current(state)
    assert ok, detail
    app.state.service = state


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformance(case) -> None:
    case.call_and_validate(checks=[schemathesis.checks.not_a_server_error,
                                   schemathesis.checks.response_schema_conformance])
