"""Tests of pddlite.scoring: Eq. 7 (PrototypeKDE) and the sample notebook's UMAP + KDE scoring.

Densities are checked against scikit-learn's KernelDensity; the scaled density a_n and the score
A(x) = exp(-max_n a_n(x)) are recomputed from those densities; in 3,136 dimensions (where the
densities underflow) the exact values come from mpmath on integer embeddings.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.neighbors import KernelDensity

from pddlite.errors import PDDLiteError
from pddlite.scoring import UMAPKDE, PrototypeKDE, make_scorer, median_intra_class_distance, pseudo_labels

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def make_prototypes(seed, n_classes=3, shots=5, dim=3, spread=1.0, sep=4.0, labels=None):
    rng = np.random.default_rng(seed)
    labels = np.arange(n_classes) if labels is None else np.asarray(labels)
    y = np.repeat(labels, shots)
    centres = sep * rng.normal(size=(n_classes, dim))
    z = centres[np.repeat(np.arange(n_classes), shots)] + spread * rng.normal(size=(len(y), dim))
    return z, y


def sklearn_log_densities(z_proto, y_proto, z, bandwidth):
    """log D^(n)(z) per class, columns in sorted class order, from scikit-learn."""
    return np.stack(
        [
            KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(z_proto[y_proto == c]).score_samples(z)
            for c in np.unique(y_proto)
        ],
        axis=1,
    )


def eq7_from_sklearn(z_proto, y_proto, z, bandwidth):
    """a_n(x) = (D - D_max)/(D_max - D_min), D_max/D_min over the other classes' prototypes."""
    classes = np.unique(y_proto)
    dens = np.exp(sklearn_log_densities(z_proto, y_proto, z, bandwidth))
    dens_p = np.exp(sklearn_log_densities(z_proto, y_proto, z_proto, bandwidth))
    a = np.empty_like(dens)
    for i, c in enumerate(classes):
        others = dens_p[y_proto != c, i]
        dmax, dmin = others.max(), others.min()
        a[:, i] = (dens[:, i] - dmax) / (dmax - dmin)
    return a


# --------------------------------------------------------------------------- log_density


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("bandwidth", [0.3, 1.0, 10.0])
def test_log_density_equals_sklearn_kernel_density(dim, bandwidth):
    z_proto, y_proto = make_prototypes(dim, dim=dim, labels=[7, 2, 4])  # unsorted labels
    z = np.random.default_rng(100 + dim).normal(size=(20, dim)) * 4.0
    kde = PrototypeKDE(bandwidth=bandwidth).fit(z_proto, y_proto)
    assert kde.classes_.tolist() == [2, 4, 7]
    got = kde.log_density(z).numpy()
    np.testing.assert_allclose(got, sklearn_log_densities(z_proto, y_proto, z, bandwidth), rtol=1e-10, atol=1e-9)


def test_log_density_independent_of_chunk_size():
    z_proto, y_proto = make_prototypes(0)
    z = np.random.default_rng(1).normal(size=(11, 3))
    whole = PrototypeKDE(chunk_size=2048).fit(z_proto, y_proto).log_density(z)
    chunked = PrototypeKDE(chunk_size=3).fit(z_proto, y_proto).log_density(z)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-13)


def test_fit_stores_log_dmax_and_log_dmin_over_other_classes():
    z_proto, y_proto = make_prototypes(2)
    kde = PrototypeKDE(bandwidth=2.0).fit(torch.from_numpy(z_proto), torch.from_numpy(y_proto))
    lp = sklearn_log_densities(z_proto, y_proto, z_proto, 2.0)
    for i, c in enumerate(np.unique(y_proto)):
        np.testing.assert_allclose(kde.log_dmax_[i].item(), lp[y_proto != c, i].max(), rtol=1e-10)
        np.testing.assert_allclose(kde.log_dmin_[i].item(), lp[y_proto != c, i].min(), rtol=1e-10)


# --------------------------------------------------------------------------- Eq. 7 in a moderate regime


