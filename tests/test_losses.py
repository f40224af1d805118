"""Tests of pddlite.losses: the margin losses of Eqs. 4-6 and the sample notebook's variant.

Expected values are worked out by hand on tiny 2-D examples (integer coordinates), or by an
independent brute-force NumPy double loop over the unordered pairs j < k with
``numpy.quantile(method="linear")`` for the thresholds.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from pddlite import losses
from pddlite.errors import PDDLiteError

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Hand example A: class 0 is a 3-4-5 right triangle, class 1 has sides 1, 2, sqrt(5).
HAND_Z = [[0, 0], [3, 0], [0, 4], [10, 0], [10, 1], [12, 0]]
HAND_Y = [0, 0, 0, 1, 1, 1]

# Hand example B: two classes of two points; between-class distances 3, 4, sqrt(10), sqrt(17).
PAIR_Z = [[0, 0], [0, 1], [3, 0], [4, 0]]
PAIR_Y = [0, 0, 1, 1]


def t64(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def ty(a):
    return torch.tensor(a, dtype=torch.int64)


# --------------------------------------------------------------------------- brute force (NumPy)


def pairs(y, same):
    """Unordered pairs j < k of the same (or of different) class."""
    return [(j, k) for j, k in itertools.combinations(range(len(y)), 2) if (y[j] == y[k]) == same]


def brute_hinge(z, y, q, same):
    """Eq. 5 (same=True) or Eq. 6 (same=False): value and analytic gradient with R held constant."""
    z = np.asarray(z, dtype=np.float64)
    ps = pairs(list(y), same)
    d = np.array([np.linalg.norm(z[j] - z[k]) for j, k in ps])
    r = np.quantile(d, q, method="linear")
    slack = d - r if same else r - d
    value = np.maximum(0.0, slack).sum()
    grad = np.zeros_like(z)
    for (j, k), dist, s in zip(ps, d, slack):
        if s > 0 and dist > 0:  # active hinge; d(dist)/dz_j = (z_j - z_k) / dist, zero at coincidence
            u = (z[j] - z[k]) / dist
            sign = 1.0 if same else -1.0
            grad[j] += sign * u
            grad[k] -= sign * u
    return value, grad, r


def brute_diameter(z, y):
    """Eq. 4 summed over classes, with the gradient of each class's longest pair."""
    z = np.asarray(z, dtype=np.float64)
    value, grad = 0.0, np.zeros_like(z)
    for c in sorted(set(y)):
        ps = [(j, k) for j, k in pairs(list(y), True) if y[j] == c]
        if not ps:
            continue
        d = [np.linalg.norm(z[j] - z[k]) for j, k in ps]
        i = int(np.argmax(d))
        j, k = ps[i]
        value += d[i]
        grad[j] += (z[j] - z[k]) / d[i]
        grad[k] -= (z[j] - z[k]) / d[i]
    return value, grad


