"""Screen tune-up and scoring levers on VALIDATION tasks (never on a test split).

Each (anomaly class, seed) gets the validation task of :func:`pddlite.make_validation_task`:
the prototypes of the real task, 20% of the normal training images held out, and the anomaly
class's own training images as the held-out anomalies. One pre-trained model per task and
pre-training setting is cached; every tune-up setting starts from it and is scored after each of
its epochs with every scoring, so one run of training answers many questions. Each finished
(task, pre-training, tune-up) appends its rows to a JSON-lines log and is skipped next time.

    python experiments/screen.py --anomalies 0 4 7 9 --seeds 0 --pretrain p8 --tuneups m2e-3 m2e-4
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from pddlite import PDD, make_validation_task
from pddlite.baselines import PixelCentroid, PixelKNN
from pddlite.embedding import embed, prototype_center, recalibrate_batchnorm
from pddlite.metrics import evaluate
from pddlite.scoring import PrototypeKDE, class_mean_score, median_intra_class_distance
from pddlite.tuneup import TuneUpTrainer

PRETRAIN = {  # PDD options of the pre-training stage (quick profile: half width, batch 200)
    "p8": dict(pretrain_epochs=8, lr=2e-3),
    "p8-lr2e-4": dict(pretrain_epochs=8, lr=2e-4),
    "p16": dict(pretrain_epochs=16, lr=2e-3),
}

TUNEUPS = {  # TuneUpTrainer options; "epochs" is how many epochs to run (scored after each)
    "adv-only": dict(margin_lr=0.0, epochs=4),
    "m2e-3": dict(margin_lr=2e-3, epochs=4),
    "m2e-4": dict(margin_lr=2e-4, epochs=4),
    "m5e-5": dict(margin_lr=5e-5, epochs=4),
    "m2e-4-aug": dict(margin_lr=2e-4, augment=True, epochs=4),
    "m5e-5-aug": dict(margin_lr=5e-5, augment=True, epochs=4),
    "m2e-3-aug": dict(margin_lr=2e-3, augment=True, epochs=4),
    "m2e-4-noadv": dict(margin_lr=2e-4, adversarial=False, epochs=4),
    # 12 epochs of a 2,736-image validation task are 156 steps: a 10,000-image task's 3 epochs
    "adv-long": dict(margin_lr=0.0, epochs=12),
    "m2e-3-long": dict(margin_lr=2e-3, epochs=12),
    "m2e-4-long": dict(margin_lr=2e-4, epochs=12),
    "m5e-5-long": dict(margin_lr=5e-5, epochs=12),
    # the same training as m2e-4-long / adv-long / the pre-training, scored also with the scorings
    # that use the unlabeled training images (PSEUDO_SCORINGS); the old scorings repeat, as a check
    "m2e-4-long-u": dict(margin_lr=2e-4, epochs=12),
    # the same again, scored after rank_score kept the exact order of images on the floor of a_n
    # (far from every prototype; before, they tied), at wider bandwidths too (PSEUDO_WIDTHS_V2)
    "m2e-4-long-u2": dict(margin_lr=2e-4, epochs=12),
    "adv-long-u": dict(margin_lr=0.0, epochs=12),
    # scored with an exponential moving average of the discriminator's weights over the tune-up
    "adv-ema-long": dict(margin_lr=0.0, ema_decay=0.95, epochs=12),
    "m2e-4-ema-long": dict(margin_lr=2e-4, ema_decay=0.95, epochs=12),
    "m2e-3-ema-long": dict(margin_lr=2e-3, ema_decay=0.95, epochs=12),
}


#: tune-ups (and "pretrained-u") whose epochs are also scored with the unlabeled images
UNLABELED_SCORED = {"m2e-4-long-u", "adv-long-u", "pretrained-u", "m2e-4-long-u2", "pretrained-u2"}
#: the pseudo-labeled scorings' widths (x the median within-class distance): first screen, and the
#: second (exact order on the floor of a_n, wider widths), used by the tune-ups named "...-u2"
PSEUDO_WIDTHS = (0.05, 0.1, 0.25, 0.5)
PSEUDO_WIDTHS_V2 = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def unlabeled_scorings(zp, y, zt, zu, median_intra, widths=PSEUDO_WIDTHS):
    """Scorings that also use the embedded unlabeled training images ``zu`` (inductive: fitted on
    training data only, each validation image scored on its own).

    * ``pseudo-kde-med<f>``: Eq. 7 with every unlabeled image added to the prototypes of the class
      of its nearest prototype (pseudo-labels), w = f x the prototypes' median within-class distance;
    * ``knn-u<k>``: the distance to the k-th nearest unlabeled image, whatever its class.
    """
    out = {}
    d_up = torch.cdist(zu.double(), zp.double())
    pseudo = y[d_up.argmin(dim=1)]
    z_all, y_all = torch.cat([zp, zu]), torch.cat([y, pseudo])
    for f in widths:
        out[f"pseudo-kde-med{f}"] = PrototypeKDE(f * median_intra).fit(z_all, y_all).rank_score(zt)
    d_tu = torch.cdist(zt.double(), zu.double())
    for k in (1, 5):
        out[f"knn-u{k}"] = d_tu.kthvalue(k, dim=1).values
    return out


def scorings(disc, task, bn_images, with_unlabeled=False, lean=False, widths=PSEUDO_WIDTHS):
    """name -> scores of the validation images, for one discriminator state (``lean``: only
    Eq. 7 at w = 0.25 x median and the scorings that use the unlabeled images)."""
    out = {}
    y = task.prototype_labels
    for bn in ((False,) if lean else (False, True)):
        d = recalibrate_batchnorm(copy.deepcopy(disc), bn_images) if bn else disc
        center = prototype_center(d, task.prototype_images)
        zp = embed(d, task.prototype_images, "center-l2", center)
        zt = embed(d, task.test_images, "center-l2", center)
        median_intra = median_intra_class_distance(zp, y)
        if bn:  # BatchNorm statistics from real images: only at the bandwidth that leads without it
            out["bn-kde-med0.25"] = PrototypeKDE(0.25 * median_intra).fit(zp, y).rank_score(zt)
            continue
        if with_unlabeled:
            zu = embed(d, bn_images, "center-l2", center)
            out.update(unlabeled_scorings(zp, y, zt, zu, median_intra, widths))
        if lean:
            out["kde-med0.25"] = PrototypeKDE(0.25 * median_intra).fit(zp, y).rank_score(zt)
            continue
        out["kde10"] = PrototypeKDE(10.0).fit(zp, y).rank_score(zt)
        for f in (0.1, 0.15, 0.25, 0.5, 1.0):
            out[f"kde-med{f}"] = PrototypeKDE(f * median_intra).fit(zp, y).rank_score(zt)
        out["class-mean"] = class_mean_score(zp, y, zt)
        out["knn"] = torch.cdist(zt.double(), zp.double()).min(dim=1).values
        rp = embed(d, task.prototype_images, "none")
        rt = embed(d, task.test_images, "none")
        out["raw-kde10"] = PrototypeKDE(10.0).fit(rp, y).rank_score(rt)
    return out


def rows_for(task, disc, bn_images, lean=False, **keys):
    rows = []
    widths = PSEUDO_WIDTHS_V2 if keys["tuneup"].endswith("-u2") else PSEUDO_WIDTHS
    for name, s in scorings(disc, task, bn_images, keys["tuneup"] in UNLABELED_SCORED, lean, widths).items():
        m = evaluate(task.test_is_anomaly.cpu(), s.cpu().numpy())
        rows.append({**keys, "scoring": name, "auroc": round(m["auroc"], 4), "auprc": round(m["auprc"], 4)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--anomalies", type=int, nargs="+", default=[0, 4, 7, 9])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pretrain", nargs="+", default=["p8"], choices=sorted(PRETRAIN))
    p.add_argument("--tuneups", nargs="+", default=["adv-only", "m2e-3"], choices=sorted(TUNEUPS))
    p.add_argument("--every", type=int, default=1, help="score every N-th tune-up epoch (and the last)")
    p.add_argument("--lean", action="store_true",
                   help="score only Eq. 7 at w = 0.25 x median and the scorings with the unlabeled images")
    p.add_argument("--log", default=str(Path(__file__).parent / "results" / "screen.jsonl"))
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "pddlite" / "screen"))
    args = p.parse_args()
    log, cache = Path(args.log), Path(args.cache)
    log.parent.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    done = set()
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if r.get("done"):
                done.add((r["dataset"], r["anomaly"], r["seed"], r["pretrain"], r["tuneup"]))
    torch.set_num_threads(2)
    for anomaly in args.anomalies:
        for seed in args.seeds:
            task = make_validation_task(args.dataset, anomaly, 20, seed)
            base = {"dataset": args.dataset, "split": "validation", "anomaly": anomaly, "seed": seed}
            for pre in args.pretrain:
                wanted = ["pretrained", "pretrained-v2", "pixel", *args.tuneups]
                if UNLABELED_SCORED & set(args.tuneups):
                    wanted += ["pretrained-u", "pixel-u"]
                if any(t.endswith("-u2") for t in args.tuneups):
                    wanted += ["pretrained-u2"]
                todo = [t for t in wanted
                        if (args.dataset, anomaly, seed, pre, t) not in done]
                if not todo:
                    continue
                t0 = time.time()
                model = PDD(profile="quick", seed=seed, device="cpu", progress=False,
                            checkpoint=cache / f"{args.dataset}-{anomaly}-{seed}-{pre}.pt",
                            normalization="center-l2", **PRETRAIN[pre]).pretrain(task)
                tr = task.subsample_train(model.config.max_train_images, seed=seed)
                bn_images = tr.train_images
                keys = {**base, "pretrain": pre}
                with log.open("a") as fh:
                    def emit(rows, tuneup):
                        for r in rows:
                            fh.write(json.dumps(r) + "\n")
                        fh.write(json.dumps({**keys, "tuneup": tuneup, "done": True,
                                             "seconds": round(time.time() - t0, 1)}) + "\n")
                        fh.flush()
                    # "pretrained-v2": the pre-trained model under the scorings added after the first screen
                    # (summarize.py reads it as "pretrained"); a new task's "pretrained" rows have them all
                    if "pretrained" in todo:
                        emit(rows_for(task, model.discriminator_, bn_images, **keys, tuneup="pretrained", epoch=0),
                             "pretrained")
                        emit([], "pretrained-v2")
                    elif "pretrained-v2" in todo:
                        emit(rows_for(task, model.discriminator_, bn_images, **keys, tuneup="pretrained-v2", epoch=0),
                             "pretrained-v2")
                    if "pretrained-u" in todo:
                        emit(rows_for(task, model.discriminator_, bn_images, args.lean, **keys, tuneup="pretrained-u", epoch=0),
                             "pretrained-u")
                    if "pretrained-u2" in todo:
                        emit(rows_for(task, model.discriminator_, bn_images, args.lean, **keys, tuneup="pretrained-u2", epoch=0),
                             "pretrained-u2")
                    if "pixel-u" in todo:  # the sanity check with the unlabeled images: kNN in pixel space
                        d = torch.cdist(task.test_images.flatten(1).double(), bn_images.flatten(1).double())
                        rows = []
                        for k in (1, 5):
                            m = evaluate(task.test_is_anomaly, d.kthvalue(k, dim=1).values.numpy())
                            rows.append({**keys, "tuneup": "pixel-u", "epoch": 0, "scoring": f"pixel-knn-u{k}",
                                         "auroc": round(m["auroc"], 4), "auprc": round(m["auprc"], 4)})
                        emit(rows, "pixel-u")
                    if "pixel" in todo:
                        rows = []
                        for det in (PixelKNN(), PixelCentroid()):
                            m = evaluate(task.test_is_anomaly, det.fit(task).decision_function(task.test_images))
                            rows.append({**keys, "tuneup": "pixel", "epoch": 0, "scoring": det.method,
                                         "auroc": round(m["auroc"], 4), "auprc": round(m["auprc"], 4)})
                        emit(rows, "pixel")
                    for name in [t for t in args.tuneups if t in todo]:
                        t0 = time.time()
                        opts = dict(TUNEUPS[name])
                        epochs = opts.pop("epochs")
                        margin_lr = opts.pop("margin_lr")
                        g, d = copy.deepcopy(model.generator_), copy.deepcopy(model.discriminator_)
                        trainer = TuneUpTrainer(g, d, task.prototype_images, task.prototype_labels,
                                                lr=model.config.lr, margin_lr=max(margin_lr, 1e-30),
                                                seed=seed + 7919, **opts)
                        if margin_lr == 0.0:
                            trainer.margin_step = lambda: torch.zeros(())
                        rows = []
                        for e in range(1, epochs + 1):
                            trainer.fit(tr.train_images, e, 200, progress=False)
                            if e % args.every and e != epochs:
                                continue
                            scored = d if trainer.ema is None else trainer.ema.average
                            rows += rows_for(task, scored, bn_images, args.lean, **keys, tuneup=name, epoch=e)
                        emit(rows, name)
                        print(f"anomaly {anomaly} seed {seed} {pre} {name}: {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
