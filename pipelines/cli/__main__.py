"""``python -m pipelines.cli`` (what the nightly job's scheduler or a test can run without the script)."""

from pipelines.cli import app

app()