def random_points(seed, n_classes=3, shots=4, dim=3):
    """Non-integer float64 points (distance ties have probability zero) and labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), shots)
    z = rng.normal(size=(len(y), dim)) + 2.0 * rng.normal(size=(n_classes, dim))[y]
    return z, y


# --------------------------------------------------------------------------- pairwise_distances


def test_pairwise_distances_match_scipy_cdist():
    z = np.random.default_rng(0).normal(size=(7, 5)) * 3.0
    d = losses.pairwise_distances(t64(z))
    np.testing.assert_allclose(d.numpy(), cdist(z, z), rtol=1e-10, atol=1e-12)
    assert torch.all(d.diagonal() == 0)


def test_pairwise_distances_squared_option():
    z = np.random.default_rng(1).normal(size=(6, 4))
    d2 = losses.pairwise_distances(t64(z), squared=True)
    np.testing.assert_allclose(d2.numpy(), cdist(z, z, "sqeuclidean"), rtol=1e-10, atol=1e-12)


def test_pairwise_distances_hand_example():
    d = losses.pairwise_distances(t64(HAND_Z))
    assert d[0, 1].item() == pytest.approx(3.0, abs=1e-12)
    assert d[1, 2].item() == pytest.approx(5.0, abs=1e-12)
    assert d[4, 5].item() == pytest.approx(math.sqrt(5), abs=1e-12)


def test_pairwise_distances_stay_accurate_far_from_origin_in_float32():
    """Centring: points around 1000 with unit spread keep float32 distances accurate."""
    z = 1000.0 + np.random.default_rng(2).normal(size=(6, 50))
    z32 = z.astype(np.float32)
    d = losses.pairwise_distances(torch.from_numpy(z32))
    exact = cdist(z32.astype(np.float64), z32.astype(np.float64))
    np.testing.assert_allclose(d.numpy(), exact, rtol=1e-4, atol=1e-4)


def test_pairwise_distances_gradient_is_finite_where_points_coincide():
    z = t64([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], grad=True)
    d = losses.pairwise_distances(z)
    assert d[0, 2].item() == 0.0
    d.sum().backward()
    assert torch.isfinite(z.grad).all()
    # Analytic: d/dz_j sum_{j,k} ||z_j - z_k|| = 2 sum_k (z_j - z_k)/||z_j - z_k||, coinciding pairs give 0.
    zn = z.detach().numpy()
    expected = np.zeros_like(zn)
    for j, k in itertools.permutations(range(4), 2):
        dist = np.linalg.norm(zn[j] - zn[k])
        if dist > 0:
            expected[j] += 2 * (zn[j] - zn[k]) / dist
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_squared_distances_gradient_where_points_coincide():
    z = t64([[1.0, 1.0], [1.0, 1.0], [2.0, 0.0]], grad=True)
    losses.pairwise_distances(z, squared=True).sum().backward()
    zn = z.detach().numpy()
    # d/dz_j sum_{j,k} ||z_j - z_k||^2 = 4 sum_k (z_j - z_k)
    expected = 4 * (len(zn) * zn - zn.sum(0))
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- Eq. 5 (intra)


def test_intra_loss_hand_example_median():
    # Same-class distances: 3, 4, 5 (class 0) and 1, 2, sqrt(5) (class 1).
    # Sorted 1, 2, sqrt5, 3, 4, 5: the linear 0.5-quantile sits half way between sqrt5 and 3,
    # R = (3 + sqrt5)/2 = 2.618; only 3, 4 and 5 exceed it: loss = 12 - 3R = 7.5 - 1.5 sqrt5.
    loss = losses.intra_class_loss(t64(HAND_Z), ty(HAND_Y), q=0.5)
    assert loss.item() == pytest.approx(7.5 - 1.5 * math.sqrt(5), rel=1e-12)


def test_intra_loss_hand_example_extreme_quantiles():
    # q = 0: R = 1 (shortest pair), loss = (3 + 4 + 5 + 1 + 2 + sqrt5) - 6 * 1 = 9 + sqrt5.
    assert losses.intra_class_loss(t64(HAND_Z), ty(HAND_Y), q=0.0).item() == pytest.approx(9 + math.sqrt(5), rel=1e-12)
    # q = 1: R = 5 (longest pair), nothing exceeds it.
    assert losses.intra_class_loss(t64(HAND_Z), ty(HAND_Y), q=1.0).item() == pytest.approx(0.0, abs=1e-12)


def test_intra_loss_gradient_holds_threshold_constant_hand_example():
    # Active pairs (d > R = 2.618): (0,1) d=3, (0,2) d=4, (1,2) d=5, each pulling with (z_j - z_k)/d.
    # z0: (-1, 0) + (0, -1) = (-1, -1); z1: (1, 0) + (3, -4)/5; z2: (0, 1) + (-3, 4)/5; class 1: 0.
    # If R = (3 + sqrt5)/2 carried a gradient, the pairs behind it (0,1) and (4,5) would change.
    z = t64(HAND_Z, grad=True)
    losses.intra_class_loss(z, ty(HAND_Y)).backward()
    expected = [[-1, -1], [1.6, -0.8], [-0.6, 1.8], [0, 0], [0, 0], [0, 0]]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_intra_loss_matches_brute_force(seed, q):
    z, y = random_points(seed)
    zt = t64(z, grad=True)
    loss = losses.intra_class_loss(zt, torch.from_numpy(y), q=q)
    loss.backward()
    value, grad, _ = brute_hinge(z, y, q, same=True)
    assert loss.item() == pytest.approx(value, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(zt.grad.numpy(), grad, rtol=1e-9, atol=1e-12)


def test_intra_loss_float64_threshold_is_not_rounded():
    """float64 in, float64 threshold: the median sqrt(10) must not be rounded to float32.

    Same-class distances 3, 4, 5 | sqrt2 | sqrt10: sorted sqrt2, 3, sqrt10, 4, 5, median sqrt10,
    loss = (4 - sqrt10) + (5 - sqrt10) = 9 - 2 sqrt10, and the sqrt10 pair itself gets no gradient.
    """
    zz = [[0, 0], [3, 0], [0, 4], [20, 0], [21, 1], [30, 0], [33, 1]]
    yy = [0, 0, 0, 1, 1, 2, 2]
    z = t64(zz, grad=True)
    loss = losses.intra_class_loss(z, ty(yy))
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(9 - 2 * math.sqrt(10), rel=1e-12)
    loss.backward()
    # Active: (0,2) d=4 and (1,2) d=5 -> z0 (0,-1), z1 (3,-4)/5, z2 (0,1) + (-3,4)/5.
    expected = [[0, -1], [0.6, -0.8], [-0.6, 1.8], [0, 0], [0, 0], [0, 0], [0, 0]]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_intra_loss_float32():
    z, y = random_points(5)
    loss = losses.intra_class_loss(torch.tensor(z, dtype=torch.float32), torch.from_numpy(y))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(brute_hinge(z.astype(np.float32), y, 0.5, True)[0], rel=1e-5)


def test_intra_loss_gradient_finite_with_coinciding_same_class_points():
    # Points 0 and 1 coincide (d = 0, below any threshold): no NaN in the gradient.
    # Sorted same-class distances: 0, 1.58, 1.68, 1.68, 2 (the median), 2.12, 2.92, 3.16, 4.24.
    zz = [[0.5, 0.25], [0.5, 0.25], [2.0, 1.0], [5.0, 5.0], [6.5, 5.5], [5.0, 7.0], [8.0, 8.0]]
    yy = [0, 0, 0, 1, 1, 1, 1]
    z = t64(zz, grad=True)
    losses.intra_class_loss(z, ty(yy)).backward()
    assert torch.isfinite(z.grad).all()
    np.testing.assert_allclose(z.grad.numpy(), brute_hinge(zz, yy, 0.5, True)[1], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- Eq. 6 (inter)


def test_inter_loss_hand_example_quartile():
    # Between-class distances sorted: 3, sqrt10, 4, sqrt17. The 0.25-quantile sits at position 0.75:
    # R = 3 + 0.75 (sqrt10 - 3); only the pair at distance 3 falls short: loss = 0.75 (sqrt10 - 3).
    loss = losses.inter_class_loss(t64(PAIR_Z), ty(PAIR_Y), q=0.25)
    assert loss.item() == pytest.approx(0.75 * (math.sqrt(10) - 3), rel=1e-12)


def test_inter_loss_hand_example_median():
    # R = (sqrt10 + 4)/2; shortfalls (R - 3) + (R - sqrt10) = 4 + sqrt10 - 3 - sqrt10 = 1.
    loss = losses.inter_class_loss(t64(PAIR_Z), ty(PAIR_Y), q=0.5)
    assert loss.item() == pytest.approx(1.0, rel=1e-12)


def test_inter_loss_gradient_holds_threshold_constant_hand_example():
    # q = 0.5: the pairs (0,2) d=3 and (1,2) d=sqrt10 fall short; the loss pushes them apart:
    # gradient of (R - d) is -(z_j - z_k)/d on z_j.  z0: -(-3,0)/3 = (1, 0); z1: -(-3, 1)/sqrt10;
    # z2: -(3,0)/3 - (3,-1)/sqrt10.  A threshold with a gradient would add terms on z3.
    z = t64(PAIR_Z, grad=True)
    losses.inter_class_loss(z, ty(PAIR_Y), q=0.5).backward()
    s = math.sqrt(10)
    expected = [[1, 0], [3 / s, -1 / s], [-1 - 3 / s, 1 / s], [0, 0]]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 1.0])
def test_inter_loss_matches_brute_force(seed, q):
    z, y = random_points(seed, n_classes=4, shots=3)
    zt = t64(z, grad=True)
    loss = losses.inter_class_loss(zt, torch.from_numpy(y), q=q)
    loss.backward()
    value, grad, _ = brute_hinge(z, y, q, same=False)
    assert loss.item() == pytest.approx(value, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(zt.grad.numpy(), grad, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- L = L_intra + beta L_inter


def test_margin_loss_hand_example():
    # Intra distances 1, 1: R = 1, L_intra = 0; L_inter(q=0.25) = 0.75 (sqrt10 - 3); beta = 3 by default.
    loss = losses.margin_loss(t64(PAIR_Z), ty(PAIR_Y))
    assert loss.item() == pytest.approx(3 * 0.75 * (math.sqrt(10) - 3), rel=1e-12)


@pytest.mark.parametrize("beta,q_intra,q_inter", [(3.0, 0.5, 0.25), (0.5, 0.0, 1.0), (2.0, 0.9, 0.5)])
def test_margin_loss_is_intra_plus_beta_inter(beta, q_intra, q_inter):
    z, y = random_points(7)
    zt = t64(z, grad=True)
    loss = losses.margin_loss(zt, torch.from_numpy(y), beta=beta, q_intra=q_intra, q_inter=q_inter)
    loss.backward()
    v_in, g_in, _ = brute_hinge(z, y, q_intra, True)
    v_out, g_out, _ = brute_hinge(z, y, q_inter, False)
    assert loss.item() == pytest.approx(v_in + beta * v_out, rel=1e-10)
    np.testing.assert_allclose(zt.grad.numpy(), g_in + beta * g_out, rtol=1e-9, atol=1e-12)


def test_margin_loss_gradient_finite_with_coinciding_points_of_different_classes():
    # Points 0 (class 0) and 3 (class 1) coincide: d = 0 < R_inter is an active hinge whose distance
    # has gradient 0 there by convention; nothing may be NaN.
    zz = [[0.0, 0.0], [1.0, 0.5], [0.25, 2.0], [0.0, 0.0], [4.0, 1.0], [3.5, 3.0]]
    yy = [0, 0, 0, 1, 1, 1]
    z = t64(zz, grad=True)
    losses.margin_loss(z, ty(yy)).backward()
    assert torch.isfinite(z.grad).all()
    expected = brute_hinge(zz, yy, 0.5, True)[1] + 3.0 * brute_hinge(zz, yy, 0.25, False)[1]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_margin_loss_float32_gradient_finite_with_identical_embeddings():
    z = torch.zeros(6, 4, requires_grad=True)  # a collapsed embedding: every distance is 0
    loss = losses.margin_loss(z, ty([0, 0, 0, 1, 1, 1]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- Eq. 4 (diameter)


def test_diameter_loss_hand_example():
    # Longest pairs: 5 in class 0, sqrt5 in class 1; a single-prototype class adds nothing.
    z = t64(HAND_Z + [[50, 50]], grad=True)
    loss = losses.diameter_loss(z, ty(HAND_Y + [2]))
    assert loss.item() == pytest.approx(5 + math.sqrt(5), rel=1e-12)
    loss.backward()
    # Only the longest pair of each class gets a gradient: (1,2) with (3,-4)/5, (4,5) with (-2,1)/sqrt5.
    s = math.sqrt(5)
    expected = [[0, 0], [0.6, -0.8], [-0.6, 0.8], [0, 0], [-2 / s, 1 / s], [2 / s, -1 / s], [0, 0]]
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_diameter_loss_matches_brute_force(seed):
    z, y = random_points(seed, n_classes=4, shots=5, dim=4)
    perm = np.random.default_rng(seed).permutation(len(y))  # interleaved classes
    z, y = z[perm], y[perm]
    zt = t64(z, grad=True)
    loss = losses.diameter_loss(zt, torch.from_numpy(y))
    loss.backward()
    value, grad = brute_diameter(z, list(y))
    assert loss.item() == pytest.approx(value, rel=1e-10)
    np.testing.assert_allclose(zt.grad.numpy(), grad, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- sample-notebook variant


def _sq(a, b):
    return float(((a - b) ** 2).sum())


def brute_reference(z, y, quirk=True):
    """The notebook's terms from the notes, by loops: returns (intra, inter, R_intra, R_inter, n_kept)."""
    z = np.asarray(z, dtype=np.float64)
    classes = sorted(set(int(c) for c in y))
    mean, std = {}, {}
    for c in classes:
        idx = [i for i in range(len(y)) if y[i] == c]
        ds = [_sq(z[j], z[k]) for j, k in itertools.combinations(idx, 2)]
        mean[c], std[c] = np.mean(ds), np.std(ds)  # population std (ddof = 0)
    r_intra = np.median([mean[c] for c in classes])
    excess = [mean[c] - r_intra for c in classes if mean[c] > r_intra]
    intra = math.sqrt(np.mean(np.square(excess))) if excess else 0.0

    rank, seen = [], {}
    for c in y:  # position of each prototype among those of its class, in the order given
        rank.append(seen.get(int(c), 0))
        seen[int(c)] = rank[-1] + 1
    between = [(j, k) for j, k in itertools.combinations(range(len(y)), 2) if y[j] != y[k]]
    r_inter = max(np.median([_sq(z[j], z[k]) for j, k in between]), max(mean[c] + 2 * std[c] for c in classes))
    kept = []
    for j, k in between:
        a, b = (j, k) if y[j] < y[k] else (k, j)  # a from the lower class: the block's row
        if not quirk or rank[a] > rank[b]:  # strict lower triangle of each between-class block
            kept.append((j, k))
    short = [r_inter - _sq(z[j], z[k]) for j, k in kept if _sq(z[j], z[k]) < r_inter]
    inter = math.sqrt(np.mean(np.square(short))) if short else 0.0
    return intra, inter, r_intra, r_inter, kept, mean, std


