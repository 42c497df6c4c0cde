"""Train the product-image CNN. One function, ``train(cfg)``; the CLI and the nightly job call it.

Recipe: batch augmentation (crop+pad, flip, random erasing), label smoothing, SGD+Nesterov or
AdamW with linear warm-up then cosine decay (per step), no weight decay on norms and biases, EMA of
the weights, early stopping on validation accuracy, a checkpoint every epoch and exact resume,
bf16 autocast + channels_last on CUDA, DDP when launched by torchrun (rank 0 logs and saves).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from common.recipes import plain
from common.torch_runtime import init_distributed, pick_device, resume, save_checkpoint, save_last
from vision.config import TrainConfig
from vision.data import ImageSet, augment, load_image_set
from vision.model import ProductResNet, VisionConfig, create_model, model_config
from vision.preprocess import PreprocessSpec, normalize

log = logging.getLogger(__name__)


def _param_groups(model: torch.nn.Module, wd: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # norms and biases are 1-d
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and embeddings for a whole tensor, in eval mode, on CPU tensors.  (N, K), (N, E)"""
    model.eval()
    logits, embs = [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            lo, em = model(xb)
        logits.append(lo.float().cpu())
        embs.append(em.float().cpu())
    return torch.cat(logits), torch.cat(embs)


def load_model(path: Path, map_location: str | torch.device = "cpu") -> tuple[ProductResNet, dict]:
    """Rebuild a model from a checkpoint (its config travels with it). Never unpickles objects."""
    ck = torch.load(path, map_location=map_location, weights_only=True)
    model = create_model(VisionConfig.from_dict(ck["model_config"]))
    model.load_state_dict(ck["model"])
    return model, ck


def train(cfg: TrainConfig, on_epoch_end: Callable[[dict], None] | None = None, data: ImageSet | None = None
          ) -> Path:
    """Train (or resume) into ``cfg.run_dir``; returns the path of ``best.pt``.

    ``on_epoch_end`` gets each epoch's record after its checkpoint is on disk (progress reports;
    tests use it to interrupt a run). ``data``: images already loaded (else read from ``cfg.data_dir``).

    The images live on the training device for the whole run (70k × 32² floats: 290 MB), batches are
    gathered and augmented there, and the loop never waits for the GPU inside an epoch: loss and
    accuracy accumulate on the device and are read once per epoch.
    """
    ddp, rank, world = init_distributed()
    main = rank == 0
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec()

    if data is None:
        data = load_image_set(Path(cfg.data_dir), spec, seed=cfg.seed, max_items=cfg.max_items)
    on = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    xtr, ytr = on(normalize(data.subset("train")[0], spec)), on(data.subset("train")[1])  # (N, 1, H, W), (N,)
    xva, yva = on(normalize(data.subset("valid")[0], spec)), torch.from_numpy(data.subset("valid")[1])  # predict: CPU
    fill = float((0 - spec.mean) / spec.std)  # the normalised black background
    mcfg = model_config(cfg.model, num_classes=len(data.class_names), class_names=data.class_names,
                        input_size=spec.size, **cfg.model_overrides)
    model = create_model(mcfg).to(device).to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval() if cfg.ema_decay > 0 else None
    lr = cfg.lr * cfg.batch_size * world / 256
    opt = (torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=lr, momentum=0.9, nesterov=True)
           if cfg.optimizer == "sgd" else torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=lr))
    steps_per_epoch = min(len(xtr) // (cfg.batch_size * world), cfg.max_steps or len(xtr))
    if steps_per_epoch == 0:
        raise ValueError(f"{len(xtr)} training images is less than one global batch ({cfg.batch_size * world})")
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    start_epoch, stopping, ck = resume(run, cfg.patience, device)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        if main:
            log.info("resuming %s at epoch %d (best valid acc %.4f)", run, start_epoch, stopping.best)
    if main:
        resolved = {"train": plain(cfg), "model": mcfg.to_dict(), "preprocess": spec.to_dict(),
                    "world_size": world, "device": str(device), "lr_scaled": lr}
        (run / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        log.info("training %s (%.2fM params) on %s: %d train / %d valid images, %d epochs",
                 cfg.model, sum(p.numel() for p in model.parameters()) / 1e6, device, len(xtr), len(xva), cfg.epochs)
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model
    if cfg.compile:
        net = torch.compile(net)
    use_bf16 = device.type == "cuda"
    ema_params, model_params = (list(ema.parameters()), list(model.parameters())) if ema is not None else ([], [])
    ema_bufs, model_bufs = (list(ema.buffers()), list(model.buffers())) if ema is not None else ([], [])

    for epoch in range(start_epoch, cfg.epochs):
        g = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)  # same order on resume
        perm = torch.randperm(len(xtr), generator=g, device=device)[rank::world][: steps_per_epoch * cfg.batch_size]
        net.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)  # read once per epoch: no host sync per step
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not main, leave=False,
                      mininterval=5):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, lr)
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb = augment(xtr[idx], g, pad=cfg.pad, flip=cfg.flip, erase_p=cfg.erase_p, fill=fill)
            xb = xb.contiguous(memory_format=torch.channels_last)
            yb = ytr[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits, _ = net(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    d = min(cfg.ema_decay, (1 + step) / (10 + step))  # short warm-up of the average
                    torch._foreach_lerp_(ema_params, model_params, 1 - d)  # one fused launch, not one per tensor
                    torch._foreach_copy_(ema_bufs, model_bufs)
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
        seen = steps_per_epoch * cfg.batch_size
        loss_sum, correct = loss_sum.item(), correct.item()  # waits for the epoch's last step
        train_s = time.perf_counter() - t0
        if ddp:
            dist.barrier()
        if main:
            evaluated = {"model": model} | ({"ema": ema} if ema is not None else {})
            accs = {k: (predict(m, xva, device, cfg.eval_batch_size)[0].argmax(1) == yva).float().mean().item()
                    for k, m in evaluated.items()}
            which = max(accs, key=accs.get)
            acc = accs[which]
            rec = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                   "valid_acc": accs["model"], "valid_acc_ema": accs.get("ema"), "img_per_s": seen * world / train_s,
                   "epoch_s": time.perf_counter() - t0}
            log.info("epoch %d: loss %.4f train acc %.4f valid acc %.4f (ema %s) %.0f img/s",
                     epoch + 1, rec["train_loss"], rec["train_acc"], accs["model"],
                     f"{accs['ema']:.4f}" if "ema" in accs else "-", rec["img_per_s"])
            if stopping.update(acc, rec):
                save_checkpoint(run / "best.pt", model=evaluated[which].state_dict(), model_config=mcfg.to_dict(),
                                preprocess=spec.to_dict(), epoch=epoch, valid_acc=acc, source=which)
            save_last(run, epoch, stopping, model=model.state_dict(), optimizer=opt.state_dict(),
                      ema=ema.state_dict() if ema is not None else {}, model_config=mcfg.to_dict())
            (run / "history.yaml").write_text(yaml.safe_dump(stopping.history, sort_keys=False))
            if on_epoch_end is not None:
                on_epoch_end(rec)
        stop = torch.tensor(int(main and stopping.stop))
        if ddp:
            dist.broadcast(stop, 0)
        if stop.item():
            if main:
                log.info("early stop: no better validation accuracy for %d epochs", cfg.patience)
            break
    if ddp:
        dist.barrier()
    return run / "best.pt"


def default_recipe() -> Path:
    """``vision/configs/gpu.yaml`` when CUDA is present, else ``cpu.yaml``."""
    return Path(__file__).parent / "configs" / ("gpu.yaml" if torch.cuda.is_available() else "cpu.yaml")


def set_threads() -> None:
    """Use every core for intra-op work (torch defaults to physical cores, fine here)."""
    n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))))


if __name__ == "__main__":  # torchrun entry: torchrun --nproc-per-node N -m vision.train CONFIG.yaml
    import sys

    logging.basicConfig(level=logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
    set_threads()
    train(TrainConfig.from_yaml(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
    if dist.is_initialized():
        dist.destroy_process_group()
