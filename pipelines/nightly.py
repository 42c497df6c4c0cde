"""The nightly job: validate → split → image CNN → embeddings → two-tower → ranker → ONNX exports
(with parity checks) → bundle with tuned indexes → quality gate → publish → reload → report.

Unattended operation:
- every step is a plain function of declared inputs; its outputs live in
  ``ARTIFACTS/work/<step>-<fingerprint>/`` where the fingerprint hashes the inputs' fingerprints
  and the step's config, and ``done.json`` marks it complete. A re-run skips completed steps and
  re-enters an incomplete one in the same directory, where training resumes from ``last.pt``;
- an OS file lock stops two runs at once (released by the kernel when a run dies);
- exit codes a scheduler can act on (EXIT_*); one JSON summary per run in ``ARTIFACTS/runs/``;
- nothing reaches ``bundles/`` half-written (bundle.versions) and ``CURRENT`` only moves after the
  gate.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bundle.logs import log_dir
from bundle.object_store import push, set_store_current
from bundle.runs import GUARDS, last_started, write_run
from bundle.versions import (
    BundleError,
    bundles_dir,
    current_version,
    promote,
    read_manifest,
    retain,
    sha256_file,
    sweep_partial,
    verify_bundle,
)
from common.recipes import STRICT, from_mapping, load_recipe, plain
from pipelines import train_steps as ts
from pipelines.assemble import TrainedModels, bundle_metrics
from pipelines.canary import decide_canaries, experiment_bundles, start_canary
from pipelines.errors import EXIT_DATA, EXIT_ERROR, EXIT_GATE, EXIT_LOCKED, NightlyError
from pipelines.gate import manifest_rule, paired_gate
from pipelines.label_fixes import apply_label_fixes
from pipelines.log_import import import_log
from pipelines.report import write_report
from pipelines.settings import get_settings
from pipelines.tables import fingerprint as dataset_fingerprint
from pipelines.tables import images_fingerprint
from recsys.config import RankerTrainConfig, RecTrainConfig
from vision.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NightlyConfig:
    """One night's recipe: the trainers' own recipes (checked whole when the YAML loads, before
    anything trains: common/recipes.py) and the gate's and publisher's settings."""

    __pydantic_config__ = STRICT

    split: str = "temporal-user"
    vision: TrainConfig = field(default_factory=lambda: TrainConfig(model="resnet_fm_s", epochs=3))
    two_tower: RecTrainConfig = field(default_factory=lambda: RecTrainConfig(epochs=3))
    ranker: RankerTrainConfig = field(default_factory=RankerTrainConfig)
    valid_users: int = 20_000  # validation-period users (early stopping, ranker lists)
    warm_start: bool = True  # initialise the two-tower from CURRENT's (rows matched by id)
    target_recall: float = 0.95
    gate_metric: str = "ranker_ndcg@10"  # the manifest rule's metric (a key of metrics["headline"])
    gate_margin: float = 0.05  # refuse when worse than CURRENT by more than this share, with confidence
    # The paired gate (pipelines/gate.py): both bundles over a seeded sample of tonight's test shoppers
    gate_shoppers: int = 2000  # the sample (the gate's cost: two bundle loads and 2 x this many requests)
    gate_k: int = 10  # NDCG@k of each shopper's served page
    gate_confidence: float = 0.95  # of the bootstrap intervals
    gate_resamples: int = 2000
    gate_seed: int = 0
    keep_bundles: int = 5
    # promote: CURRENT moves to a bundle the gate passed; experiment: it starts as the challenger of
    # the live bundle and the next decision promotes or rolls it back (pipelines/canary.py)
    rollout: Literal["promote", "experiment"] = "promote"
    canary_placements: tuple[str, ...] = ("home",)
    canary_share: float = 0.1  # of the placements' shoppers
    canary_days: float = 14.0  # rolled back when still undecided after this
    canary_margin: float = 0.02  # non-inferiority: promoted unless worse by more than this share, with confidence
    canary_metric: Literal["ctr", "conversion", "revenue_per_visitor"] = "ctr"
    canary_min_impressions: int = 2000  # per variant, before the CTR floor is checked
    import_events: bool = True  # the service's event log (ARTIFACTS/events) into the dataset first (docs/online.md)
    reload_url: str | None = None  # e.g. http://127.0.0.1:8000 (token: pipelines/settings.py admin_token)
    bundle_store: str | None = None  # fsspec URL the replicas pull from (bundle/object_store.py)

    def __post_init__(self) -> None:
        """Sub-recipes given as plain mappings (Python callers) are checked and built like the YAML's."""
        for name, cls in (("vision", TrainConfig), ("two_tower", RecTrainConfig), ("ranker", RankerTrainConfig)):
            value = getattr(self, name)
            if not isinstance(value, cls):
                object.__setattr__(self, name, from_mapping(cls, value, f"NightlyConfig.{name}"))

    @classmethod
    def from_yaml(cls, path: Path | None, **overrides) -> NightlyConfig:
        """ValueError, one line naming the file and the key, for an unknown key or a bad value."""
        return load_recipe(cls, path, **overrides)


