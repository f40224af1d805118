"""``pddlite run``: the JSON row, the printed metrics, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pddlite.cli import main

SMOKE = ["run", "--profile", "smoke", "--device", "cpu", "--no-progress"]


def test_run_smoke_writes_one_json_row(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(SMOKE + ["--dataset", "mnist-5k", "--anomaly", "1", "--shots", "20", "--seed", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "after pre-training:     AUROC" in printed and "after the tune-up (pddlite): AUROC" in printed
    assert "adversarial steps only: AUROC" in printed and "(test split" in printed
    row = json.loads(out.read_text())
    for key in ("dataset", "anomaly", "shots", "seed", "profile", "variant", "split", "pretrain_auroc",
                "pretrain_auprc", "adversarial_only_auroc", "adversarial_only_auprc", "auroc", "auprc", "seconds"):
        assert key in row, key
    assert (row["dataset"], row["anomaly"], row["shots"], row["seed"], row["profile"], row["variant"], row["split"]) == (
        "mnist-5k", 1, 20, 0, "smoke", "pddlite", "test")
    assert 0 <= row["auroc"] <= 1 and 0 <= row["auprc"] <= 1 and row["seconds"] > 0
    assert row["precision"] == "fp32" and row["compile"] is False
    # the printed numbers are the written ones
    assert f"AUROC {row['auroc']:.4f}" in printed and f"AUPRC {row['pretrain_auprc']:.4f}" in printed


def test_compile_reaches_the_trainer_and_the_row(tmp_path, eager_compile):
    out = tmp_path / "result.json"
    assert main(SMOKE + ["--method", "deepsvdd", "--compile", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["compile"] is True
    assert eager_compile and all(type(net).__name__.startswith("SVDD") for net in eager_compile)


def test_profile_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PDDLITE_PROFILE", "smoke")
    out = tmp_path / "r.json"
    assert main(["run", "--device", "cpu", "--no-progress", "--anomaly", "3", "7", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["profile"] == "smoke" and row["anomaly"] == [3, 7]


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pddlite: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--profile", "huge"], "unknown profile"),
        (["--anomaly", "12"], "has no class 12"),
        (["--shots", "1000"], "fewer than shots=1000"),
        (["--anomaly", *map(str, range(10))], "every class is marked anomalous"),
        (["--method", "svm"], "unknown method"),
    ],
)
def test_bad_input_gets_one_line(capsys, extra, expected):
    assert expected in _one_line_error(capsys, SMOKE + extra)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cuda_asked_for_but_absent(capsys):
    err = _one_line_error(capsys, ["run", "--profile", "smoke", "--device", "cuda"])
    assert "CUDA is not available" in err and "--device cpu" in err


def test_offline_download_says_how_to_proceed(capsys, tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    def offline(*args, **kwargs):  # what urllib raises on a machine without a network
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    err = _one_line_error(capsys, SMOKE + ["--dataset", "mnist", "--data-dir", str(tmp_path)])
    assert "--data-dir" in err and "mnist-5k" in err


def test_checkpoint_of_another_architecture(capsys, tmp_path):
    ckpt = tmp_path / "model.pt"
    assert main(SMOKE + ["--checkpoint", str(ckpt)]) == 0
    capsys.readouterr()
    err = _one_line_error(capsys, ["run", "--profile", "quick", "--device", "cpu", "--no-progress",
                                   "--checkpoint", str(ckpt)])
    assert "architecture" in err


def test_console_script_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "pddlite.cli", "run", "--dataset", "nope", "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "Traceback" not in proc.stderr and "unknown dataset" in proc.stderr


def test_ctrl_c_says_how_to_go_on_with_what_was_interrupted(capsys, monkeypatch, tmp_path):
    import pddlite.cli
    import pddlite.grid

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pddlite.cli, "run_task", interrupt)
    monkeypatch.setattr(pddlite.grid, "run_task", interrupt)
    grid = ["replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--anomalies", "1", "--reps", "1",
            "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", str(tmp_path)]
    for argv, advice in ((grid, "run the same command again: finished runs are kept"),
                         (SMOKE, "a run with --checkpoint resumes where it stopped"),
                         (SMOKE + ["--method", "pixel-knn"], "pixel-knn keeps no checkpoint")):
        assert main(argv) == 130
        err = capsys.readouterr().err.strip()
        assert err.startswith("pddlite: interrupted (") and advice in err and "\n" not in err
        # only a PDD run has a --checkpoint to resume from
        assert ("--checkpoint" in err) == (argv is SMOKE)


def test_an_empty_or_unknown_profile_variable_is_named(monkeypatch, capsys, tmp_path):
    import pddlite.cli

    monkeypatch.setattr(pddlite.cli, "run_task", lambda **kw: pytest.fail("trained with a bad profile"))
    monkeypatch.setenv("PDDLITE_PROFILE", "nonsense")
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--dry-run",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "PDDLITE_PROFILE is 'nonsense', not a profile" in err and "\n" not in err
    monkeypatch.setenv("PDDLITE_PROFILE", "")  # empty means unset: the default profile
    assert main(["replicate", "--datasets", "mnist-5k", "--methods", "pixel-knn", "--dry-run",
                 "--out", str(tmp_path)]) == 0
    assert "(profile quick)" in capsys.readouterr().out


def test_a_finished_row_whose_out_cannot_be_written_is_kept_and_named(monkeypatch, capsys, tmp_path):
    import shutil

    import pddlite.cli
    import pddlite.files

    def run_then_block(**kwargs):  # the --out folder turns into a file while the run trains
        shutil.rmtree(tmp_path / "out")
        (tmp_path / "out").write_text("in the way")
        return {"split": "test", "auroc": 0.75, "auprc": 0.5, "seconds": 1.0, "device": "cpu"}

    monkeypatch.setattr(pddlite.cli, "run_task", run_then_block)
    monkeypatch.setattr(pddlite.files.tempfile, "gettempdir", lambda: str(tmp_path / "kept"))
    (tmp_path / "kept").mkdir()
    assert main(["run", "--method", "mcdd", "--profile", "smoke", "--out", str(tmp_path / "out" / "row.json")]) == 2
    err = capsys.readouterr().err.strip()
    kept = list((tmp_path / "kept").iterdir())
    assert len(kept) == 1 and json.loads(kept[0].read_text())["auroc"] == 0.75
    assert f"the result row is kept in {kept[0]}" in err and "\n" not in err