@pytest.mark.parametrize("seed", [0, 1])
def test_scaled_density_and_score_match_eq7_with_sklearn_densities(seed):
    # d = 2, w = 10, prototypes within a few units: densities ~ 1e-3, no underflow anywhere.
    z_proto, y_proto = make_prototypes(seed, n_classes=3, shots=6, dim=2, spread=3.0, sep=8.0)
    z = np.concatenate([z_proto[:4] + 0.5, np.random.default_rng(seed).normal(size=(15, 2)) * 15.0])
    kde = PrototypeKDE(bandwidth=10.0).fit(z_proto, y_proto)
    a = eq7_from_sklearn(z_proto, y_proto, z, 10.0)
    np.testing.assert_allclose(kde.scaled_density(z).numpy(), a, rtol=1e-8, atol=1e-10)
    a_max = a.max(axis=1)
    np.testing.assert_allclose(kde.score(z).numpy(), np.exp(-a_max), rtol=1e-8)
    # rank_score is documented as -asinh(max_n a_n): same ranking as A(x)
    np.testing.assert_allclose(kde.rank_score(z).numpy(), -np.arcsinh(a_max), rtol=1e-8, atol=1e-10)
    order_a = np.argsort(np.exp(-a_max), kind="stable")
    assert np.all(np.diff(kde.rank_score(z).numpy()[order_a]) >= 0)


def test_scaled_density_is_zero_at_dmax_and_minus_one_at_dmin():
    # By Eq. 7, a_n equals 0 at the other-class prototype of largest density, -1 at the smallest.
    z_proto, y_proto = make_prototypes(3, n_classes=2, shots=5, dim=2, spread=3.0, sep=6.0)
    kde = PrototypeKDE(bandwidth=10.0).fit(z_proto, y_proto)
    a0 = kde.scaled_density(z_proto[y_proto == 1])[:, 0].numpy()  # class 0's a at class 1's prototypes
    assert a0.max() == pytest.approx(0.0, abs=1e-10)
    assert a0.min() == pytest.approx(-1.0, abs=1e-10)


def test_dmax_equal_dmin_falls_back_to_dividing_by_dmax():
    # Class 1 has one prototype, so for class 0 D_max = D_min = D^(0)(p_1): the documented fallback
    # a_0 = D^(0)/D_max - 1. Class 1 is scaled normally by Eq. 7 (class 0 has 4 prototypes).
    z_proto = np.array([[0.0, 0.0], [1.0, 2.0], [-1.5, 0.5], [2.0, -1.0], [6.0, 5.0]])
    y_proto = np.array([0, 0, 0, 0, 1])
    z = np.array([[0.0, 1.0], [6.0, 4.0], [3.0, 3.0], [-8.0, 9.0], [20.0, -3.0]])
    w = 5.0
    kde = PrototypeKDE(bandwidth=w).fit(z_proto, y_proto)
    dens = np.exp(sklearn_log_densities(z_proto, y_proto, z, w))
    dens_p = np.exp(sklearn_log_densities(z_proto, y_proto, z_proto, w))
    expected0 = dens[:, 0] / dens_p[4, 0] - 1.0
    others1 = dens_p[:4, 1]
    expected1 = (dens[:, 1] - others1.max()) / (others1.max() - others1.min())
    got = kde.scaled_density(z).numpy()
    np.testing.assert_allclose(got[:, 0], expected0, rtol=1e-9)
    np.testing.assert_allclose(got[:, 1], expected1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kde.score(z).numpy(), np.exp(-np.maximum(expected0, expected1)), rtol=1e-9)


# --------------------------------------------------------------------------- 3,136 dimensions, exact values


def _exact_rank(z_proto, y_proto, z, w):
    """-asinh(max_n a_n(x)) in 60-digit arithmetic from exact integer squared distances.

    The Gaussian normalising constant is common to every D^(n) and cancels in a_n.
    """
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp
    mp.dps = 60
    classes = np.unique(y_proto)

    def dens(points, c):
        members = z_proto[y_proto == c]
        d2 = ((points[:, None, :] - members[None, :, :]) ** 2).sum(-1)  # int64: exact
        return [mp.fsum(mp.exp(-mp.mpf(int(v)) / (2 * w * w)) for v in row) / len(members) for row in d2]

    a = []
    for c in classes:
        others = dens(z_proto[y_proto != c], c)
        dmax, dmin = max(others), min(others)
        a.append([(v - dmax) / (dmax - dmin) for v in dens(z, c)])
    return [-mp.asinh(max(col)) for col in zip(*a)]