# Fields of the trainers' recipes that say where a run reads and writes, not what it computes: the
# nightly job sets them per step, and they stay out of the step fingerprints.
PLACES = ("data_dir", "run_dir", "image_vectors", "init_from", "split")


def recipe_key(recipe) -> dict:
    """What a step's fingerprint hashes of a trainer's recipe: every field but the places."""
    return {k: v for k, v in plain(recipe).items() if k not in PLACES}


def fp(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Lock:
    """``ARTIFACTS/nightly.lock``, held with an OS file lock (``flock``) for the whole run: the kernel
    releases it when the process dies, however it dies, so a crashed run never blocks the next one
    and a recycled pid (PID 1 in every container) never looks like a live holder. The file records
    the holder's pid for the message a second run prints; a clean exit empties it, so a non-empty
    file at start means the previous run did not finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = None

    def __enter__(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise NightlyError(f"another nightly run holds {self.path} (pid {holder})", EXIT_LOCKED) from None
        f.seek(0)
        if previous := f.read().strip():
            log.warning("taking over stale lock %s (pid %s did not finish)", self.path, previous)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc) -> None:
        self._f.seek(0)
        self._f.truncate()
        self._f.flush()
        fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
        self._f.close()


class Steps:
    """Runs fingerprinted steps and records what happened for the run summary."""

    def __init__(self, artifacts: Path) -> None:
        self.work = artifacts / "work"
        self.record: list[dict] = []

    def run(self, name: str, key: str, fn: Callable[[Path], dict]) -> dict:
        d = self.work / f"{name}-{key[:16]}"
        done = d / "done.json"
        t = time.perf_counter()
        if done.is_file():
            info = json.loads(done.read_text())
            self.record.append({"step": name, "fingerprint": key, "status": "fresh, skipped", "seconds": 0.0})
            log.info("step %-10s fresh (%s), skipped", name, d.name)
            return info | {"dir": str(d)}
        d.mkdir(parents=True, exist_ok=True)
        log.info("step %-10s running in %s", name, d)
        info = fn(d)
        tmp = d / "done.json.tmp"
        tmp.write_text(json.dumps(info, indent=2, default=str))
        os.replace(tmp, done)
        secs = time.perf_counter() - t
        self.record.append({"step": name, "fingerprint": key, "status": "ran", "seconds": round(secs, 1)})
        log.info("step %-10s done in %.1f s", name, secs)
        return info | {"dir": str(d)}


def run_nightly(data: Path, artifacts: Path, cfg: NightlyConfig, *, force: bool = False) -> dict:
    """One night. Returns the run summary (also written to ARTIFACTS/runs/); raises NightlyError."""
    started = datetime.now(UTC)
    summary: dict = {"started_at": started.isoformat(), "data": str(data), "config": plain(cfg), "force": force}
    steps = Steps(artifacts)
    try:
        with Lock(artifacts / "nightly.lock"):
            summary |= _night(data, artifacts, cfg, steps, force)
            summary["status"] = summary.get("status", "published")
    except NightlyError as e:
        summary |= e.record | {"status": "failed" if e.code != EXIT_GATE else "refused by the gate", "error": str(e),
                               "exit_code": e.code}
        raise
    finally:
        summary["steps"] = steps.record
        summary["finished_at"] = datetime.now(UTC).isoformat()
        write_run(artifacts, started.strftime("%Y%m%dT%H%M%SZ"), summary)
    return summary


def _night(data: Path, artifacts: Path, cfg: NightlyConfig, steps: Steps, force: bool) -> dict:
    if not (data / "events.parquet").is_file():
        raise NightlyError(f"{data}: no dataset (events.parquet missing)", EXIT_DATA)
    sweep_partial(artifacts)  # a run killed while writing a bundle left its temporary directory
    # Last nights' canaries first: what shoppers did with them decides them before tonight's gate
    # compares against CURRENT (pipelines/canary.py).
    decisions = decide_canaries(artifacts, lambda v: publish(artifacts, v, cfg), since=last_started(artifacts))
    # What shoppers did online since the last night enters the dataset (pipelines/log_import.py), and
    # labels the merchandisers accepted in the console go into tonight's catalog, before it is fingerprinted.
    online = asdict(import_log(data, log_dir(artifacts), store=cfg.bundle_store,
                               max_bad_share=get_settings().max_bad_share)) if cfg.import_events else None
    label_fixes = apply_label_fixes(data, artifacts)
    # Each key hashes everything its step's output depends on: the data it reads (directly or
    # through an upstream step's key) and its config. Each step writes only into its own directory
    # and the next step is handed that path.
    data_fp = dataset_fingerprint(data)
    checked = steps.run("validate", fp("validate", data_fp), lambda d: ts.validate_step(data, d))
    split_key = fp("split", data_fp, cfg.split)
    split = steps.run("split", split_key, lambda d: ts.split_step(data, cfg.split, d))
    # Only the catalog and its photos feed the CNN: new events alone do not retrain it.
    vision_key = fp("vision", sha256_file(data / "items.parquet"), images_fingerprint(data), recipe_key(cfg.vision))
    vision = steps.run("vision", vision_key, lambda d: ts.vision_step(data, d, cfg.vision))
    vision_dir = Path(vision["dir"])
    # The last `vitrine recsys tune` search's parameters win over the config's, night after night.
    two_tower = from_mapping(RecTrainConfig, plain(cfg.two_tower) | ts.tuned_two_tower(artifacts), "tuned two-tower")
    profile = {"profile_len": two_tower.profile_len, "half_life_days": two_tower.half_life_days}
    rec = ts.RecDataCache(data, cfg.split, Path(split["dir"]), vision_dir / "embed" / "image_vectors.npy",
                          cfg.valid_users, profile)
    tt_key = fp("two_tower", split_key, vision_key, recipe_key(two_tower), cfg.valid_users)
    # Warm start from CURRENT's two-tower: an initialisation, deliberately not part of the fingerprint
    # (a finished result for the same data and config is reused whatever it started from).
    init = ts.previous_two_tower(artifacts) if cfg.warm_start else None
    tt = steps.run("two_tower", tt_key, lambda d: ts.two_tower_step(rec, d, two_tower, init))
    tt_dir = Path(tt["dir"])
    rk_key = fp("ranker", tt_key, recipe_key(cfg.ranker))
    rk = steps.run("ranker", rk_key, lambda d: ts.ranker_step(rec, tt_dir, d, cfg.ranker))
    rk_dir = Path(rk["dir"])
    metrics = bundle_metrics(vision=vision["eval"], two_tower=tt["test"], ranker=rk["lift"], validation=checked,
                             parity={"image_model": vision["parity"], "towers": tt["parity"], "ranker": rk["parity"]})
    models = TrainedModels(towers_dir=tt_dir / "export", ranker=rk_dir / "ranker.onnx",
                           image_model=vision_dir / "image_model.onnx",
                           image_vectors=vision_dir / "embed" / "image_vectors.npy", metrics=metrics,
                           configs={"nightly": plain(cfg),
                                    "sources": {"vision": str(vision_dir), "two_tower": str(tt_dir),
                                                "ranker": str(rk_dir)}})
    bundle = steps.run("bundle", fp("bundle", data_fp, vision_key, tt_key, rk_key, plain(cfg)),
                       lambda d: ts.bundle_step(artifacts, data, models, cfg.target_recall))
    version = bundle["version"]
    # One verification of tonight's bundle per run: write_bundle hashed every file if the step ran
    # now; a bundle from an earlier, killed run is hashed here. Promote and push reuse the result.
    path = bundles_dir(artifacts) / version
    manifest = read_manifest(path) if steps.record[-1]["status"] == "ran" else verify_bundle(path)
    headline = metrics["headline"]
    out = {"version": version, "headline": headline, "label_fixes": label_fixes, "online_events": online,
           "data_volume": {t: c for t, c in checked.items() if isinstance(c, dict)},  # rows, rejects per table
           "guards": {k: tt["test"][k] for k in GUARDS if k in tt["test"]},
           "live_headline": live_headline(artifacts),  # the console's "tonight" card compares the two
           "canary_decisions": decisions}
    gate = quality_gate(artifacts, headline, cfg, bundle, candidate=path, manifest=manifest, data=data,
                        split_dir=Path(split["dir"]))
    out["gate"] = gate
    if not gate["passed"]:
        if not force:
            raise NightlyError(f"quality gate refused {version}: {gate['reason']}", EXIT_GATE, record=out)
        log.warning("quality gate failed (%s) but --force: publishing %s anyway", gate["reason"], version)
        out["forced"] = True
    if cfg.rollout == "experiment" and current_version(artifacts) is not None:
        out["canary"] = start_canary(artifacts, version, placements=list(cfg.canary_placements),
                                     share=cfg.canary_share, days=cfg.canary_days, margin=cfg.canary_margin,
                                     metric=cfg.canary_metric, min_impressions=cfg.canary_min_impressions)
        out["status"] = "canary" if out["canary"]["status"] == "running" else "canary not started"
    else:
        out["reload"] = publish(artifacts, version, cfg, manifest)
    out["deleted_versions"] = retain(artifacts, cfg.keep_bundles, protect=experiment_bundles(artifacts))
    out["report"] = str(write_report(artifacts, version, metrics, vision_dir, data, gate=gate))
    return out


def publish(artifacts: Path, version: str, cfg: NightlyConfig, manifest: dict | None = None) -> str:
    """CURRENT to ``version``, the bundle store's too, and the running service told; CURRENT put back
    (NightlyError) when the service refuses it. Returns the service's answer."""
    previous = current_version(artifacts)
    manifest = manifest or verify_bundle(bundles_dir(artifacts) / version)
    promote(artifacts, version, verified=manifest)
    if cfg.bundle_store:  # the bundle's files, then the store's CURRENT: replicas pull it from there
        push(artifacts, version, cfg.bundle_store, verified=manifest)
    answer = notify_reload(cfg.reload_url)
    if answer.startswith("refused"):  # the running service would not load it: put CURRENT back
        if previous is not None:
            promote(artifacts, previous)
            if cfg.bundle_store:
                set_store_current(cfg.bundle_store, previous)
        raise NightlyError(f"the service refused {version} ({answer}); CURRENT back to {previous}", EXIT_ERROR)
    return answer


def quality_gate(artifacts: Path, headline: dict, cfg: NightlyConfig, bundle: dict, *, candidate: Path | None = None,
                 manifest: dict | None = None, data: Path | None = None, split_dir: Path | None = None) -> dict:
    """Refuse a bundle whose headline is not a number or whose indexes missed the recall target (parity
    failures already stopped the run); then the paired gate (pipelines/gate.py): the candidate and
    CURRENT scored on the same holdout through the served path. Without a holdout (``candidate`` and
    the rest unset) or a live bundle that cannot be scored, the manifest rule, recorded as such."""
    new = headline[cfg.gate_metric]
    if not math.isfinite(new):  # NaN compares False with everything: it would pass any floor
        return {"passed": False, "reason": f"{cfg.gate_metric} is {new}: not a number to publish on", "baseline": None}
    for name, rec in bundle["index_recall"].items():
        if not rec >= cfg.target_recall - 0.02:
            return {"passed": False, "reason": f"{name} index recall@100 {rec:.3f} < target {cfg.target_recall}"}
    cur = current_version(artifacts)
    if cur is None:
        return {"passed": True, "reason": "no CURRENT bundle to compare with", "baseline": None}
    if candidate is None or data is None or split_dir is None:
        return manifest_rule(artifacts, headline, cfg.gate_metric, cfg.gate_margin)
    try:
        return paired_gate(candidate, manifest or read_manifest(candidate), bundles_dir(artifacts) / cur, data,
                           split_dir, margin=cfg.gate_margin, k=cfg.gate_k, shoppers=cfg.gate_shoppers,
                           confidence=cfg.gate_confidence, resamples=cfg.gate_resamples, seed=cfg.gate_seed)
    except Exception as e:  # any reason the live bundle cannot be scored (load, schema, items): the old rule
        log.warning("paired gate not possible (%s): the manifest rule decides", e)
        return manifest_rule(artifacts, headline, cfg.gate_metric, cfg.gate_margin, why=f"{type(e).__name__}: {e}")


def live_headline(artifacts: Path) -> dict:
    """CURRENT's headline metrics before tonight's publish ({} when there is none to read)."""
    cur = current_version(artifacts)
    try:
        return read_manifest(bundles_dir(artifacts) / cur)["metrics"]["headline"] if cur else {}
    except (BundleError, KeyError):
        return {}


def notify_reload(url: str | None) -> str:
    """Ask the running service to load the new CURRENT. Unreachable: logged, not fatal (it can poll
    CURRENT); ``refused: ...`` when it answered 409 (it could not load the bundle)."""
    if not url:
        return "not configured"
    token = get_settings().admin_token
    req = urllib.request.Request(url.rstrip("/") + "/admin/reload", method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return f"{r.status} {r.read().decode()[:200]}"
    except urllib.error.HTTPError as e:
        if e.code == 409:  # the service loaded and refused it (serving/routers/admin.py)
            return f"refused: {e.read().decode()[:300]}"
        log.warning("could not notify %s: %s", url, e)
        return f"failed: {e}"
    except OSError as e:
        log.warning("could not notify %s: %s (the service can also poll CURRENT with --watch)", url, e)
        return f"failed: {e}"
