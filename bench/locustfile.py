"""Load shapes for bench/serving_bench.py (closed loop: each simulated client sends its next request
as soon as the previous answer arrives). Request bodies come from VITRINE_BENCH_BODIES (JSON lines)."""

import json
import os
import random
from pathlib import Path

from locust import FastHttpUser, constant, task

_path = os.environ.get("VITRINE_BENCH_BODIES")
BODIES = [json.loads(line) for line in Path(_path).read_text().splitlines()] if _path else [{}]


class PingUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def ping(self) -> None:
        self.client.get("/v1/ping")


class RecommendUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def recommend(self) -> None:
        self.client.post("/v1/recommendations", json=random.choice(BODIES))
