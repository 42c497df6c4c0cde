"""The serving fixtures (a tiny published bundle, private copies of it) for the security suite."""

from tests.serving.conftest import artifacts, tiny_artifacts  # noqa: F401
