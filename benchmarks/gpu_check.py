"""One prepared check of pddlite's GPU path: what the device is, how fast the training steps run in
each precision, and a real PDD task end to end, printed and written as one JSON file.

    python benchmarks/gpu_check.py                          # on a GPU: about 5 minutes
    python benchmarks/gpu_check.py --device cpu --smoke     # the same code path on a CPU, < 1 minute

Needs no network: the real task is mnist-5k, which ships with the package's dependencies.

1. The device, its compute capability and the precision ``--precision auto`` picks there
   (:func:`pddlite.device.choose_precision`).
2. Images per second of a GAN pre-training step and of a tune-up step (one adversarial step and
   one margin step on 180 prototypes) at paper width (Tables 3-4) and batch size (Table 2: 200),
   for 28x28 and 64x64 images, in each precision the device supports, and both steps again in the
   ``auto`` precision with ``compile=True``: the trainers compile their networks as ``--compile``
   does (:mod:`pddlite.trainer`), so this measures what users get. On a GPU that is inductor;
   on a CPU it is the eager backend, which checks the code path (``--smoke``, in the test suite)
   and measures nothing. The same steps as CUDA graphs (``cuda_graphs``, in bf16 and fp32), also
   with channels-last, and whether replays agree with eager steps (item ``graphs agree``, also
   with deterministic kernels, where they must agree bit for bit). On a CPU the graph items run
   through a stand-in capture (:class:`pddlite.graphs.ReplayEagerly`), which checks the
   bookkeeping. Every figure is the fastest of ``--repeats`` timings of ``--steps`` steps, after
   warm-up steps (compilation and captures included there).
3. The wall time of a ``paper``-profile MNIST task (54,000 unlabeled images, 20 + 40 epochs at
   batch 200), estimated from the step timings of item 2 (an estimate: data movement and scoring
   are left out; the goal is under 60 s on an H100/H200-class GPU), and its training measured with
   ``cuda_graphs`` as PDD runs it (channels-last on CUDA), through the trainers' ``fit``.
4. A real ``paper``-profile PDD task on mnist-5k (anomaly 1, seed 0, the ``pddlite`` variant):
   AUROC / AUPRC on the test split, its wall time, and beside it the training time that
   ``pddlite run`` estimates before it trains (:mod:`pddlite.timing`).
5. Notebook 4 (or those ``--notebooks`` names) executed in the ``colab`` profile (``nbclient``;
   offline, it falls back to mnist-5k), and its wall time: a Colab session's notebook must finish
   within 15 minutes. Each executed notebook is saved beside the JSON, outputs and figures included.

Each item is timed against ``--budget-s``; items that no longer fit are skipped and say so. An
item that fails records its error and the check goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import step_inputs  # noqa: E402
from pddlite.device import choose_precision, resolve_device  # noqa: E402
import pddlite.trainer  # noqa: E402
from pddlite.gan import GANTrainer  # noqa: E402
from pddlite.graphs import WARMUP_STEPS, ReplayEagerly, StepGraph  # noqa: E402
from pddlite.runtime import Runtime  # noqa: E402
from pddlite.tuneup import TuneUpTrainer  # noqa: E402

SHAPES = {"28x28": (1, 28, 28), "64x64": (3, 64, 64)}
MNIST_UNLABELED, PAPER_BATCH, PAPER_EPOCHS = 54_000, 200, (20, 40)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def supported_precisions(device: torch.device) -> list[str]:
    """float32 everywhere, bfloat16 where the GPU has it, float16 (with loss scaling). On a CPU only
    float32 and float16: the loss-scaling path is the one to exercise, and bfloat16 there is emulated."""
    if device.type == "cpu":
        return ["fp32", "fp16"]
    return ["fp32", *(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]


@contextlib.contextmanager
def compile_options(device: torch.device, **options):
    """torch.compile's settings for the compiled items: inductor's defaults plus ``options`` on a
    GPU; on a CPU the eager backend (through the trainer's documented hook), so that the smoke
    check runs the code path in seconds; its figures there are no measurement of compilation."""
    before = pddlite.trainer._COMPILE_OPTIONS
    pddlite.trainer._COMPILE_OPTIONS = {**before, **options} if device.type == "cuda" else {"backend": "eager"}
    try:
        yield
    finally:
        pddlite.trainer._COMPILE_OPTIONS = before


def with_graphs(trainer, cuda_graphs: bool):
    """``trainer``; on a CPU with ``cuda_graphs``, given the stand-in for a capture
    (:class:`pddlite.graphs.ReplayEagerly`), so that ``--smoke`` runs the graphs' bookkeeping there."""
    if cuda_graphs and trainer.device.type != "cuda":
        trainer.step_graph = StepGraph(trainer.batch_losses, capture=ReplayEagerly)
    return trainer


def timed_stages(device, shape, precision, width, batch, compile=False, channels_last=False, cuda_graphs=False):
    """The two training stages' trainers and one-step closures on fresh networks and random data;
    ``channels_last`` stores the networks' weights and the images in NHWC order; ``cuda_graphs``
    replays each step as a CUDA graph (:mod:`pddlite.graphs`), as ``pddlite run --cuda-graphs`` does."""
    g, d, images, protos, labels = step_inputs(device, shape, width, batch)
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        images, protos = (t.contiguous(memory_format=torch.channels_last) for t in (images, protos))
    runtime = Runtime(device=device, precision=precision, compile=compile,
                      cuda_graphs=cuda_graphs and device.type == "cuda")
    pre = with_graphs(GANTrainer(g, d, runtime=runtime), cuda_graphs)
    tune = with_graphs(TuneUpTrainer(g, d, protos, labels, runtime=runtime), cuda_graphs)
    every = torch.arange(len(images), device=images.device)
    return {name: (trainer, lambda t=trainer: t.train_step(t.select(images, every))) for name, trainer in
            (("pretrain", pre), ("tuneup", tune))}


def step_throughput(device, shape, precision, width, batch, steps, warmup, repeats, compile=False,
                    channels_last=False, cuda_graphs=False) -> dict:
    """Images/s of a pre-training step and a tune-up step (the fastest of ``repeats`` timings); with
    ``compile`` the trainers compile their networks as ``pddlite run --compile`` does; with
    ``cuda_graphs`` the warm-up also covers the graph's own warm-up steps and its capture."""
    out: dict[str, Any] = {}
    stages = timed_stages(device, shape, precision, width, batch, compile, channels_last, cuda_graphs)
    for name, (trainer, step) in stages.items():
        trainer.prepare_to_train()  # train mode and, with compile, the networks compiled as fit does
        for _ in range(warmup + (WARMUP_STEPS + 1 if cuda_graphs else 0)):
            step()
        best = math.inf
        for _ in range(max(repeats, 1)):
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            best = min(best, time.perf_counter() - start)
        out[f"{name}_images_per_s"] = round(steps * batch / best, 1)
        out[f"{name}_ms_per_step"] = round(1000 * best / steps, 3)
        if trainer.step_graph is not None:  # proof that the steps were replays, or why not
            out[f"{name}_graph"] = {**trainer.step_graph.counts, "failure": trainer.step_graph.failure}
    return out


@contextlib.contextmanager
def deterministic_kernels():
    """cuDNN's deterministic algorithms, chosen without timing, and no TF32: the same steps then give
    the same numbers, so a replay that differs from its eager step would show."""
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
         torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) = flags


