"""DDP through torchrun with the gloo backend on the CPU: the same script the GPU recipe uses."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.mark.slow
def test_torchrun_two_processes_trains_and_rank0_writes(tiny_shop: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cfg = {"data_dir": str(tiny_shop), "run_dir": str(run), "model": "resnet_fm_tiny", "epochs": 2,
           "batch_size": 16, "lr": 1.0, "device": "cpu"}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    torchrun = Path(sys.executable).with_name("torchrun")
    subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "vision.train", str(path)],
                   check=True, cwd=Path(__file__).parents[2], timeout=300)
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["world_size"] == 2
    assert len(yaml.safe_load((run / "history.yaml").read_text())) == 2
    assert (run / "best.pt").is_file()
