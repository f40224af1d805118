"""Whole training steps replayed as CUDA graphs: one launch per step instead of hundreds.

At the paper's width (Tables 3-4) and batch of 200 (Table 2), a pddlite training step on a
data-centre GPU waits on Python launching its kernels, not on the GPU: on an H200, precision and
memory layout barely moved the step time, and compiling the forward passes made it slower
(docs/performance.md, the GPU tables). A CUDA graph records every kernel of one whole step (the forward and
backward passes, the losses and the Adam updates of every network) once, and replays them all with
one launch.

A replay runs exactly the kernels that were recorded, on the same memory, so a step can be
captured only when it

* reads its batch from fixed tensors: :class:`StepGraph` copies each batch into static inputs
  before a replay, and runs a batch of another shape eagerly;
* never makes the host wait for the GPU: no ``.item()``, no selection by a boolean mask, no float16
  loss scaling (its GradScaler looks for overflow on the host); Adam runs with ``capturable=True``
  (:func:`make_capturable`: its step count lives on the device), and the margin loss selects
  prototype pairs by indices computed once (:func:`pddlite.losses.pair_indices`);
* draws no random numbers inside: the trainers draw the generator's noise (and any augmented
  prototypes) in ``select``, before the step, so a replay trains on fresh noise from the same
  stream as an eager step would;
* makes no Python choice that changes between replays: learning rates and the sample notebook's
  alternating terms change by epoch, so a trainer recaptures at the start of every epoch.

:func:`host_syncs` names the operators of a computation that would make the host wait; it runs on
the CPU too, which lets the tests keep the trainers' steps capturable without a GPU.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .device import Precision
from .errors import PDDLiteError

#: eager steps before the first capture: they allocate Adam's state and let cuDNN pick its algorithms
WARMUP_STEPS = 3


def unsupported_setting(device: torch.device, precision: Precision, compile: bool) -> str | None:
    """Why CUDA graphs cannot train with these settings, or ``None`` if they can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, and this model trains on {device.type}"
    if precision.scales_loss:
        return ("CUDA graphs need bf16 or fp32: fp16's loss scaling checks every step for overflow on the host "
                "(use --precision fp32 on a GPU without bfloat16, such as a T4)")
    if compile:
        return "choose one of compile and cuda_graphs"
    return None


def refuse(reason: str | None) -> None:
    """One line naming why CUDA graphs cannot be used, and what to do; nothing if ``reason`` is None."""
    if reason is not None:
        raise PDDLiteError(f"{reason}: drop cuda_graphs (--cuda-graphs)")


def flatten(batch: Any) -> tuple[list[torch.Tensor], Callable[[Sequence[torch.Tensor]], Any]]:
    """The tensors of a tensor or a nested tuple of tensors, and a function that rebuilds the same
    structure from a list of tensors in that order."""
    if isinstance(batch, torch.Tensor):
        return [batch], lambda leaves: leaves[0]
    if not isinstance(batch, tuple):
        raise TypeError(f"a training step's batch must be a tensor or a tuple of them, got {type(batch).__name__}")
    parts = [flatten(part) for part in batch]
    sizes = [len(leaves) for leaves, _ in parts]

    def rebuild(leaves: Sequence[torch.Tensor]) -> tuple:
        out, at = [], 0
        for (_, build), size in zip(parts, sizes):
            out.append(build(leaves[at:at + size]))
            at += size
        return tuple(out)

    return [t for leaves, _ in parts for t in leaves], rebuild


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Let ``optimizer`` (Adam) step inside a CUDA graph: ``capturable=True`` keeps its step count
    on the parameters' device, so the bias correction needs no host value. Existing state (a resumed
    run) has its step counts moved there. Called again after ``load_state_dict``, which restores the
    saved ``capturable=False``."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "step" in state and torch.is_tensor(state["step"]) and state["step"].device != p.device:
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)


class CapturedStep:
    """One step recorded as a CUDA graph: ``replay()`` runs it again on the same tensors, and
    ``outputs`` holds what the recorded call returned, overwritten by every replay."""

    def __init__(self, step: Callable[[Any], Sequence[torch.Tensor]], static_batch: Any):
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = tuple(step(static_batch))

    def replay(self) -> None:
        self.graph.replay()


