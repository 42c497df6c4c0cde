"""ONNX export parity: a correct export of large outputs passes, a wrong graph fails."""

from pathlib import Path

import numpy as np
import pytest
import torch

from common.torch_runtime import ParityError, export_onnx, parity


def _linear(scale: float, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = torch.nn.Linear(64, 3)
    with torch.no_grad():
        m.weight.mul_(scale)
    return m.eval()


def test_parity_scales_with_the_outputs_and_catches_a_wrong_graph(tmp_path: Path) -> None:
    big = _linear(300.0, 0)  # outputs in the hundreds: float32 noise there exceeds an absolute 1e-4
    path = export_onnx(big, (torch.zeros(2, 64),), tmp_path / "big.onnx", input_names=["x"], output_names=["y"])
    x = {"x": np.random.default_rng(0).standard_normal((200, 64)).astype(np.float32)}
    with torch.no_grad():
        assert big(torch.from_numpy(x["x"])).abs().max() > 100
    assert parity(path, big, x) < 1e-4 * 1000
    with pytest.raises(ParityError, match="differs from PyTorch"):
        parity(path, _linear(300.0, 1), x)  # another model's weights: far off, whatever the scale
