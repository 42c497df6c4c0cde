"""A tiny published bundle (every model trained for seconds on the tiny shop) and apps over copies of it."""

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import ServingSettings

TOKEN = "test-admin-token"  # the admin role (serving/auth.py)
READ_TOKEN = "test-read-token-0123"  # the read role: the console, analytics, personal data
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture(scope="session")
def tiny_artifacts(tiny_shop: Path, tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bundle.versions import promote
    from pipelines.assemble import assemble_bundle

    art = tmp_path_factory.mktemp("artifacts")
    assemble_bundle(art, tiny_shop, tiny_models, version="20260101T000000Z")
    promote(art, "20260101T000000Z")
    return art


@pytest.fixture
def artifacts(tiny_artifacts: Path, tmp_path: Path) -> Path:
    """A private copy: tests that add, hide or reload must not leak into each other."""
    dst = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, dst)
    return dst


def make_client(artifacts: Path, **overrides) -> TestClient:
    """The app over ``artifacts`` with the test tokens. The events log is off unless asked for
    (``events=True``): many tests share the session's bundle, and logs written there would leak
    from one test into the next (the console reads what was served)."""
    settings = ServingSettings(**({"artifacts_dir": artifacts, "admin_token": TOKEN, "read_token": READ_TOKEN,
                                   "candidates": 50, "events": False} | overrides))
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path):
    """Read-only tests share one app over the session bundle (its OpenAPI document served)."""
    with make_client(tiny_artifacts, public_docs=True) as c:
        yield c