def test_high_dimensional_scores_are_finite_and_rank_exactly():
    rng = np.random.default_rng(0)
    d, w = 3136, 10.0
    p0 = rng.integers(-3, 4, size=(3, d))
    p1 = 18 + rng.integers(-3, 4, size=(3, d))  # norm ~ 1e3, far from class 0 in units of w
    z_proto = np.concatenate([p0, p1]).astype(np.int64)
    y_proto = np.array([0, 0, 0, 1, 1, 1])
    z = np.stack([
        p0[0],                                          # a prototype itself
        p0[0] + rng.integers(-1, 2, size=d),            # near class 0
        p0[1] + rng.integers(-2, 3, size=d),
        np.rint(0.7 * p0[0] + 0.3 * p1[0]),             # between the classes
        np.rint(0.5 * p0[2] + 0.5 * p1[2]),
        np.rint(0.2 * p0[1] + 0.8 * p1[1]),
        p1[1] + rng.integers(-1, 2, size=d),            # near class 1
        np.full(d, -60),                                # far from everything (norm ~ 3e3)
    ]).astype(np.int64)

    kde = PrototypeKDE(bandwidth=w).fit(z_proto.astype(np.float64), y_proto)
    a = kde.scaled_density(z.astype(np.float64))
    score = kde.score(z.astype(np.float64))
    rank = kde.rank_score(z.astype(np.float64)).numpy()
    for t in (a, score):
        assert torch.isfinite(t).all()
    assert np.isfinite(rank).all()
    # The literal float64 A(x) saturates: several points tie at exactly 0 ...
    assert int((score == 0).sum()) >= 4
    # ... while rank_score keeps the exact order, with the exact values, and separates them all.
    exact = np.array([float(v) for v in _exact_rank(z_proto, y_proto, z, w)])
    assert len(np.unique(exact)) == len(z)
    np.testing.assert_array_equal(np.argsort(rank), np.argsort(exact))
    # the values are -asinh(max_n a_n) off the floor of a_n (the far point is on it: see the next test)
    off_floor = np.arange(len(z)) != 7
    np.testing.assert_allclose(rank[off_floor], exact[off_floor], rtol=1e-9)
    tied = (score == 0).numpy()
    assert len(np.unique(rank[tied])) == int(tied.sum())


def test_images_far_from_every_prototype_keep_their_exact_order_instead_of_tying_at_the_floor():
    # Two classes on a line, w = 1: images 12-16 units off the line have D^(n) / D_max^(n) below
    # 1e-30, so a_n rounds to its floor -1 / s_n for both classes and A(x) ties in float64.
    z_proto = np.array([[0, 0], [1, 0], [10, 0], [11, 0]], dtype=np.int64)
    y_proto = np.array([0, 0, 1, 1])
    far = np.array([[0, 14], [0, 12], [10, 16], [5, 13], [11, 15]], dtype=np.int64)
    near = np.array([[0, 1], [5, 0], [10, 2]], dtype=np.int64)
    z = np.concatenate([far, near])
    kde = PrototypeKDE(bandwidth=1.0).fit(z_proto.astype(np.float64), y_proto)
    a_max = kde.scaled_density(z.astype(np.float64)).numpy().max(1)
    # the far images' max_n a_n, and so A(x), round to one value (up to the floors' last bits)
    np.testing.assert_allclose(a_max[: len(far)], a_max[0], rtol=1e-12)
    np.testing.assert_allclose(kde.score(z.astype(np.float64)).numpy()[: len(far)], np.exp(-a_max[0]), rtol=1e-12)
    rank = kde.rank_score(z.astype(np.float64)).numpy()
    # the exact order of max_n a_n, in 200-digit arithmetic (exact integer squared distances)
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 200

    def dens(points, c):
        members = z_proto[y_proto == c]
        d2 = ((points[:, None, :] - members[None, :, :]) ** 2).sum(-1)
        return [mpmath.fsum(mpmath.exp(-mpmath.mpf(int(v)) / 2) for v in row) / len(members) for row in d2]

    cols = []
    for c in (0, 1):
        others = dens(z_proto[y_proto != c], c)
        dmax, dmin = max(others), min(others)
        cols.append([(v - dmax) / (dmax - dmin) for v in dens(z, c)])
    exact_a_max = [max(col) for col in zip(*cols)]
    assert len(set(exact_a_max)) == len(z)  # distinct in exact arithmetic
    higher_a_means_lower_rank = sorted(range(len(z)), key=lambda i: exact_a_max[i], reverse=True)
    np.testing.assert_array_equal(np.argsort(rank), higher_a_means_lower_rank)
    # the images off the floor keep their value -asinh(max_n a_n)
    np.testing.assert_allclose(rank[len(far):], [-float(mpmath.asinh(exact_a_max[i])) for i in range(len(far), len(z))],
                               rtol=1e-12)


