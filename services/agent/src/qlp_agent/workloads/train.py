"""Sample workload: ``python -m qlp_agent.workloads.train --steps N --checkpoint-every K``.

A deterministic training loop that checkpoints into ``$QLP_CHECKPOINT_DIR`` (model,
optimizer, step and every RNG state) and, when a checkpoint is there at start,
resumes from it EXACTLY: the resumed run prints the same per-step losses and the
same final loss as an uninterrupted run.

Backends: ``torch`` (a tiny MLP on synthetic data from a fixed seed; CUDA when
present, else CPU; needs the ``workload`` extra) and ``pure`` (torch-free linear
regression with SGD + momentum on minibatches drawn from a seeded RNG). ``auto``
picks torch when importable.

Output lines: ``step=<i> loss=<repr>`` every step (``repr`` round-trips floats
exactly), ``resumed_from=<step>`` when resuming, and ``final_loss=<repr> steps=<n>``.
Checkpoint files are written atomically (``*.tmp`` then rename) together with the
manifest ``qlp-checkpoint.json`` that tells the agent the step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

MANIFEST = "qlp-checkpoint.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_manifest(ckpt_dir: Path, step: int, backend: str, file: str) -> None:
    doc = {"step": step, "backend": backend, "file": file}
    _atomic_write(ckpt_dir / MANIFEST, json.dumps(doc, sort_keys=True).encode())


# ------------------------------------------------------------------ pure backend

PURE_FILE = "pure-state.json"


def _pure_data(seed: int, n: int = 256, d: int = 8) -> tuple[list[list[float]], list[float]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not crypto
    w_true = [rng.uniform(-2, 2) for _ in range(d)]
    xs = [[rng.gauss(0, 1) for _ in range(d)] for _ in range(n)]
    ys = [
        sum(wi * xi for wi, xi in zip(w_true, x, strict=True)) + 0.5 + rng.gauss(0, 0.1) for x in xs
    ]
    return xs, ys


def run_pure(args: argparse.Namespace, ckpt_dir: Path | None) -> float:
    xs, ys = _pure_data(args.seed)
    d = len(xs[0])
    state: dict[str, Any] = {
        "step": 0,
        "w": [0.0] * d,
        "b": 0.0,
        "vw": [0.0] * d,
        "vb": 0.0,
        "rng": None,
    }
    rng = random.Random(args.seed + 1)  # noqa: S311 - minibatch sampling
    path = ckpt_dir / PURE_FILE if ckpt_dir else None
    if path is not None and path.exists():
        state = json.loads(path.read_text())
        rng.setstate(_to_tuple(state["rng"]))
        print(f"resumed_from={state['step']}", flush=True)
    lr, momentum, batch = 0.05, 0.9, 16
    loss = float("nan")
    while state["step"] < args.steps:
        idx = [rng.randrange(len(xs)) for _ in range(batch)]
        w, b = state["w"], state["b"]
        gw = [0.0] * d
        gb = 0.0
        loss = 0.0
        for i in idx:
            err = sum(wi * xi for wi, xi in zip(w, xs[i], strict=True)) + b - ys[i]
            loss += err * err
            for j in range(d):
                gw[j] += 2 * err * xs[i][j] / batch
            gb += 2 * err / batch
        loss /= batch
        state["vw"] = [momentum * v + g for v, g in zip(state["vw"], gw, strict=True)]
        state["vb"] = momentum * state["vb"] + gb
        state["w"] = [wi - lr * v for wi, v in zip(w, state["vw"], strict=True)]
        state["b"] = b - lr * state["vb"]
        state["step"] += 1
        print(f"step={state['step']} loss={loss!r}", flush=True)
        if path is not None and (
            state["step"] % args.checkpoint_every == 0 or state["step"] == args.steps
        ):
            state["rng"] = rng.getstate()
            state["last_loss"] = loss
            _atomic_write(path, json.dumps(state).encode())
            _write_manifest(path.parent, state["step"], "pure", PURE_FILE)
        if args.step_sleep:
            time.sleep(args.step_sleep)
    if loss != loss and path is not None and path.exists():  # nothing left to run
        loss = float(json.loads(path.read_text()).get("last_loss", loss))
    return loss


def _to_tuple(v: Any) -> Any:
    """JSON turned random.getstate()'s tuples into lists; turn them back."""
    return tuple(_to_tuple(x) for x in v) if isinstance(v, list) else v


