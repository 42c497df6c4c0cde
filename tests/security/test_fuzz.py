"""Property-based HTTP fuzzing with schemathesis, every check on: requests generated from the
OpenAPI document (valid and invalid) as the public, the read role and the admin role never get a
5xx, invalid ones are refused, responses match their declared schemas, status codes, content types,
headers and ``Allow``; without the role an operation needs, the answer is 401 or 403.

Every check but ``positive_data_acceptance``: the public and read roles are refused on purpose
where the document declares a token, and three rules cannot be written in JSON Schema — a price
range whose ``price_min`` is above its ``price_max``, an upload that is not a decodable image, and a
multipart ``null`` (the form encoding has none) — each a 422 with its reason (docs/security.md).
With a token, schemathesis's own auth checks (invalid or missing credentials accepted) run in the
public pass only: it takes a token set on the case for generated auth."""

import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from serving.app import create_app
from serving.reload import reload_current
from serving.settings import ServingSettings
from serving.state import ServiceState
from tests.serving.conftest import READ_TOKEN, TOKEN

TOKENS = {"admin_token": TOKEN, "read_token": READ_TOKEN}
app = create_app(ServingSettings(artifacts_dir=Path("/nonexistent"), public_docs=True, **TOKENS))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


HEADER = ParameterLocation.HEADER
TOKENS_BY_ROLE = {"public": None, "read": READ_TOKEN, "admin": TOKEN}


@pytest.fixture(scope="module", autouse=True)
def _loaded(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The OpenAPI document needs no bundle; the calls do: load a private copy of the tiny one (the
    admin calls change it) into the app's state."""
    art = tmp_path_factory.mktemp("fuzz") / "artifacts"
    shutil.copytree(tiny_artifacts, art)
    state = ServiceState(ServingSettings(artifacts_dir=art, candidates=50, public_docs=True, **TOKENS))
    ok, detail = reload_current(state)
    assert ok, detail
    app.state.service = state


def _check(case, who: str) -> None:
    needs_token = bool(case.operation.definition.raw.get("security"))
    token = TOKENS_BY_ROLE[who]
    excluded = [schemathesis.checks.positive_data_acceptance]  # the three rules JSON Schema cannot say; and as
    # the public or read role, a refusal of valid data where the document declares a token is the point
    if token is not None:
        # with a real token set on the case, schemathesis takes it for generated auth: its auth checks
        # (invalid or missing credentials accepted) are the public run's, where they hold
        excluded += [schemathesis.checks.ignored_auth, schemathesis.checks.missing_required_header]
        if needs_token and case.meta is not None and case.meta.is_negative_at(HEADER):
            excluded.append(schemathesis.checks.negative_data_rejection)  # our token repaired the mutated header
    if token is not None:  # the role's token, over any Authorization value the case generated
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    response = case.call_and_validate(excluded_checks=excluded)
    assert response.status_code < 500
    if needs_token and who == "public":
        assert 400 <= response.status_code < 500, response.text  # never served without a token
    if needs_token and who != "public":
        assert response.status_code != 401, response.text  # the role's token reached the route


@pytest.mark.parametrize("who", list(TOKENS_BY_ROLE))
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformance(case, who: str) -> None:
    _check(case, who)