def graph_agreement(device, shape, precision, width, batch, steps=30) -> dict:
    """The same tune-up steps (adversarial and margin) from the same weights, noise and batch, run
    eagerly twice and once as CUDA graphs: for each pair, the largest loss difference at the first
    step and at any step, and the weights' relative difference at the end. Eager steps on CUDA use
    the arithmetic a graph replays (capturable Adam, no autocast cache: :mod:`pddlite.trainer`), so
    with deterministic kernels the two must agree bit for bit; with cuDNN's timed algorithm choice,
    two eager runs may differ too, and GAN training amplifies any difference from step to step."""
    runs: dict[str, tuple] = {}
    for name in ("eager", "eager again", "graphs"):
        trainer, step = timed_stages(device, shape, precision, width, batch, cuda_graphs=name == "graphs")["tuneup"]
        trainer.prepare_to_train()
        losses = torch.stack([torch.stack([t.float() for t in step()]) for _ in range(steps)]).cpu()
        flat = torch.cat([p.detach().float().flatten() for m in trainer.modules.values() for p in m.parameters()])
        runs[name] = (losses, flat.cpu(), trainer.step_graph.counts if trainer.step_graph else None)

    def differences(a, b) -> dict:
        gap = (runs[a][0] - runs[b][0]).abs()
        return {"first_step_max_loss_difference": float(gap[0].max()), "max_loss_difference": float(gap.max()),
                "relative_weight_difference": float((runs[a][1] - runs[b][1]).norm() / runs[b][1].norm())}

    return {"steps": steps, "eager again vs eager": differences("eager again", "eager"),
            "graphs vs eager": differences("graphs", "eager"), "graph_counts": runs["graphs"][2]}