def _notebook_points(seed, n_classes=9, shots=10, dim=8, spread=1.0, sep=1.0, shuffle=False):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), shots)
    scale = rng.uniform(0.5, 1.5, size=n_classes)  # unequal class sizes: some class means exceed the median
    z = spread * scale[y, None] * rng.normal(size=(len(y), dim)) + sep * rng.normal(size=(n_classes, dim))[y]
    if shuffle:
        perm = rng.permutation(len(y))
        z, y = z[perm], y[perm]
    return z, y


def test_reference_quirk_keeps_45_of_100_pairs_per_class_pair():
    """Checks the brute force itself against the notes: 10 shots -> 45 of each block's 100 pairs."""
    z, y = _notebook_points(0, n_classes=3)
    kept = brute_reference(z, list(y))[4]
    assert len(kept) == 3 * 45
    assert len(brute_reference(z, list(y), quirk=False)[4]) == 3 * 100


@pytest.mark.parametrize("seed,n_classes,shots", [(0, 9, 10), (1, 3, 4), (2, 5, 6)])
def test_reference_intra_loss_matches_brute_force(seed, n_classes, shots):
    z, y = _notebook_points(seed, n_classes, shots)
    loss = losses.reference_intra_loss(t64(z), torch.from_numpy(y))
    expected = brute_reference(z, list(y))[0]
    assert expected > 0
    assert loss.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("quirk", [True, False])
