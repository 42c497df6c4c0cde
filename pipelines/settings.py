"""Process-wide settings, read from the environment (prefix ``VITRINE_``) or a ``.env`` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.state_logs import URL as STATE_URL


class Settings(BaseSettings):
    # secrets may come as files named like the variables in systemd's credentials directory (docs/operations.md)
    model_config = SettingsConfigDict(env_prefix="VITRINE_", env_file=".env", extra="ignore",
                                      secrets_dir=os.environ.get("CREDENTIALS_DIRECTORY"))

    fashion_mnist_dir: Path = Path("/usr/share/datasets/fashion-mnist")
    # Check the release's sha256 (off only for a custom set of IDX files in the same layout).
    fashion_mnist_verify: bool = True
    fashion_mnist_url: str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    data_dir: Path = Path("data")
    artifacts_dir: Path = Path("artifacts")
    # Validation: the job fails when more than this share of a table's rows is rejected.
    max_bad_share: float = Field(0.01, ge=0.0, le=1.0)
    log_level: str = "INFO"
    # The service's admin token: the nightly job's reload notice (``reload_url``) carries it.
    admin_token: str = ""
    # Shared with the replicas (serving's VITRINE_BUNDLE_KEY): every bundle published is signed with it.
    bundle_key: str | None = Field(None, min_length=16)
    # The service's shared live state (serving's VITRINE_STATE_URL): the nightly job reads the label
    # decisions and experiments from it (common/state_logs.py); unset = the files under artifacts_dir.
    state_url: str | None = Field(None, pattern=STATE_URL)


@lru_cache
def get_settings() -> Settings:
    return Settings()
