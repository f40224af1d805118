"""Executed copies of the notebooks, to read before running: ``docs/course/NN_name.ipynb``.

The notebooks under ``notebooks/`` are stored without outputs (CI runs them). This script runs
one or more of them in a profile with nbclient, in the ``notebooks/`` folder as nbval does, and
writes each executed copy to ``docs/course/`` (outside ``notebooks/``, so nbval does not collect
it), with one line above the title that says which profile and device produced it. The copy's
code cells are the source's, unchanged: ``tests/test_executed_copies.py`` checks that they stay
equal, so a copy cannot drift from its notebook silently. Regenerate a copy after its notebook
changes::

    python benchmarks/execute_course.py --profile quick                  # all nine, in order
    python benchmarks/execute_course.py --profile quick 00 04            # some of them
    python benchmarks/execute_course.py --profile colab --device-name "Colab T4 GPU"
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
COPIES = ROOT / "docs" / "course"
#: the first line of every executed copy; tests/test_executed_copies.py reads it back
STAMP = "*Executed copy, with outputs: run in the `{profile}` profile on {device} in {minutes:.0f} min. " \
        "The notebook to run is [notebooks/{name}](../../notebooks/{name}).*"


def device_name() -> str:
    """What the notebooks will train on here, in words: the GPU's name, or the CPU and its cores."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"one {torch.cuda.get_device_name(0)} GPU"
    except ImportError:
        pass
    return f"a CPU ({os.cpu_count()} cores, {platform.machine()})"


def _local_paths_removed(nb: nbformat.NotebookNode, folder: Path) -> None:
    """Outputs name files relative to the folder the notebook ran in, and the home folder as ~:
    a copy says nothing about the machine's folders."""
    swaps = [(f"{folder.resolve()}/", ""), (str(folder.resolve()), "."), (str(Path.home()), "~")]

    def clean(text: str) -> str:
        for old, new in swaps:
            text = text.replace(old, new)
        return text

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            for kind, value in output.get("data", {}).items():
                if kind.startswith("text/") and isinstance(value, str):
                    output["data"][kind] = clean(value)


def execute(source: Path, out_dir: Path, profile: str, device: str | None = None, timeout: int = 7200) -> Path:
    """Run ``source`` in ``profile`` and write its executed copy into ``out_dir``; returns the copy's path."""
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    os.environ["PDDLITE_PROFILE"] = profile  # the kernel inherits it: setup() reads it
    start = time.monotonic()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    minutes = (time.monotonic() - start) / 60
    nb.metadata.pop("widgets", None)  # widget state does not render outside a live kernel
    _local_paths_removed(nb, source.parent)
    stamp = STAMP.format(profile=profile, device=device or device_name(), minutes=minutes, name=source.name)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(stamp))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / source.name
    nbformat.write(nb, target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all, in order)")
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "colab", "paper"])
    parser.add_argument("--device-name", default=None, help="how the stamp names the device (default: detected)")
    parser.add_argument("--out", type=Path, default=COPIES)
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    args = parser.parse_args(argv)
    chosen = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.notebooks:
        chosen = [p for p in chosen if any(p.name.startswith(n.removesuffix(".ipynb")) for n in args.notebooks)]
        if not chosen:
            sys.exit(f"no notebook under {NOTEBOOKS} starts with {', '.join(args.notebooks)}")
    for path in chosen:
        print(f"{path.name} ({args.profile}) ...", flush=True)
        print(f"  wrote {execute(path, args.out, args.profile, args.device_name, args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
