"""The baselines of Sec. 5, on exactly the same tasks as PDD.

* :class:`EGBAD` and :class:`GANomaly`: unsupervised GAN-based detectors (Figs. 3-5).
* :class:`MCDD`: multi-class data description trained with the labels of all normal data (Figs. 6-8).
* :class:`DeepSVDD`: one hypersphere around all normal data, the single-enclosure baseline that the
  paper's introduction argues against.
* :class:`PixelKNN`, :class:`PixelCentroid` and :class:`PixelKNNUnlabeled`: sanity baselines in
  pixel space on the same prototypes (the last also on the unlabeled images), with no training
  (not in the paper).

Each is a :class:`pddlite.detector.Detector` like :class:`pddlite.PDD` (``fit``, then
``decision_function`` with higher = more anomalous) and a ``--method`` of ``pddlite run`` and
``pddlite replicate``, listed in :data:`pddlite.methods.METHODS`. Every module docstring lists its hyper-parameters and their sources.
"""

from .deepsvdd import DeepSVDD
from .egbad import EGBAD
from .ganomaly import GANomaly
from .mcdd import MCDD
from .pixel import PixelCentroid, PixelKNN, PixelKNNUnlabeled

__all__ = ["DeepSVDD", "EGBAD", "GANomaly", "MCDD", "PixelCentroid", "PixelKNN", "PixelKNNUnlabeled"]