class ReplayEagerly:
    """A stand-in for :class:`CapturedStep` that works on any device: capturing records nothing, and
    each replay runs the step on the static batch and copies its results into fixed outputs. It is
    no faster; it checks :class:`StepGraph`'s bookkeeping without a GPU (the tests, and
    ``benchmarks/gpu_check.py --device cpu --smoke``), since a real replay must train exactly so."""

    def __init__(self, step: Callable[[Any], Sequence[torch.Tensor]], static_batch: Any):
        self.step, self.batch = step, static_batch
        self.outputs: tuple[torch.Tensor, ...] | None = None

    def replay(self) -> None:
        out = tuple(self.step(self.batch))
        if self.outputs is None:
            self.outputs = tuple(t.clone() for t in out)
        else:
            for kept, new in zip(self.outputs, out):
                kept.copy_(new)


def _warm_up(step: Callable[[Any], Sequence[torch.Tensor]], batch: Any, device: torch.device) -> tuple:
    """An eager step; on CUDA on a side stream, as capture requires of the steps before it."""
    if device.type != "cuda":
        return tuple(step(batch))
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        out = tuple(step(batch))
    torch.cuda.current_stream(device).wait_stream(side)
    return out


class StepGraph:
    """Calls ``step(batch)`` as a CUDA graph: :data:`WARMUP_STEPS` eager steps, then each batch is
    copied into static inputs and the captured step replayed.

    Every call trains on its batch exactly once, eagerly, by the capture (a capture records and runs
    nothing, so the captured batch is then replayed), or by a replay. A batch whose tensors differ in
    shape, dtype or device from the captured ones runs eagerly. :meth:`reset` drops the graph; the
    next call recaptures. The returned tensors of a replayed step are the graph's outputs: the next
    replay overwrites them, so read (or add) them before the next call.

    If a capture fails (the step synchronises, say), the error is given once as a warning and every
    later step runs eagerly: ``failure`` holds the reason. ``capture`` makes the graph (default:
    :class:`CapturedStep`); the tests hand in a stand-in that runs on the CPU.
    """

    def __init__(self, step: Callable[[Any], Sequence[torch.Tensor]], warmup: int = WARMUP_STEPS,
                 capture: Callable[[Callable, Any], Any] = CapturedStep):
        self.step = step
        self.warmup_left = int(warmup)
        self.capture = capture
        self.failure: str | None = None
        self.counts = {"eager": 0, "captures": 0, "replays": 0}
        self.reset()

    def reset(self) -> None:
        """Forget the captured step (a learning rate or another Python-side choice changed)."""
        self._captured = None
        self._static: list[torch.Tensor] = []
        self._signature: list[tuple] = []

    def __call__(self, batch: Any) -> tuple[torch.Tensor, ...]:
        leaves, rebuild = flatten(batch)
        signature = [(t.shape, t.dtype, t.device) for t in leaves]
        if self.failure is None and self._captured is None and self.warmup_left <= 0:
            self._capture(leaves, rebuild, signature)
        if self._captured is not None and signature == self._signature:
            for static, t in zip(self._static, leaves):
                static.copy_(t)
            self._captured.replay()
            self.counts["replays"] += 1
            return self._captured.outputs
        self.warmup_left -= 1
        self.counts["eager"] += 1
        return _warm_up(self.step, batch, leaves[0].device)

    def _capture(self, leaves: list[torch.Tensor], rebuild: Callable, signature: list[tuple]) -> None:
        static = [t.clone() for t in leaves]
        try:
            self._captured = self.capture(self.step, rebuild(static))
        except RuntimeError as err:
            self.failure = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"this training step could not be captured as a CUDA graph ({self.failure}); "
                          "it runs eagerly from now on", RuntimeWarning, stacklevel=3)
            return
        self._static, self._signature = static, signature
        self.counts["captures"] += 1


# ----------------------------------------------------------------------------- finding host syncs

#: operators whose result the host must read before it can go on (their output size, or a value)
_SYNCING = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "unique_consecutive", "masked_select",
            "repeat_interleave", "equal", "_assert_async"}


class _SyncRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _SYNCING:
            self.found.append(name)
        elif name in ("index", "index_put", "index_put_") and _has_bool_index(args):
            self.found.append(f"{name} (boolean mask)")
        return func(*args, **(kwargs or {}))


def _has_bool_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(torch.is_tensor(i) and i.dtype == torch.bool for i in (indices or ()))


def host_syncs(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    """Run ``fn(*args, **kwargs)`` and name, in order, each operator it called that makes the host
    wait for the device (``.item()``, ``nonzero``, boolean-mask indexing, ``unique``, ...): what a
    CUDA graph cannot capture. Works on any device: on the CPU it finds what would sync on a GPU."""
    with _SyncRecorder() as recorder:
        fn(*args, **kwargs)
    return recorder.found
