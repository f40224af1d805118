"""pddlite: Prototype Data Description (Ando & Yamamoto), as a thin, tested PyTorch library.

The pieces follow the paper: tasks with K-shot prototypes (:mod:`pddlite.data`), the GAN of
Tables 3-4 (:mod:`pddlite.nets`, :mod:`pddlite.gan`), the margin losses of Eqs. 4-6
(:mod:`pddlite.losses`), the tune-up (:mod:`pddlite.tuneup`), Eq. 7 scoring
(:mod:`pddlite.scoring`), the estimator (:class:`pddlite.PDD`) and the metrics (:mod:`pddlite.metrics`).

References:

* Shin Ando and Ayaka Yamamoto, "Anomaly Detection via Few-shot Learning on Normality"
  (School of Management, Tokyo University of Science): the paper, cited throughout by its
  section, equation, table and figure numbers. How to cite it: ``CITATION.cff``.
* The authors' sample notebook, ``PDD_MNIST_sample.ipynb`` in https://github.com/ProtoDD/pdd
  (the paper's footnote 1): the ``reference`` variant (:mod:`pddlite.variants`) reproduces it.
* The baselines' public code, as the paper's footnotes name it: EGBAD
  (houssamzenati/Efficient-GAN-Anomaly-Detection), GANomaly (samet-akcay/ganomaly), MCDD
  (donalee/DeepMCDD); and Deep SVDD (lukasruff/Deep-SVDD-PyTorch). See :mod:`pddlite.baselines`.
"""

from .data import Task, make_task, make_task_from_arrays, make_validation_task
from .errors import PDDLiteError
from .metrics import auprc, auroc
from .pdd import PDD, PDDConfig
from .profiles import get_profile
from .scoring import PrototypeKDE, UMAPKDE

__version__ = "0.1.0"

__all__ = [
    "PDD", "PDDConfig", "PDDLiteError", "PrototypeKDE", "Task", "UMAPKDE",
    "auprc", "auroc", "get_profile", "make_task", "make_task_from_arrays", "make_validation_task", "__version__",
]