def test_high_dimensional_float32_like_embeddings_give_no_nan():
    # Realistic shape: 9 classes x 20 prototypes, d = 3136, norms ~ 1e2-1e3, w = 10.
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(9, 3136)) * 10.0
    y = np.repeat(np.arange(9), 20)
    z_proto = centres[y] + rng.normal(size=(180, 3136)) * rng.uniform(0.5, 3.0, size=(180, 1))
    z = np.concatenate([centres[rng.integers(0, 9, 50)] + rng.normal(size=(50, 3136)) * 2.0,
                        rng.normal(size=(50, 3136)) * 15.0])
    kde = PrototypeKDE(bandwidth=10.0).fit(torch.tensor(z_proto, dtype=torch.float32), y)
    zt = torch.tensor(z, dtype=torch.float32)
    for out in (kde.scaled_density(zt), kde.score(zt), kde.rank_score(zt)):
        assert out.dtype == torch.float64
        assert torch.isfinite(out).all()
    # rank_score is increasing in A(x) wherever A is not saturated
    s, r = kde.score(zt).numpy(), kde.rank_score(zt).numpy()
    ok = (s > 0) & (s < np.finfo(np.float64).max)
    order = np.lexsort((r[ok], s[ok]))  # by A, then by rank_score among images whose A ties in float64
    assert np.all(np.diff(r[ok][order]) >= 0)


# --------------------------------------------------------------------------- errors


def test_prototype_kde_errors():
    z_proto, y_proto = make_prototypes(0)
    with pytest.raises(PDDLiteError, match="at least two"):
        PrototypeKDE().fit(z_proto[:5], y_proto[:5])  # one class only
    with pytest.raises(PDDLiteError, match="labels"):
        PrototypeKDE().fit(z_proto, y_proto[:-1])
    with pytest.raises(PDDLiteError, match="N x d"):
        PrototypeKDE().fit(z_proto[0], y_proto[:1])
    bad = z_proto.copy()
    bad[0, 0] = np.nan
    with pytest.raises(PDDLiteError, match="NaN"):
        PrototypeKDE().fit(bad, y_proto)
    with pytest.raises(PDDLiteError, match="not fitted"):
        PrototypeKDE().score(z_proto)
    kde = PrototypeKDE().fit(z_proto, y_proto)
    with pytest.raises(PDDLiteError, match="dimensions"):
        kde.score(np.zeros((2, 4)))
    for bandwidth in (0, -1.0, float("nan"), "10"):
        with pytest.raises(PDDLiteError, match="bandwidth"):
            PrototypeKDE(bandwidth=bandwidth)


# --------------------------------------------------------------------------- UMAP + KDE (sample notebook)


