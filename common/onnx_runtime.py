"""ONNX Runtime sessions and feeds: the one place a session is made. Torch-free (serving imports it).

The exporter drops graph inputs that a model never reads (a two-tower without user features has no
``features`` input), so callers build the full feed and :func:`run` keeps what the graph declares.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)


def providers(device: str = "auto") -> list[str]:
    """CUDA first when ONNX Runtime has it and it is wanted, else the CPU (logged when CUDA was asked for)."""
    have = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        log.warning("CUDA requested but ONNX Runtime has no CUDA provider (%s): using the CPU", have)
    return ["CPUExecutionProvider"]


def make_session(path: Path, *, threads: int = 0, device: str = "auto") -> ort.InferenceSession:
    """A session on ``path``. ``threads``: intra-op threads (0 = ONNX Runtime's default); inter-op is 1
    because our graphs are chains with no parallel branches worth a thread pool."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if threads > 1:  # idle pool threads sleep instead of spinning: a spinning pool takes the cores the
        # other workers' (and the event loop's) threads need (docs/benchmarks.md, "Thread pools per worker")
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=providers(device))


def declared_inputs(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``feed`` less the inputs the graph does not declare."""
    names = {i.name for i in sess.get_inputs()}
    return {k: v for k, v in feed.items() if k in names}


def run(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """All outputs of one call, with ``feed`` trimmed to the declared inputs."""
    return sess.run(None, declared_inputs(sess, feed))
