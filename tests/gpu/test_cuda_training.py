"""CUDA only (-m gpu; fails without a GPU): the CNN trains with its images resident on the device and
its predictions there agree with the CPU's for the same weights."""

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import synthetic_images
from vision.config import TrainConfig
from vision.data import ImageSet
from vision.preprocess import PreprocessSpec, normalize
from vision.train import load_model, predict, train

pytestmark = pytest.mark.gpu


def test_the_cnn_trains_on_cuda_and_agrees_with_the_cpu(tmp_path) -> None:
    assert torch.cuda.is_available(), "no CUDA device: GPU tests run on GPU hosts only (-m gpu)"
    x, y = synthetic_images(3000, 0)
    split = np.where(np.arange(3000) < 2400, "train", np.where(np.arange(3000) < 2700, "valid", "test"))
    data = ImageSet(x, y.astype(np.int64), np.arange(3000).astype(str), split, tuple(map(str, range(10))))
    best = train(TrainConfig(run_dir=str(tmp_path), model="resnet_fm_tiny", epochs=3, device="cuda"), data=data)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    hist = yaml.safe_load((tmp_path / "history.yaml").read_text())
    assert cfg["device"].startswith("cuda") and hist[-1]["train_loss"] < hist[0]["train_loss"]
    xt = torch.from_numpy(normalize(x[2700:], PreprocessSpec()))
    gpu_model = load_model(best)[0].cuda()
    cpu_model, _ = load_model(best, "cpu")
    lg = predict(gpu_model, xt, torch.device("cuda"))[0]  # bf16 autocast on the GPU
    lc = predict(cpu_model, xt, torch.device("cpu"))[0]
    assert (lg.argmax(1) == lc.argmax(1)).float().mean() > 0.97
    assert (lg - lc).abs().max() < 0.25