@pytest.mark.parametrize("branch", ["median", "mean+2std"])
def test_reference_inter_loss_matches_brute_force(branch, quirk, shuffle):
    # Far-apart classes: the median between-class distance is the threshold; overlapping classes:
    # the largest class mean + 2 std is.
    sep = 6.0 if branch == "median" else 0.3
    z, y = _notebook_points(3, n_classes=9, shots=10, sep=sep, shuffle=shuffle)
    intra, inter, _, r_inter, kept, mean, std = brute_reference(z, list(y), quirk=quirk)
    top = max(mean[c] + 2 * std[c] for c in mean)
    assert (r_inter > top) == (branch == "median")  # the intended branch is exercised
    assert inter > 0
    loss = losses.reference_inter_loss(t64(z), torch.from_numpy(y), lower_triangle_quirk=quirk)
    assert loss.item() == pytest.approx(inter, rel=1e-9)


def test_reference_losses_gradient_holds_thresholds_constant():
    """Autograd of the library = autograd of a loop version whose thresholds are plain numbers."""
    z, y = _notebook_points(4, n_classes=3, shots=4, sep=0.5)
    _, _, r_intra, r_inter, kept, _, _ = brute_reference(z, list(y))
    for which in ("intra", "inter"):
        zt = t64(z, grad=True)
        fn = losses.reference_intra_loss if which == "intra" else losses.reference_inter_loss
        fn(zt, torch.from_numpy(y)).backward()

        zb = t64(z, grad=True)
        if which == "intra":
            excess = []
            for c in sorted(set(y)):
                idx = np.flatnonzero(y == c)
                m = torch.stack([((zb[j] - zb[k]) ** 2).sum() for j, k in itertools.combinations(idx, 2)]).mean()
                if m.item() > r_intra:
                    excess.append(m - r_intra)
            ref = torch.stack(excess).pow(2).mean().sqrt()
        else:
            short = [r_inter - ((zb[j] - zb[k]) ** 2).sum() for j, k in kept]
            short = [s for s in short if s.item() > 0]
            ref = torch.stack(short).pow(2).mean().sqrt()
        ref.backward()
        np.testing.assert_allclose(zt.grad.numpy(), zb.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_reference_intra_loss_zero_when_no_class_exceeds_the_median():
    # Two translated copies of one configuration: equal class means, nothing exceeds R.
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = t64(np.concatenate([base, base + 10.0]), grad=True)
    loss = losses.reference_intra_loss(z, ty([0, 0, 0, 1, 1, 1]))
    assert loss.item() == pytest.approx(0.0, abs=1e-9)
    loss.backward()
    assert torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- errors

ALL_LOSSES = [
    losses.intra_class_loss, losses.inter_class_loss, losses.margin_loss, losses.diameter_loss,
    losses.reference_intra_loss, losses.reference_inter_loss,
]


@pytest.mark.parametrize("fn", ALL_LOSSES)
def test_losses_reject_a_vector_of_embeddings(fn):
    with pytest.raises(PDDLiteError, match="P x d"):
        fn(torch.zeros(6), ty([0, 0, 0, 1, 1, 1]))


@pytest.mark.parametrize("fn", ALL_LOSSES)
def test_losses_reject_labels_of_the_wrong_length(fn):
    with pytest.raises(PDDLiteError, match="labels"):
        fn(torch.zeros(6, 2), ty([0, 0, 1, 1]))
    with pytest.raises(PDDLiteError, match="labels"):
        fn(torch.zeros(6, 2), ty([[0, 0, 0], [1, 1, 1]]))


@pytest.mark.parametrize(
    "fn", [losses.inter_class_loss, losses.margin_loss, losses.reference_inter_loss]
)
def test_between_class_losses_need_two_classes(fn):
    with pytest.raises(PDDLiteError, match="two classes"):
        fn(torch.randn(5, 3), ty([2, 2, 2, 2, 2]))


def test_intra_loss_needs_a_pair_within_a_class():
    with pytest.raises(PDDLiteError, match="two prototypes of one class"):
        losses.intra_class_loss(torch.randn(3, 2), ty([0, 1, 2]))


@pytest.mark.parametrize("fn", [losses.reference_intra_loss, losses.reference_inter_loss])
def test_reference_losses_need_two_prototypes_in_every_class(fn):
    with pytest.raises(PDDLiteError, match="every class"):
        fn(torch.randn(5, 3), ty([0, 0, 1, 1, 2]))


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_quantile_outside_unit_interval_is_refused(q):
    with pytest.raises(PDDLiteError, match="quantile"):
        losses.intra_class_loss(t64(HAND_Z), ty(HAND_Y), q=q)
    with pytest.raises(PDDLiteError, match="quantile"):
        losses.inter_class_loss(t64(HAND_Z), ty(HAND_Y), q=q)


def test_the_threshold_quantile_is_torch_quantile_bit_for_bit():
    """_quantile sorts and interpolates itself (no host sync, so a CUDA graph can replay it); it must
    give torch.quantile's exact float, ties and repeated values included."""
    from pddlite.losses import _quantile

    gen = torch.Generator().manual_seed(0)
    for trial in range(600):
        n = int(torch.randint(1, 300, (1,), generator=gen))
        dtype = torch.float64 if trial % 3 == 0 else torch.float32
        values = torch.rand(n, generator=gen, dtype=dtype) * 3
        if trial % 5 == 0:
            values = values.round(decimals=1)  # ties
        q = [0.0, 0.25, 0.5, 1.0][trial % 4] if trial % 2 else float(torch.rand(1, generator=gen))
        assert torch.equal(_quantile(values, q), torch.quantile(values, q)), (n, q, dtype)


def test_pair_indices_select_what_the_masks_select_in_the_same_order():
    from pddlite.losses import pair_indices, pair_masks

    y = torch.tensor([2, 0, 2, 1, 0, 2, 1])
    d = torch.rand(7, 7, generator=torch.Generator().manual_seed(1))
    same, different = pair_masks(y)
    pairs = pair_indices(y)
    assert torch.equal(d[pairs.same], d[same]) and torch.equal(d[pairs.different], d[different])