def paper_task_training(device, cuda_graphs: bool, epochs=PAPER_EPOCHS, n=MNIST_UNLABELED, width=1.0,
                        batch=PAPER_BATCH, precision="auto", channels_last=False) -> dict:
    """The training of a ``paper``-profile MNIST task, measured: paper-width networks, ``n`` random
    28x28 images (the step's cost does not depend on the pixels), 20 pre-training and 40 tune-up
    epochs at batch 200 with 180 prototypes, through the trainers' ``fit`` as PDD runs them."""
    g, d, _, protos, labels = step_inputs(device, SHAPES["28x28"], width, batch)
    images = torch.rand(n, *SHAPES["28x28"], device=device) * 2 - 1
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        images, protos = (t.contiguous(memory_format=torch.channels_last) for t in (images, protos))
    out: dict[str, Any] = {"images": n, "epochs": list(epochs), "cuda_graphs": cuda_graphs,
                           "precision": choose_precision(device, precision).name, "channels_last": channels_last}
    on_gpu = cuda_graphs and device.type == "cuda"
    kw = {"runtime": Runtime(device=device, cuda_graphs=on_gpu, precision=precision)}
    for name, trainer, count in (
            ("pretrain", with_graphs(GANTrainer(g, d, **kw), cuda_graphs), epochs[0]),
            ("tuneup", with_graphs(TuneUpTrainer(g, d, protos, labels, **kw), cuda_graphs), epochs[1])):
        sync(device)
        start = time.perf_counter()
        trainer.fit(images, count, batch, progress=False)
        sync(device)
        out[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
        if trainer.step_graph is not None:
            out[f"{name}_graph"] = {**trainer.step_graph.counts, "failure": trainer.step_graph.failure}
    out["seconds"] = round(out["pretrain_seconds"] + out["tuneup_seconds"], 1)
    return out


def kernel_profile(device, shape, precision, width, batch, channels_last=False, rows=10) -> dict:
    """Where a pre-training step's time goes: the ``rows`` most expensive kernels (CUDA) or
    operators (CPU) of three steps, after two warm-up steps, from :mod:`torch.profiler`, and their
    total per step. (The H200 runs in ``experiments/results/gpu/`` predate the kernels-only filter:
    their totals count each kernel twice, under its operator and as itself.)"""
    from torch.profiler import ProfilerActivity, profile

    trainer, step = timed_stages(device, shape, precision, width, batch, channels_last=channels_last)["pretrain"]
    trainer.prepare_to_train()
    for _ in range(2):
        step()
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    if cuda:  # the kernels alone: an operator's self device time repeats its kernels' time
        events = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    events = sorted(events, key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in events) or 1.0
    return {"per_step_ms": round(total / 3 / 1000, 3),
            "top": [f"{100 * getattr(e, key) / total:4.1f}% {e.key[:90]} (x{e.count // 3})" for e in events[:rows]]}


def real_task(device: torch.device, profile: str, precision: str = "auto", cuda_graphs: bool = False) -> dict:
    """The task end to end, and the training time ``pddlite run`` would have estimated for it (from
    eager steps, also with ``cuda_graphs``)."""
    from pddlite import PDD, make_task
    from pddlite.experiment import run_task

    task = make_task("mnist-5k", anomaly=1, shots=20, seed=0, device=device)
    estimate = PDD(profile=profile, device=str(device), seed=0, progress=False).training_estimate(task)
    row = run_task("mnist-5k", anomaly=1, shots=20, profile=profile, method="pdd", ablation=False,
                   runtime=Runtime(device=str(device), seed=0, progress=False, precision=precision,
                                   cuda_graphs=cuda_graphs))
    row.pop("model", None)
    keep = ("profile", "variant", "precision", "cuda_graphs", "pretrain_auroc", "pretrain_auprc", "auroc", "auprc",
            "seconds")
    return {**{k: row[k] for k in keep if k in row}, "estimated_training_seconds": round(estimate.seconds, 2)}


def run_notebook(name: str, executed: Path) -> dict:
    """Execute notebooks/``name``*.ipynb in the ``colab`` profile (offline: mnist-5k), and save it
    with its outputs to ``executed``, for reading its figures."""
    import os

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    path = notebook_path(name)
    nb = nbformat.read(path, as_version=4)
    os.environ["PDDLITE_PROFILE"] = "colab"
    # the kernel imports this working tree's pddlite, installed or not
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, executed)
    return {"profile": "colab", "seconds": round(seconds, 1), "cells": len(nb.cells), "executed": executed.name}


