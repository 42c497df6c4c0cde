"""Operating the system: `vitrine serve`, `vitrine nightly`, `vitrine canary`, `vitrine demo` and
`vitrine simulate`."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from bundle.versions import current_version
from common.threads import environment, plan
from pipelines.cli.common import Artifacts, DataDir, artifacts_dir, console, fail
from pipelines.cli.data import fashion_shop
from pipelines.errors import EXIT_ERROR, NightlyError
from pipelines.nightly import NightlyConfig, run_nightly
from pipelines.simulate import ARMS, SimConfig, simulate
from serving.settings import ServingSettings
from serving.workers import run as serve_workers

log = logging.getLogger("vitrine")
CPU_CONFIG = Path(__file__).parents[1] / "configs" / "nightly-cpu.yaml"


def serve(
    artifacts: Artifacts = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(min=0, help="Server processes, each with its own socket and the bundle "
                                                  "loaded; 0 = one per core.")] = 1,
    admin_token: Annotated[str | None, typer.Option(envvar="VITRINE_ADMIN_TOKEN", help="Enables the admin role "
                                                    "(writes); prefer the variable or a credentials file.")] = None,
    watch: Annotated[float, typer.Option(help="Poll CURRENT every N seconds and reload on change (0 = off).")] = 0.0,
) -> None:
    """Start the HTTP service on the bundle CURRENT names. The console and analytics need the read role
    (VITRINE_READ_TOKEN or the admin token, docs/security.md); /docs with VITRINE_PUBLIC_DOCS=true."""
    artifacts = artifacts_dir(artifacts)
    if current_version(artifacts) is None:
        console.print(f"[yellow]warning:[/] {artifacts / 'CURRENT'} names no bundle yet; /readyz stays 503 until one "
                      "is promoted and reloaded")
    # The workers build their app from the serving settings (serving/settings.py), i.e. from these variables.
    os.environ["VITRINE_ARTIFACTS_DIR"] = str(artifacts)
    os.environ["VITRINE_WATCH_INTERVAL_S"] = str(watch)
    # Each worker's pools get its share of the cores; set before uvicorn starts them, so the native
    # libraries read the sizes when they load (common/threads.py; create_app applies them again).
    try:
        settings = ServingSettings()
    except ValueError as e:  # pydantic's ValidationError: name the bad variable in one line
        raise fail(f"bad VITRINE_* setting: {e}".replace("\n", " "), 2) from e
    pools = plan(workers, ort=settings.ort_threads, faiss=settings.faiss_threads)
    os.environ.update(environment(pools))
    console.print(f"thread pools: {pools.describe()}")
    if pools.workers < pools.cores:
        console.print(f"note: a worker runs one batch at a time on one core; --workers {pools.cores} (or 0) uses "
                      "them all")
    if admin_token:
        os.environ["VITRINE_ADMIN_TOKEN"] = admin_token
    serve_workers("serving.app:create_app", host=host, port=port, workers=pools.workers, log_level="warning",
                  access_log=False)


def nightly(
    data: DataDir = Path("data/fashion-shop"),
    artifacts: Artifacts = None,
    config: Annotated[Path | None, typer.Option(help="YAML with NightlyConfig fields, e.g. "
                                                     "pipelines/configs/nightly-cpu.yaml.")] = None,
    force: Annotated[bool, typer.Option(help="Publish even when the quality gate refuses (logged).")] = False,
) -> None:
    """Validate, train, export, build indexes, gate, publish, reload, report. Re-running after a crash
    resumes at the first incomplete step. Exit codes: 0 published, 1 error, 2 bad data, 3 refused by
    the quality gate, 75 another run holds the lock."""
    try:
        cfg = NightlyConfig.from_yaml(config)
    except (ValueError, OSError) as e:
        raise fail(str(e), 2) from e
    try:
        s = run_nightly(data, artifacts_dir(artifacts), cfg, force=force)
    except NightlyError as e:
        raise fail(str(e), e.code) from e
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        log.exception("nightly run failed")
        raise fail(str(e), EXIT_ERROR) from e
    for st in s["steps"]:
        console.print(f"  {st['step']:<10} {st['status']:<16} {st['seconds']:>7.1f} s")
    for d in s.get("canary_decisions", []):
        console.print(f"canary {d['experiment_id']} ({d['challenger']}): {d['status']}: {d['reason']}")
    if s.get("canary"):
        c = s["canary"]
        console.print(f"{s['status']}: {s['version']} {'challenges' if c['status'] == 'running' else 'not started:'} "
                      f"{c.get('control') or c.get('reason')} ({s['gate']['reason']}); report: {s['report']}")
    else:
        console.print(f"published {s['version']} ({s['gate']['reason']}); report: {s['report']}")


def canary(
    artifacts: Artifacts = None,
    config: Annotated[Path | None, typer.Option(help="The nightly YAML (its reload_url and bundle_store are used "
                                                     "to publish a promoted canary).")] = None,
) -> None:
    """Decide the running nightly canaries now (docs/experiments.md): promote, roll back, or keep running.
    The nightly job does the same at its start; this is for a scheduler between nights."""
    from pipelines.canary import decide_canaries
    from pipelines.nightly import publish

    try:
        cfg = NightlyConfig.from_yaml(config)
    except (ValueError, OSError) as e:
        raise fail(str(e), 2) from e
    art = artifacts_dir(artifacts)
    try:
        decisions = decide_canaries(art, lambda v: publish(art, v, cfg))
    except NightlyError as e:
        raise fail(str(e), e.code) from e
    if not decisions:
        console.print("no canary running")
    for d in decisions:
        console.print(f"canary {d['experiment_id']} ({d['challenger']} against {d['control']}): {d['status']}: "
                      f"{d['reason']}")


def demo(
    data: Annotated[Path, typer.Option(help="Where the fashion-shop dataset lives.")] = Path("data/fashion-shop"),
    artifacts: Artifacts = None,
    port: int = 8000,
    serve_it: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")] = True,
) -> None:
    """The main job: build fashion-shop (when missing; with its funnels, so every placement has
    something to show), run the nightly pipeline with the CPU-sized config (CUDA used when present),
    and serve the result on http://127.0.0.1:PORT."""
    artifacts = artifacts_dir(artifacts)
    t0 = time.perf_counter()
    if not (data / "events.parquet").is_file():
        fashion_shop(out=data, funnels=True)
    else:
        console.print(f"fashion-shop already in {data}")
    try:
        s = run_nightly(data, artifacts, NightlyConfig.from_yaml(CPU_CONFIG))
        console.print(f"nightly: published {s['version']} in {time.perf_counter() - t0:.0f} s")
    except NightlyError as e:
        if current_version(artifacts) is None:
            raise fail(str(e), e.code) from e
        console.print(f"[yellow]nightly did not publish ({e}); serving {current_version(artifacts)}[/]")
    shopper = pd.read_parquet(data / "events.parquet", columns=["user_id"])["user_id"].iloc[-1]
    item = pd.read_parquet(data / "items.parquet", columns=["item_id", "image"]).iloc[0]
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"user_id": str(shopper), "k": 5})
    console.print(f"ready in {time.perf_counter() - t0:.0f} s. Try:\n"
                  f"  open {base}/  (the storefront)   {base}/merch  (the merchandisers' console)   {base}/docs\n"
                  f"  curl -s -X POST {base}/v1/recommendations -H 'content-type: application/json' -d '{body}'\n"
                  f"  curl -s -X POST {base}/v1/images/classify -F image=@{data / item['image']}\n"
                  f"  curl -s '{base}/v1/items/{item['item_id']}/similar?by=image&k=5'\n"
                  f"  the nightly report (Markdown and HTML): {artifacts / 'reports'}/")
    if serve_it:
        # The demo's own tokens (unless the environment gives them): the console needs a login, and
        # the storefront lists shoppers to shop as (personal data: only in the demo).
        read = os.environ.setdefault("VITRINE_READ_TOKEN", secrets.token_urlsafe(18))
        admin = os.environ.setdefault("VITRINE_ADMIN_TOKEN", secrets.token_urlsafe(24))
        os.environ.setdefault("VITRINE_DEMO_SHOPPERS", "true")
        os.environ.setdefault("VITRINE_PUBLIC_DOCS", "true")
        console.print(f"  console login ({base}/merch/login): read token {read}  admin token {admin}")
        serve(artifacts=artifacts, port=port)