@pytest.fixture(scope="module")
def umap_run():
    """Three prototype clusters and a fourth cluster with no prototypes, in 5-D; both UMAP modes.

    umap-learn compiles its kernels on first use (tens of seconds on a small CPU), so the
    models are fitted once for the whole module. The KDE bandwidth is 1: these toy clusters span
    only a few units of UMAP's 3-D space, where the notebook's w = 10 would blur them together.
    """
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centres = 20.0 * np.eye(5)[:4]

    def blob(c, n):
        return centres[c] + rng.normal(size=(n, 5))

    z_proto = np.concatenate([blob(c, 10) for c in range(3)])
    y_proto = np.repeat(np.arange(3), 10)
    z_train = np.concatenate([blob(c, 50) for c in range(4)])
    z_test = np.concatenate([blob(c, 20) for c in range(4)])  # the last 20: the cluster without prototypes
    is_off = np.arange(len(z_test)) >= 60
    out = {"is_off": is_off, "n": len(z_test)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trans = UMAPKDE(bandwidth=1.0, transductive=True).fit(z_proto, y_proto)
        out["trans_scaled"] = trans.scaled_density(z_test).numpy()
        out["trans_score"] = trans.score(z_test).numpy()
        out["trans_rank"] = trans.rank_score(z_test).numpy()
        ind = UMAPKDE(bandwidth=1.0, transductive=False).fit(z_proto, y_proto, z_train)
        out["ind_scaling_after_fit"] = (ind.top_.copy(), ind.spread_.copy())
        out["ind_score"] = ind.score(z_test).numpy()
        out["ind_scaling_after_score"] = (ind.top_.copy(), ind.spread_.copy())
    return out


@pytest.mark.parametrize("mode", ["trans", "ind"])
def test_umap_kde_scores_are_finite_and_off_cluster_points_score_higher(umap_run, mode):
    s = umap_run[f"{mode}_score"]
    assert s.shape == (umap_run["n"],)
    assert np.isfinite(s).all()
    off = umap_run["is_off"]
    assert s[off].min() > s[~off].max()


def test_umap_kde_transductive_scaling_uses_the_scored_set(umap_run):
    # (s - max(s)) / (max(s) - quantile_0.9(s)) over the test set: per class, max 0 and 0.9-quantile -1.
    a = umap_run["trans_scaled"]
    assert a.shape == (umap_run["n"], 3)
    np.testing.assert_allclose(a.max(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.quantile(a, 0.9, axis=0), -1.0, rtol=1e-9)


def test_umap_kde_transductive_score_is_minus_the_largest_scaled_density(umap_run):
    np.testing.assert_allclose(umap_run["trans_score"], -umap_run["trans_scaled"].max(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(umap_run["trans_rank"], umap_run["trans_score"])  # no saturation to avoid


def test_umap_kde_inductive_scaling_is_fitted_on_training_embeddings(umap_run):
    # Inductive mode: scoring must not refit the scaling on the scored points.
    for before, after in zip(umap_run["ind_scaling_after_fit"], umap_run["ind_scaling_after_score"]):
        np.testing.assert_array_equal(before, after)


def test_umap_kde_errors():
    z_proto, y_proto = make_prototypes(0)
    with pytest.raises(PDDLiteError, match="two normal classes"):
        UMAPKDE().fit(z_proto[:5], y_proto[:5])
    with pytest.raises(PDDLiteError, match="training embeddings"):
        UMAPKDE(transductive=False).fit(z_proto, y_proto)
    with pytest.raises(PDDLiteError, match="not fitted"):
        UMAPKDE().score(z_proto)


# --------------------------------------------------------------------------- the w >> 1 limit, the bandwidth's unit


def _unit_clusters(seed: int, dim: int = 64, classes: int = 4, per_class: int = 10, test: int = 400):
    """Unit vectors around a few class directions: prototypes with labels, and test points."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    y = torch.arange(classes).repeat_interleave(per_class)
    z = centres[y] + 0.8 * torch.randn(len(y), dim, generator=g, dtype=torch.float64)
    t = centres[torch.randint(classes, (test,), generator=g)] * torch.rand(test, 1, generator=g, dtype=torch.float64)
    t = t + torch.randn(test, dim, generator=g, dtype=torch.float64)
    unit = lambda v: v / v.norm(dim=1, keepdim=True)
    return unit(z), y, unit(t)


@pytest.mark.parametrize("w", [5.0, 10.0, 50.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_eq7_on_unit_vectors_at_wide_bandwidth_ranks_as_the_class_mean_score(w, seed):
    """At w >= 5 on unit-norm embeddings Eq. 7 is, to first order, the scaled dot product with the class mean."""
    from scipy.stats import spearmanr

    from pddlite.scoring import class_mean_score

    z, y, t = _unit_clusters(seed)
    eq7 = PrototypeKDE(w).fit(z, y).rank_score(t).numpy()
    limit = class_mean_score(z, y, t).numpy()
    assert spearmanr(eq7, limit).statistic > 0.99
    # and it is a limit, not an identity: a narrow kernel (a real density) ranks differently
    narrow = PrototypeKDE(0.3).fit(z, y).rank_score(t).numpy()
    assert spearmanr(narrow, limit).statistic < 0.99


def test_class_mean_score_by_hand():
    # class 0: (1, 0) and (0, 1), mean (0.5, 0.5); class 1: (-1, 0), mean (-1, 0)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    from pddlite.scoring import class_mean_score

    # class 0: p.mu_0 on the other class's prototype (-1, 0) is -0.5 = M_0 = m_0 (scale 1): a_0 = z.mu_0 + 0.5
    # class 1: p.mu_1 on (1, 0) is -1, on (0, 1) is 0: M_1 = 0, m_1 = -1, a_1 = z.mu_1 - 0 = -z_x
    point = torch.tensor([[0.6, 0.8]])
    a0, a1 = 0.5 * 0.6 + 0.5 * 0.8 + 0.5, -0.6
    assert class_mean_score(z, y, point).item() == pytest.approx(-max(a0, a1))


def test_median_intra_class_distance_by_hand():
    from pddlite.scoring import median_intra_class_distance

    # class 0 on a line at 0, 1, 3: pair distances 1, 2, 3; class 1 at 10, 14: distance 4 -> median 2.5
    z = torch.tensor([[0.0], [1.0], [3.0], [10.0], [14.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    assert median_intra_class_distance(z, y) == pytest.approx(2.5)
    with pytest.raises(PDDLiteError, match="two prototypes of one class"):
        median_intra_class_distance(z[[0, 3]], y[[0, 3]])
    with pytest.raises(PDDLiteError, match="coincide"):
        median_intra_class_distance(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]))


# --------------------------------------------------------------------------- the factory


def test_make_scorer_builds_the_scorer_a_configuration_names():
    z, y = make_prototypes(0)
    z, y = torch.as_tensor(z), torch.as_tensor(y)
    t = z + 0.01
    w = 0.25 * median_intra_class_distance(z, y)
    np.testing.assert_array_equal(make_scorer("kde", 0.25, "intra-median", z, y).rank_score(t).numpy(),
                                  PrototypeKDE(w).fit(z, y).rank_score(t).numpy())
    np.testing.assert_array_equal(make_scorer("kde", 0.7, "absolute", z, y).rank_score(t).numpy(),
                                  PrototypeKDE(0.7).fit(z, y).rank_score(t).numpy())
    assert make_scorer("umap", 10.0, "absolute", z, y).transductive  # fitting stores; UMAP runs at scoring
    asked = []
    make_scorer("kde", 0.25, "intra-median", z, y, train_embeddings=lambda: asked.append(1))
    assert not asked  # the training embeddings are computed only for the inductive UMAP
    with pytest.raises(PDDLiteError, match="unknown scoring"):
        make_scorer("svm", 1.0, "absolute", z, y)
    with pytest.raises(PDDLiteError, match="training images"):
        make_scorer("umap-inductive", 1.0, "absolute", z, y)
    with pytest.raises(PDDLiteError, match="training images"):
        make_scorer("kde-pseudo", 1.0, "absolute", z, y)


def test_pseudo_labels_are_the_nearest_prototype_s_class_by_hand():
    z_proto = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    y_proto = torch.tensor([3, 3, 7, 7])
    z = torch.tensor([[0.4, 5.0], [5.4, 0.0], [5.6, 0.0], [100.0, -1.0]])
    assert pseudo_labels(z_proto, y_proto, z).tolist() == [3, 3, 7, 7]
    assert pseudo_labels(z_proto, y_proto, z, chunk=1).tolist() == [3, 3, 7, 7]
    assert pseudo_labels(z_proto, y_proto, z[:0]).tolist() == []


def test_kde_pseudo_is_eq7_on_the_prototypes_and_the_pseudo_labeled_images():
    """The kernel width is measured on the labeled prototypes; the unlabeled embeddings join the
    class of their nearest prototype, and Eq. 7 (densities and its scaling) runs on all of them."""
    z, y = (torch.as_tensor(a) for a in make_prototypes(0))
    rng = np.random.default_rng(5)
    z_train = z[rng.integers(0, len(z), 40)] + torch.as_tensor(rng.normal(0, 0.05, (40, z.shape[1])))
    t = z + 0.01
    got = make_scorer("kde-pseudo", 0.25, "intra-median", z, y, train_embeddings=lambda: z_train).rank_score(t)
    w = 0.25 * median_intra_class_distance(z, y)
    nearest = torch.cdist(z_train, z).argmin(dim=1)
    want = PrototypeKDE(w).fit(torch.cat([z, z_train]), torch.cat([y, y[nearest]])).rank_score(t)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    alone = PrototypeKDE(w).fit(z, y).rank_score(t)
    assert not torch.equal(got, alone)
