"""Anomaly scores from embedded prototypes: Eq. 7 of the paper and the sample notebook's variant.

:class:`PrototypeKDE` is Eq. 7: a Gaussian KDE D^(n) per normal class n on its embedded
prototypes, scaled by that density's largest and smallest value on the OTHER classes' prototypes,

    a_n(x) = (D^(n)(f(x)) - D_max^(n)) / (D_max^(n) - D_min^(n)),    A(x) = exp(-max_n a_n(x)).

Everything is computed from log-densities in float64. The Gaussian normalising constant cancels in
a_n, and dividing numerator and denominator by D_max gives

    a_n = expm1(l_n - l_max) / -expm1(l_min - l_max),        l = log D,

which never needs a density itself: in 3,136 dimensions the densities underflow to zero and their
ratios overflow, while their logarithms are ordinary numbers.

:class:`UMAPKDE` is the sample notebook's scoring: UMAP to 3-D, a scikit-learn KDE per class,
and per-class scaling by the max and 0.9-quantile of the scored log-densities.

Both follow one protocol (:class:`Scorer`): ``fit(z_proto, y_proto, z_train=None)``, then
``score(z)`` and ``rank_score(z)`` as float64 tensors, higher = more anomalous; ``rank_score``
orders points exactly as ``score`` does, without its saturation. :func:`make_scorer` builds and
fits the one a PDD configuration names; the estimator and the ablations both use it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Iterator, Protocol

import numpy as np
import torch

from . import options
from .errors import PDDLiteError

_FLOAT64_MAX = float(np.finfo(np.float64).max)
_LARGE = 300.0  # above this, asinh(a) = log(2a) to double precision and exp(l - l_max) is huge


def _as_float64(z: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(z).detach()
    if t.ndim != 2:
        raise PDDLiteError(f"{name} must be an N x d matrix of embeddings, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise PDDLiteError(f"{name} contains NaN or inf: the embedding network has diverged")
    return t


#: the scorings a PDD configuration can name (``PDDConfig.scoring``)
SCORINGS = ("kde", "kde-pseudo", "umap", "umap-inductive")


class Scorer(Protocol):
    """What the estimator needs of a scorer: fitted on embedded prototypes, it scores embeddings."""

    def fit(self, z_proto, y_proto, z_train=None) -> "Scorer": ...

    def score(self, z) -> torch.Tensor: ...

    def rank_score(self, z) -> torch.Tensor: ...


class PrototypeKDE:
    """Eq. 7: class-wise Gaussian KDE on embedded prototypes, scaled by the other classes' prototypes.

    Args:
        bandwidth: the kernel width w (Sec. 5.1: w = 10).
        chunk_size: test points scored at once (bounds memory at chunk x classes x prototypes).

    Fitted attributes: ``classes_`` (sorted labels), ``prototypes_`` (float64), ``labels_``,
    ``log_dmax_`` and ``log_dmin_`` (log D_max^(n), log D_min^(n) per class).

    If D_max^(n) == D_min^(n) (for instance when only one other prototype exists) the scale is
    taken as D_max^(n), that is D_min^(n) is treated as 0: a_n = D^(n)/D_max^(n) - 1.
    """

    def __init__(self, bandwidth: float = 10.0, chunk_size: int = 2048):
        self.bandwidth = options.positive("bandwidth", bandwidth)
        self.chunk_size = options.whole("chunk_size", chunk_size)

    # ------------------------------------------------------------------ fitting
    def fit(self, z_proto: np.ndarray | torch.Tensor, y_proto: np.ndarray | torch.Tensor,
            z_train: np.ndarray | torch.Tensor | None = None) -> "PrototypeKDE":
        """Store the embedded prototypes and compute D_max^(n), D_min^(n) (in log space).

        Eq. 7 reads the prototypes alone: ``z_train`` is accepted for the :class:`Scorer`
        protocol and not used."""
        z = _as_float64(z_proto, "prototype embeddings")
        y = torch.as_tensor(np.asarray(y_proto.cpu() if isinstance(y_proto, torch.Tensor) else y_proto))
        y = y.to(torch.int64).flatten().to(z.device)
        if len(y) != len(z):
            raise PDDLiteError(f"{len(z)} prototype embeddings but {len(y)} labels")
        classes = torch.unique(y)
        if len(classes) < 2:
            raise PDDLiteError("Eq. 7 needs prototypes of at least two normal classes (D_max uses the others)")
        self.classes_ = classes
        self.prototypes_ = z
        self.labels_ = y
        self._member = y[None, :] == classes[:, None]  # C x P
        self._columns = [torch.nonzero(m).flatten() for m in self._member]  # each class's prototypes
        log_d = self.log_density(z)  # P x C
        other = ~self._member.T  # P x C: prototype p is of another class than column n
        self.log_dmax_ = log_d.masked_fill(~other, float("-inf")).max(dim=0).values
        self.log_dmin_ = log_d.masked_fill(~other, float("inf")).min(dim=0).values
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "prototypes_"):
            raise PDDLiteError("this PrototypeKDE is not fitted yet: call fit(z_proto, y_proto) first")

    # ------------------------------------------------------------------ densities
    def log_density(self, z: np.ndarray | torch.Tensor, held: torch.Tensor | None = None) -> torch.Tensor:
        """log D^(n)(z) for every class n (columns in sorted class order), the full Gaussian KDE.

        Equals scikit-learn's ``KernelDensity(kernel="gaussian", bandwidth=w).score_samples``
        fitted on class n's prototypes. ``held[i]`` (where >= 0) is the prototype that point i
        itself is: its own kernel is left out of its density, as a new point's would have none.
        """
        self._check_fitted()
        z = _as_float64(z, "embeddings").to(self.prototypes_.device)
        p = self.prototypes_
        if z.shape[1] != p.shape[1]:
            raise PDDLiteError(f"embeddings have {z.shape[1]} dimensions, the prototypes {p.shape[1]}")
        d = p.shape[1]
        centre = p.mean(dim=0, keepdim=True)  # centring keeps ||a||^2 + ||b||^2 - 2ab accurate
        p = p - centre
        p_sq = (p * p).sum(1)
        counts = self._member.sum(1).to(torch.float64)
        log_norm = counts.log() + 0.5 * d * math.log(2 * math.pi * self.bandwidth**2)
        out = []
        for start in range(0, len(z), self.chunk_size):
            part = z[start:start + self.chunk_size] - centre
            d2 = ((part * part).sum(1)[:, None] + p_sq[None, :] - 2.0 * part @ p.T).clamp_min(0.0)
            e = -d2 / (2.0 * self.bandwidth**2)  # N x P
            if held is not None:
                own = held[start:start + self.chunk_size].to(e.device)
                rows = torch.nonzero(own >= 0).flatten()
                e[rows, own[rows]] = float("-inf")
            # one log-sum-exp per class over its own columns: memory N x P, whatever the classes
            log_d = torch.stack([torch.logsumexp(e[:, cols], dim=1) for cols in self._columns], dim=1)
            out.append(log_d - log_norm[None, :])
        return torch.cat(out)

    def _log_ratios(self, z: np.ndarray | torch.Tensor,
                    held: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(l - l_max, -expm1(l_min - l_max)) per point and class: the pieces of a_n."""
        delta = self.log_density(z, held) - self.log_dmax_[None, :]
        gap = self.log_dmin_ - self.log_dmax_
        scale = -torch.expm1(gap)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # D_max == D_min: divide by D_max
        return delta, scale

    def scaled_density(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """a_n(x) of Eq. 7 for every normal class n (columns in sorted class order), float64.

        a_n can exceed the float64 range for points far closer to class n than any other class's
        prototype is (exp of more than 709); such entries are clipped to the largest float64.
        Use :meth:`rank_score` for an exact ranking.
        """
        delta, scale = self._log_ratios(z)
        a = torch.expm1(delta.clamp(max=709.0)) / scale[None, :]
        return torch.nan_to_num(a, posinf=_FLOAT64_MAX, neginf=-_FLOAT64_MAX).clamp(-_FLOAT64_MAX, _FLOAT64_MAX)

    def score(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A(x) = exp(-max_n a_n(x)) of Eq. 7, float64; higher = more anomalous.

        The literal value saturates at the ends of the float64 range (0 for very normal points, the
        largest float64 where D_max is barely above D_min); :meth:`rank_score` has the same order
        without saturation.
        """
        a_max = self.scaled_density(z).max(dim=1).values
        return torch.exp(-a_max).clamp(max=_FLOAT64_MAX)

    def rank_score(self, z: np.ndarray | torch.Tensor, held: torch.Tensor | None = None) -> torch.Tensor:
        """-asinh(max_n a_n(x)): finite for every finite input, and strictly increasing in A(x).

        ``held``: see :meth:`log_density` (the scores of points the KDE holds, each without its own kernel).

        A strictly increasing transform of A(x) gives the same AUROC and AUPRC. asinh is odd and
        increasing, so it keeps the ordering of a_n across classes too; for large a it equals
        log(2a), which is computed from l - l_max without ever forming the density ratio.

        At the other end a_n = (D^(n) - D_max^(n)) / (D_max^(n) - D_min^(n)) has the floor -1 / s_n
        (s_n = 1 - D_min^(n) / D_max^(n)), which it meets in float64 once D^(n) / D_max^(n) is
        below about 1e-16: images far from every prototype, common when w is small. Their a_n all
        round to the same floor and would tie. Exactly, max_n a_n there is -1 / s_n + D^(n) /
        (D_max^(n) s_n) for the class(es) n of the highest floor, so such images are ranked by that
        class's log density (lower density: more anomalous), above every image off the floor
        (classes whose floors agree to 1e-12 count as one floor: the highest density among them).
        Off the floor the value is -asinh(max_n a_n) itself.
        """
        delta, scale = self._log_ratios(z, held)
        direct = torch.asinh(torch.expm1(delta.clamp(max=_LARGE)) / scale[None, :])
        # large a: asinh(a) = log(2a) = log 2 + delta + log1p(-exp(-delta)) - log(scale)
        large = math.log(2.0) + delta + torch.log1p(-torch.exp(-delta.clamp(min=_LARGE))) - torch.log(scale)[None, :]
        t = torch.where(delta > _LARGE, large, direct)
        rank = -t.max(dim=1).values
        # the floor: the highest of the classes' floors asinh(-1 / s_n), and the classes that reach it
        # (to 1e-12: floors that are equal in exact arithmetic can differ in their last bits)
        floors = torch.asinh(-1.0 / scale)
        top = floors >= floors.max() - 1e-12 * floors.max().abs()
        at_floor = rank >= -floors.max()
        # exactly, a_n - floor_n = exp(delta_n) / s_n there: its log orders the images on the floor
        key = (delta[:, top] - torch.log(scale[top])[None, :]).max(dim=1).values
        return torch.where(at_floor, -floors.max() + 1.0 + torch.nn.functional.softplus(-key), rank)


def median_intra_class_distance(z: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """The median Euclidean distance between two prototypes of the same class: the embedding's scale.

    pddlite's Eq. 7 bandwidth is a multiple of it (``bandwidth_unit="intra-median"``), so that
    the kernel is as wide as a class is, whatever the units of the embedding.
    """
    zt = _as_float64(z, "prototype embeddings")
    yt = torch.as_tensor(np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)).to(zt.device).flatten()
    same = (yt[:, None] == yt[None, :]) & torch.ones(len(yt), len(yt), dtype=torch.bool, device=zt.device).triu(1)
    if not bool(same.any()):
        raise PDDLiteError("the bandwidth's scale needs two prototypes of one class")
    d = torch.cdist(zt, zt)[same]
    scale = float(torch.quantile(d, 0.5))  # the interpolated median (torch.median takes the lower one)
    if not scale > 0:
        raise PDDLiteError("the prototypes of every class coincide in the embedding: no scale for the bandwidth")
    return scale


def class_mean_score(z_proto: np.ndarray | torch.Tensor, y_proto: np.ndarray | torch.Tensor,
                     z: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The limit of Eq. 7 for unit-norm embeddings and a wide kernel (w >> 1), as an anomaly score.

    With ||z|| = ||p|| = 1, ||z - p||^2 / (2 w^2) = (1 - z.p) / w^2, so for w >> 1
    log D^(n)(z) = const + z.mu_n / w^2 + O(w^-4), mu_n the mean of class n's prototypes; D^(n)
    is then affine in z.mu_n, and Eq. 7's scaling by the other classes' prototypes turns it into

        a_n(z) = (z.mu_n - M_n) / (M_n - m_n),  M_n, m_n = max, min of p.mu_n over the other classes' p:

    the min-max-scaled dot product with the class mean, in which w has cancelled. Returns
    -max_n a_n(z) (higher = more anomalous), which ranks points as Eq. 7 does in that limit.
    """
    zp, zt = _as_float64(z_proto, "prototype embeddings"), _as_float64(z, "embeddings")
    yt = torch.as_tensor(np.asarray(y_proto.cpu() if isinstance(y_proto, torch.Tensor) else y_proto)).flatten()
    classes = torch.unique(yt)
    member = (yt[None, :] == classes[:, None]).to(zp.device)  # C x P
    means = (member.double() @ zp) / member.sum(1, keepdim=True)  # C x d
    on_protos = zp @ means.T  # P x C
    other = ~member.T
    hi = on_protos.masked_fill(~other, float("-inf")).max(dim=0).values
    lo = on_protos.masked_fill(~other, float("inf")).min(dim=0).values
    scale = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    return -((zt.to(zp.device) @ means.T - hi) / scale).max(dim=1).values


class UMAPKDE:
    """The sample notebook's scoring: UMAP to 3-D, one KDE per class, scaling by scored log-densities.

    For each class n, a scikit-learn Gaussian ``KernelDensity(bandwidth)`` is fitted on the class's
    prototypes in the UMAP space; a test point's log-density s is scaled as
    (s - max(s)) / (max(s) - quantile_q(s)) over a reference set; the anomaly score is minus the
    largest scaled value over the classes.

    ``transductive=True`` (the notebook): UMAP is fitted on the test and prototype embeddings
    together, and the reference set of the scaling is the scored test set itself, so each test
    score depends on the rest of the test set. ``transductive=False``: UMAP is fitted on training
    embeddings and prototypes at :meth:`fit`, and the scaling uses the training embeddings, so
    neither is refitted on the scored points. UMAP's ``transform`` still optimises the points of
    one call together (its epochs and negative samples depend on the batch), so a point's score
    can shift with the other points scored in the same call.
    """

    def __init__(
        self,
        bandwidth: float = 10.0,
        n_components: int = 3,
        quantile: float = 0.9,
        transductive: bool = True,
        random_state: int = 0,
        max_fit_points: int = 20000,
    ):
        self.bandwidth = float(bandwidth)
        self.n_components = int(n_components)
        self.quantile = float(quantile)
        self.transductive = bool(transductive)
        self.random_state = int(random_state)
        self.max_fit_points = int(max_fit_points)

    def fit(
        self,
        z_proto: np.ndarray | torch.Tensor,
        y_proto: np.ndarray | torch.Tensor,
        z_train: np.ndarray | torch.Tensor | None = None,
    ) -> "UMAPKDE":
        """Store the prototypes; in inductive mode also fit UMAP and the scaling on ``z_train``."""
        self.prototypes_ = _as_float64(z_proto, "prototype embeddings").cpu().numpy()
        self.labels_ = np.asarray(torch.as_tensor(y_proto).cpu()).astype(np.int64).ravel()
        self.classes_ = np.unique(self.labels_)
        if len(self.classes_) < 2:
            raise PDDLiteError("UMAPKDE needs prototypes of at least two normal classes")
        if not self.transductive:
            if z_train is None:
                raise PDDLiteError("the inductive UMAPKDE needs training embeddings: fit(z_proto, y_proto, z_train)")
            train = _as_float64(z_train, "training embeddings").cpu().numpy()
            if len(train) > self.max_fit_points:
                pick = np.random.default_rng(self.random_state).choice(len(train), self.max_fit_points, replace=False)
                train = train[np.sort(pick)]
            with quiet_umap():
                self.umap_ = self._umap().fit(np.concatenate([train, self.prototypes_]))
            low = self.umap_.embedding_
            self._fit_kdes(low[len(train):])
            self._fit_scaling(self._log_densities(low[: len(train)]))
        return self

    def _umap(self):
        try:
            import umap
        except ImportError as err:
            raise PDDLiteError("the reference scoring needs umap-learn: pip install umap-learn") from err
        return umap.UMAP(n_components=self.n_components, random_state=self.random_state)

    def _fit_kdes(self, low_proto: np.ndarray) -> None:
        from sklearn.neighbors import KernelDensity

        self.kdes_ = [
            KernelDensity(kernel="gaussian", bandwidth=self.bandwidth).fit(low_proto[self.labels_ == c])
            for c in self.classes_
        ]

    def _log_densities(self, low: np.ndarray) -> np.ndarray:
        return np.stack([kde.score_samples(low) for kde in self.kdes_], axis=1)

    def _fit_scaling(self, ref: np.ndarray) -> None:
        self.top_ = ref.max(axis=0)
        spread = self.top_ - np.quantile(ref, self.quantile, axis=0)
        self.spread_ = np.where(spread > 0, spread, 1.0)

    def scaled_density(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The per-class scaled log-densities (columns in sorted class order), float64."""
        if not hasattr(self, "prototypes_"):
            raise PDDLiteError("this UMAPKDE is not fitted yet: call fit first")
        zt = _as_float64(z, "embeddings").cpu().numpy()
        if self.transductive:
            with quiet_umap():
                low = self._umap().fit_transform(np.concatenate([zt, self.prototypes_]))
            self._fit_kdes(low[len(zt):])
            s = self._log_densities(low[: len(zt)])
            self._fit_scaling(s)
        else:
            with quiet_umap():
                s = self._log_densities(self.umap_.transform(zt))
        return torch.from_numpy((s - self.top_) / self.spread_)

    def score(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Minus the largest scaled log-density, float64: higher = more anomalous."""
        return -self.scaled_density(z).max(dim=1).values

    def rank_score(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The same as :meth:`score`, which does not saturate (the :class:`Scorer` protocol)."""
        return self.score(z)


def pseudo_labels(z_proto: torch.Tensor, y_proto: torch.Tensor, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The class of each row of ``z``'s nearest prototype (Euclidean): pseudo-labels for unlabeled
    embeddings, as few-shot and semi-supervised learning assign them (beyond the paper)."""
    zp = _as_float64(z_proto, "prototype embeddings")
    zu = _as_float64(z, "unlabeled embeddings").to(zp.device)
    y = torch.as_tensor(y_proto).to(zp.device).flatten()
    nearest = torch.cat([torch.cdist(part, zp).argmin(dim=1) for part in zu.split(chunk)]) if len(zu) else \
        torch.empty(0, dtype=torch.int64, device=zp.device)
    return y[nearest]


def make_scorer(
    scoring: str,
    bandwidth: float,
    bandwidth_unit: str,
    z_proto: torch.Tensor,
    y_proto: torch.Tensor,
    train_embeddings: Callable[[], torch.Tensor] | None = None,
    random_state: int = 0,
) -> "PrototypeKDE | UMAPKDE":
    """The fitted scorer that ``scoring`` names (:data:`SCORINGS`), as a PDD configuration states it.

    ``"kde"`` is Eq. 7 with kernel width ``bandwidth``, or ``bandwidth`` times the prototypes'
    median within-class distance with ``bandwidth_unit="intra-median"``. ``"kde-pseudo"`` is Eq. 7
    with every unlabeled training image added to the prototypes of its nearest prototype's class
    (:func:`pseudo_labels`; beyond the paper), the same kernel width measured on the labeled
    prototypes. ``"umap"`` is the sample notebook's transductive UMAP-KDE; ``"umap-inductive"`` the
    same with UMAP fitted on the training embeddings. ``train_embeddings()`` returns the embedded
    unlabeled training images; it is called only by the scorings that use them. Every scoring but
    ``"umap"`` is inductive: once fitted, an image's score does not depend on the others scored.
    """
    options.choice("scoring", scoring, SCORINGS)
    if scoring in ("kde", "kde-pseudo"):
        w = bandwidth * (median_intra_class_distance(z_proto, y_proto) if bandwidth_unit == "intra-median" else 1.0)
        if scoring == "kde":
            return PrototypeKDE(w).fit(z_proto, y_proto)
    if scoring == "umap":
        return UMAPKDE(bandwidth, transductive=True, random_state=random_state).fit(z_proto, y_proto)
    if train_embeddings is None:
        raise PDDLiteError(f"the {scoring} scoring needs the embedded unlabeled training images (train_embeddings)")
    z_train = train_embeddings()
    if scoring == "kde-pseudo":
        y_train = pseudo_labels(z_proto, y_proto, z_train)
        return PrototypeKDE(w).fit(torch.cat([torch.as_tensor(z_proto).to(z_train), z_train]),
                                   torch.cat([torch.as_tensor(y_proto).to(y_train), y_train]))
    return UMAPKDE(bandwidth, transductive=False, random_state=random_state).fit(z_proto, y_proto, z_train)


def training_scores(scorer: "PrototypeKDE | UMAPKDE", z_train: torch.Tensor, held_from: int | None = None) -> torch.Tensor:
    """The rank scores of the embedded unlabeled training images, each as a new image of its kind
    would be scored. ``held_from``: where a :class:`PrototypeKDE` holds them as kernels (``"kde-pseudo"``
    puts them after the prototypes, from that index on), each image's own kernel is left out."""
    if held_from is None:
        return scorer.rank_score(z_train)
    return scorer.rank_score(z_train, held=held_from + torch.arange(len(z_train)))


@contextlib.contextmanager
def quiet_umap() -> Iterator[None]:
    """Silence what umap-learn and the libraries under it say about choices made on purpose here:
    that a fixed random_state runs it single-threaded, and their notices on small inputs. Warnings
    from anywhere else still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden")
        warnings.filterwarnings("ignore", module=r"(umap|pynndescent|numba|sklearn)(\.|$)")
        yield