def simulate_shoppers(
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    data: Annotated[Path, typer.Option(help="A fashion-shop dataset (its truth/ holds the shoppers' tastes).")]
    = Path("data/fashion-shop"),
    sessions: Annotated[int, typer.Option(min=1, max=10_000_000)] = 2_000,
    seed: int = 0,
    k: Annotated[int, typer.Option(min=1, max=100, help="Items per page.")] = 10,
    eta: Annotated[float, typer.Option(min=0, max=5, help="Position bias: examination(k) = k^-eta.")] = 0.7,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
    max_seconds: Annotated[float, typer.Option(min=1)] = 600.0,
) -> None:
    """Drive a running service with fashion-shop's shoppers and their true tastes: pages from three
    placements (home, popular, shuffled), position-biased clicks, carts and purchases sent back as
    events with each list's rec_id (pipelines/simulate.py; docs/online.md)."""
    cfg = SimConfig(sessions=sessions, seed=seed, k=k, eta=eta, concurrency=concurrency, max_seconds=max_seconds)
    try:
        r = simulate(url, data, cfg)
    except (FileNotFoundError, OSError) as e:
        raise fail(str(e)) from e
    if r.sessions == 0:
        raise fail(f"no session went through ({r.failed} failed): is the service running at {url}?")
    console.print(f"{r.sessions:,} sessions ({r.failed} failed) in {r.seconds:.1f} s: {r.events:,} events accepted, "
                  f"{r.rejected} rejected")
    for arm in [x for x in ARMS if r.lists[x]]:
        console.print(f"  {arm:<9} {r.lists[arm]:>7,} lists  {r.ctr(arm) / k:.4f} CTR  {r.carts[arm]:>6,} carts  "
                      f"{r.purchases[arm]:>6,} purchases  {r.revenue[arm]:>10,.2f} revenue")