def notebook_path(name: str) -> Path:
    """The series' notebook whose file name starts with ``name`` ("04", "04_tuneup_and_scoring")."""
    found = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob(f"{name}*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"--notebooks {name}: no single notebook of the series starts with it; use 00 .. 08")
    return found[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny networks and steps: checks the code path in seconds")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 20; smoke 2)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=330.0, help="stop starting new items after this many seconds")
    p.add_argument("--out", default="gpu_check.json", help="where to write the JSON")
    p.add_argument("--notebooks", nargs="*", default=["04"], metavar="NN",
                   help="notebooks of the series to execute in the colab profile, in this order (default: 04)")
    p.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                   help="run only the items whose name contains one of these texts (e.g. steps kernels)")
    p.add_argument("--skip", nargs="+", default=(), metavar="TEXT",
                   help="skip the items whose name contains one of these texts (e.g. compiled kernels)")
    args = p.parse_args(argv)

    start = time.perf_counter()
    device = resolve_device(args.device)
    smoke = args.smoke
    if smoke and device.type == "cpu":
        torch.set_num_threads(1)  # tiny ops: a second thread only adds synchronisation on a shared CPU
    width, batch = (0.125, 8) if smoke else (1.0, PAPER_BATCH)
    steps = args.steps or (1 if smoke else 20)
    warmup = 1 if smoke else 3
    repeats = 1 if smoke else args.repeats
    report: dict[str, Any] = {
        "smoke": smoke, "torch": torch.__version__, "python": platform.python_version(),
        "device": str(device), "width": width, "batch": batch, "steps": steps, "items": {},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report.update(device_name=props.name, capability=list(torch.cuda.get_device_capability(device)),
                      memory_gib=round(props.total_memory / 2**30, 1))
    else:
        report.update(device_name=platform.processor() or platform.machine(), capability=None)
    report["auto_precision"] = choose_precision(device, "auto").name
    print(f"device {report['device_name']} ({device}), capability {report['capability']}, "
          f"--precision auto -> {report['auto_precision']}; torch {torch.__version__}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        """The report so far: a run stopped from outside (a time limit) keeps every finished item."""
        report["total_seconds"] = round(time.perf_counter() - start, 1)
        out.write_text(json.dumps(report, indent=2) + "\n")

    def item(name: str, fn: Callable[[], dict]) -> None:
        if args.only is not None and not any(text in name for text in args.only):
            return
        if any(text in name for text in args.skip):
            return
        if time.perf_counter() - start > args.budget_s:
            report["items"][name] = {"skipped": f"over the {args.budget_s:.0f} s budget"}
            print(f"  {name}: skipped (budget)")
            return
        report["items"][name] = {"unfinished": "started, and the run stopped before it ended"}
        write()
        t0 = time.perf_counter()
        try:
            result = fn()
        except Exception as err:  # one failing item must not lose the others
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=3)}
        result["item_seconds"] = round(time.perf_counter() - t0, 2)
        report["items"][name] = result
        write()
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in result.items() if k != "traceback"), flush=True)

    precisions = supported_precisions(device)
    for label, shape in SHAPES.items():
        for prec in precisions:
            item(f"steps {label} {prec}", lambda s=shape, q=prec: step_throughput(
                device, s, q, width, batch, steps, warmup, repeats))
            if prec != "fp16":  # float16's loss scaling cannot be captured (pddlite.graphs)
                item(f"steps {label} {prec} cuda-graphs", lambda s=shape, q=prec: step_throughput(
                    device, s, q, width, batch, steps, warmup, repeats, cuda_graphs=True))
                # without launch overhead the GPU's own work counts, which channels-last cuts (run 2)
                item(f"steps {label} {prec} cuda-graphs channels-last", lambda s=shape, q=prec: step_throughput(
                    device, s, q, width, batch, steps, warmup, repeats, channels_last=True, cuda_graphs=True))
        auto = report["auto_precision"]
        graph_precision = auto if auto != "fp16" else "fp32"
        for prec in dict.fromkeys([graph_precision, "fp32"] if label == "28x28" else [graph_precision]):
            item(f"graphs agree {label} {prec}", lambda s=shape, q=prec: graph_agreement(
                device, s, q, width, batch, steps=WARMUP_STEPS + 2 if smoke else 30))
            with deterministic_kernels():
                item(f"graphs agree {label} {prec} deterministic", lambda s=shape, q=prec: graph_agreement(
                    device, s, q, width, batch, steps=WARMUP_STEPS + 2 if smoke else 30))
        with compile_options(device):
            item(f"steps {label} {auto} compiled", lambda s=shape, q=auto: step_throughput(
                device, s, q, width, batch, steps, warmup + 2, repeats, compile=True))
        if label == "28x28":  # CUDA graphs of the compiled forward and backward passes (not the optimiser)
            with compile_options(device, mode="reduce-overhead"):
                item(f"steps {label} {auto} compiled reduce-overhead", lambda s=shape, q=auto: step_throughput(
                    device, s, q, width, batch, steps, warmup + 2, repeats, compile=True))
        for prec in precisions:
            item(f"steps {label} {prec} channels-last", lambda s=shape, q=prec: step_throughput(
                device, s, q, width, batch, steps, warmup, repeats, channels_last=True))
        for prec in precisions:
            for cl in (False, True):
                item(f"kernels {label} {prec}{' channels-last' if cl else ''}", lambda s=shape, q=prec, c=cl:
                     kernel_profile(device, s, q, width, batch, channels_last=c))

    # 3. a paper-profile MNIST task from the 28x28 step timings in the auto precision
    for suffix in ("", " cuda-graphs"):
        timed = report["items"].get(f"steps 28x28 {report['auto_precision']}{suffix}", {})
        if "tuneup_ms_per_step" in timed:
            per_epoch = MNIST_UNLABELED // PAPER_BATCH
            seconds = per_epoch * (PAPER_EPOCHS[0] * timed["pretrain_ms_per_step"] +
                                   PAPER_EPOCHS[1] * timed["tuneup_ms_per_step"]) / 1000
            note = "at smoke width and batch: not a paper figure" if smoke else "training steps only"
            report["items"][f"paper MNIST task (estimate){suffix}"] = {"seconds": round(seconds, 1), "assumes": note}
            print(f"  paper MNIST task (estimate){suffix}: {seconds:.1f} s ({note})")

    paper = "smoke" if smoke else "paper"
    item("real task mnist-5k", lambda: real_task(device, paper))
    if device.type == "cuda":
        item("real task mnist-5k cuda-graphs", lambda: real_task(device, paper, cuda_graphs=True))
    else:
        report["items"]["real task mnist-5k cuda-graphs"] = {"skipped": "PDD refuses CUDA graphs without CUDA"}
    item("real task mnist-5k fp32", lambda: real_task(device, paper, "fp32"))
    for name in args.notebooks:
        path = notebook_path(name)
        if smoke:
            report["items"][f"notebook {path.stem} (colab)"] = {"skipped": "smoke: the test suite executes every notebook"}
        else:
            item(f"notebook {path.stem} (colab)", lambda p=path: run_notebook(p.stem, out.with_name(f"{p.stem}.colab.ipynb")))

    # 4. the training of a whole paper MNIST task, measured (with CUDA graphs: the 60 s goal)
    sizes = ((1, 1), 8 * batch, width, batch) if smoke else (PAPER_EPOCHS, MNIST_UNLABELED)
    # as PDD trains with --cuda-graphs: channels-last on CUDA (pddlite.device.place), in the auto precision;
    # run 5 in experiments/results/gpu/ also has graphs alone (94.8 s) and float32 (67.3 s)
    item("paper MNIST task (measured) cuda-graphs", lambda: paper_task_training(
        device, True, *sizes, channels_last=device.type == "cuda"))
    write()
    print(f"done in {report['total_seconds']} s; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