# ------------------------------------------------------------------ torch backend

TORCH_FILE = "torch-state.pt"


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def run_torch(args: argparse.Namespace, ckpt_dir: Path | None) -> float:
    import torch
    from torch import nn

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    print(f"device={device}", flush=True)
    torch.manual_seed(args.seed)
    data_gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(512, 16, generator=data_gen)
    w_true = torch.randn(16, 1, generator=data_gen)
    y = torch.tanh(x @ w_true) + 0.05 * torch.randn(512, 1, generator=data_gen)
    x, y = x.to(device), y.to(device)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1)).to(
        device
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch_gen = torch.Generator().manual_seed(args.seed + 1)
    step = 0
    path = ckpt_dir / TORCH_FILE if ckpt_dir else None
    if path is not None and path.exists():
        # RNG states must be CPU tensors; the optimizer moves its state to the params
        ck = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        batch_gen.set_state(ck["batch_rng"])
        torch.set_rng_state(ck["cpu_rng"])
        if device.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        step = int(ck["step"])
        print(f"resumed_from={step}", flush=True)
    loss_v = float("nan")
    model.train()
    while step < args.steps:
        idx = torch.randint(0, x.shape[0], (32,), generator=batch_gen).to(device)
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        loss.backward()  # type: ignore[no-untyped-call,unused-ignore]
        opt.step()
        step += 1
        loss_v = float(loss.item())
        print(f"step={step} loss={loss_v!r}", flush=True)
        if path is not None and (step % args.checkpoint_every == 0 or step == args.steps):
            ck = {
                "step": step,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "batch_rng": batch_gen.get_state(),
                "cpu_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                "last_loss": loss_v,
            }
            tmp = path.with_name(path.name + ".tmp")
            torch.save(ck, tmp)
            os.replace(tmp, path)
            _write_manifest(path.parent, step, "torch", TORCH_FILE)
        if args.step_sleep:
            time.sleep(args.step_sleep)
    if loss_v != loss_v and path is not None and path.exists():
        loss_v = float(torch.load(path, map_location="cpu", weights_only=True)["last_loss"])
    return loss_v


# ------------------------------------------------------------------ entry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m qlp_agent.workloads.train")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--backend", choices=["auto", "torch", "pure"], default="auto")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds to sleep per step")
    p.add_argument("--cpu", action="store_true", help="torch: stay on CPU even with CUDA")
    p.add_argument(
        "--checkpoint-dir", default=None, help="default: $QLP_CHECKPOINT_DIR (none: no checkpoints)"
    )
    args = p.parse_args(argv)
    if args.steps < 0 or args.checkpoint_every < 1:
        p.error("--steps must be >= 0 and --checkpoint-every >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raw_dir = args.checkpoint_dir or os.environ.get("QLP_CHECKPOINT_DIR")
    ckpt_dir = Path(raw_dir) if raw_dir else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    backend = args.backend
    if backend == "auto":
        backend = "torch" if torch_available() else "pure"
    if backend == "torch" and not torch_available():
        print("torch is not installed: pip install 'qlp-agent[workload]'", file=sys.stderr)
        return 2
    print(
        f"backend={backend} steps={args.steps} checkpoint_every={args.checkpoint_every}", flush=True
    )
    final = run_torch(args, ckpt_dir) if backend == "torch" else run_pure(args, ckpt_dir)
    print(f"final_loss={final!r} steps={args.steps}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
