"""Every method that ``pddlite run --method`` and the grid know: one table of detectors, written out below.

Each is a :class:`pddlite.detector.Detector`; :func:`pddlite.experiment.run_task` builds one with
the run's options, calls its :meth:`~pddlite.detector.Detector.run` on one task (PDD:
:func:`pddlite.experiment.pdd_row`, with the ablation) and turns the metrics into a result row.
Adding a baseline is one file in :mod:`pddlite.baselines` and one line here.
"""

from __future__ import annotations

from .baselines import EGBAD, MCDD, DeepSVDD, GANomaly, PixelCentroid, PixelKNN, PixelKNNUnlabeled
from .detector import Detector
from .pdd import PDD

#: method name -> detector. PDD first, then the paper's baselines, Deep SVDD and the pixel-space checks.
METHODS: dict[str, type[Detector]] = {
    "pdd": PDD,
    "egbad": EGBAD,
    "ganomaly": GANomaly,
    "mcdd": MCDD,
    "deepsvdd": DeepSVDD,
    "pixel-knn": PixelKNN,
    "pixel-centroid": PixelCentroid,
    "pixel-knn-unlabeled": PixelKNNUnlabeled,
}
