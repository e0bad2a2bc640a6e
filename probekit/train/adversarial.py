"""Adversarial training: the min-max objective with the worst case found inside the loop.

- :func:`inner_max`: the perturbation within an eps-ball (L-inf, L2 or L1), the
  feature bounds and a mask that maximises a per-example loss, by projected
  gradient ascent (one step of size eps is FGSM).
- :func:`adversarial`: the objective ``mean loss(f(x + delta*), y)`` (Madry et
  al., 2018), or TRADES (Zhang et al., 2019): ``loss(f(x), y) + beta *
  divergence(f(x), f(x + delta*))`` with delta* maximising the divergence.
- :func:`substitutions`: discrete adversarial training for DNA models: each
  sequence is replaced by the one within ``k`` substitutions that the gradient or
  greedy search of :func:`probekit.search.min_substitutions` finds to change the
  model's call away from the true label (or gets closest to it).

Objectives plug into :func:`probekit.train.fit`.

Examples
--------
>>> import torch
>>> from probekit import FeatureModel, outputs
>>> from probekit.train import fit
>>> adapter = FeatureModel(torch.nn.Linear(3, 2), output=outputs.logit(1), device="cpu")
>>> X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
>>> model, history = fit(adapter, (X, y), objective=adversarial(0.1, steps=3), epochs=1)
>>> "eps" in history.columns
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..goals import BoundGoal, Goal
from ..outputs import _class_axis
from ..search.continuous import _check_norm, _eps_rows, _random_in_ball, _space, _steepest, project
from .loop import Step, forward, per_example_loss, ramp


def _check_labels(X: torch.Tensor, y: torch.Tensor) -> None:
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{X.shape[0]} inputs but {y.shape[0]} labels or targets")


def _step_rows(step_size, eps_rows: torch.Tensor, steps: int) -> torch.Tensor:
    if step_size is None:
        return eps_rows if steps <= 1 else 2.5 * eps_rows / steps
    return torch.as_tensor(step_size, dtype=eps_rows.dtype, device=eps_rows.device).expand_as(eps_rows)


def inner_max(
    adapter,
    X,
    y,
    *,
    eps,
    norm: str = "linf",
    steps: int = 10,
    step_size=None,
    random_start: bool = True,
    mask=None,
    loss="auto",
    l1_fraction: float = 0.01,
    seed: int = 0,
) -> torch.Tensor:
    """The inputs within ``eps`` of ``X`` that maximise a per-example loss (projected gradient ascent).

    Each step moves along the loss's steepest ascent direction in the norm
    (``sign(grad)`` for L-inf, ``grad / ||grad||_2`` for L2, the top coordinates for
    L1), then projects onto the ball intersected with the adapter's feature bounds
    (:func:`probekit.search.continuous.project`); frozen (masked, binary, integer)
    features never move. The iterate with the highest loss per input is returned.
    The model is called through the adapter, in eval mode.

    Parameters
    ----------
    adapter : FeatureModel or SequenceModel
    X : torch.Tensor of shape (N, ...)
    y : torch.Tensor of shape (N, ...)
        Labels or targets, as ``loss`` takes them.
    eps : float or torch.Tensor of shape (N,)
        Radius of the ball; must be non-negative.
    norm : {"linf", "l2", "l1"}
    steps : int
        Ascent steps; 1 with ``step_size=eps`` and no random start is FGSM.
    step_size : float, optional
        Default ``eps`` for one step, else ``2.5 * eps / steps``.
    random_start : bool
        Start from a uniform draw in the ball (projected onto the bounds).
    mask : torch.Tensor of bool, shape of one input or (N, ...), optional
        True where a feature may change.
    loss : str or callable
        Per-example loss (see :func:`probekit.train.per_example_loss`).
    l1_fraction : float
        Share of coordinates moved per L1 step.
    seed : int

    Returns
    -------
    torch.Tensor of the shape of ``X``, on the adapter's device

    Examples
    --------
    For a linear classifier under L-inf the worst case is known: every feature
    moves by eps against the label.

    >>> import torch
    >>> from probekit import FeatureModel, outputs
    >>> model = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[2.0, -1.0]])); _ = model.bias.zero_()
    >>> adapter = FeatureModel(model, output=outputs.value(0), device="cpu")
    >>> inner_max(adapter, torch.zeros(1, 2), torch.tensor([1]), eps=0.5, random_start=False)
    tensor([[-0.5000,  0.5000]])
    """
    norm = _check_norm(norm)
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    X = (X if isinstance(X, torch.Tensor) else adapter.encode(X)).to(adapter.device, torch.float32)
    y = torch.as_tensor(y).to(adapter.device)
    _check_labels(X, y)
    n = X.shape[0]
    eps_rows = _eps_rows(eps, n, adapter.device)
    fn = per_example_loss(loss)
    value_fn = lambda out, rows: fn(out, y[rows])  # noqa: E731
    space = _space(adapter, X, mask, False)
    x0, lower, upper = space.x0, space.lower, space.upper
    delta = torch.zeros_like(x0)
    if random_start and n:
        generator = torch.Generator().manual_seed(seed)
        delta = project(_random_in_ball(n, x0.shape[1], eps_rows, norm, generator, x0.device), eps_rows, norm=norm,
                        lower=lower, upper=upper)
    alpha = _step_rows(step_size, eps_rows, steps)
    best, best_value = delta, torch.full((n,), -torch.inf, device=x0.device)
    for _ in range(steps):
        value, grad = adapter.gradient(space.unflat(x0 + delta), value_fn)
        better = value > best_value
        best, best_value = torch.where(better[:, None], delta, best), torch.where(better, value, best_value)
        direction = _steepest(-grad.reshape(n, -1), delta, lower, upper, norm, l1_fraction)
        delta = project(delta + alpha[:, None] * direction, eps_rows, norm=norm, lower=lower, upper=upper)
    if n:
        value = adapter.map(space.unflat(x0 + delta), value_fn)
        better = value > best_value
        best = torch.where(better[:, None], delta, best)
    return space.unflat(x0 + best).to(X.dtype)


def divergence(clean: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """Per-example divergence of two raw outputs (N, ...) -> (N,), as TRADES uses it.

    KL(softmax(clean) || softmax(perturbed)) over the columns; one logit column is
    read as a two-class output (the KL of the two Bernoulli distributions).

    Examples
    --------
    >>> divergence(torch.zeros(1, 2), torch.zeros(1, 2))
    tensor([0.])
    """
    a, b = clean.reshape(clean.shape[0], -1), perturbed.reshape(perturbed.shape[0], -1)
    if a.shape[1] == 1:
        a, b = torch.cat([torch.zeros_like(a), a], 1), torch.cat([torch.zeros_like(b), b], 1)
    p_log, q_log = F.log_softmax(a, 1), F.log_softmax(b, 1)
    return (p_log.exp() * (p_log - q_log)).sum(1)


def trades_divergence(y: torch.Tensor):
    """The divergence TRADES uses for labels or targets ``y``: KL for class labels, squared distance for float targets.

    Examples
    --------
    >>> trades_divergence(torch.tensor([1.5]))(torch.zeros(1, 1), torch.ones(1, 1))
    tensor([1.])
    """
    if y.is_floating_point():
        return lambda clean, perturbed: (clean - perturbed).reshape(clean.shape[0], -1).square().mean(1)
    return divergence


def _schedule_eps(eps: float, step: Step, warmup: float, ramp_share: float) -> float:
    return ramp(step.progress, start=0.0, end=eps, begin=warmup, until=warmup + ramp_share)


def adversarial(
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 10,
    step_size=None,
    random_start: bool = True,
    mask=None,
    trades: float | None = None,
    warmup: float = 0.0,
    ramp_share: float = 0.0,
    l1_fraction: float = 0.01,
):
    """Adversarial training objective: PGD (or FGSM with ``steps=1``) inside the loop, or TRADES.

    Parameters
    ----------
    eps : float
        Radius of the ball at the end of the schedule; must be non-negative.
    norm : {"linf", "l2", "l1"}
    steps, step_size, random_start, mask, l1_fraction
        As in :func:`inner_max`.
    trades : float, optional
        TRADES' beta: the loss becomes ``loss(f(x), y) + beta * divergence`` with the
        perturbation maximising the divergence from the clean output.
    warmup : float
        Share of the run trained on clean inputs (eps = 0).
    ramp_share : float
        Share of the run, after the warm-up, over which eps grows linearly to its value.

    Returns
    -------
    callable
        An objective for :func:`probekit.train.fit`; its metrics are ``eps`` and
        ``adv_loss`` (the loss at the perturbed inputs).

    Examples
    --------
    >>> objective = adversarial(0.1, norm="l2", steps=5, trades=6.0)
    >>> callable(objective)
    True
    """
    _check_norm(norm)
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative, got {eps}")
    if trades is not None and trades < 0:
        raise ValueError(f"trades (beta) must be non-negative, got {trades}")

    def objective(adapter, x, y, step: Step):
        _check_labels(x, y)
        e = _schedule_eps(float(eps), step, warmup, ramp_share)
        attack = {"eps": e, "norm": norm, "steps": steps, "step_size": step_size, "random_start": random_start,
                  "mask": mask, "l1_fraction": l1_fraction, "seed": step.seed}
        if trades is None:
            x_adv = inner_max(adapter, x, y, loss=step.loss, **attack) if e > 0 else x
            adv = step.loss(forward(adapter, x_adv), y)
            return adv.mean(), {"eps": e, "adv_loss": float(adv.detach().mean())}
        clean_out = forward(adapter, x)
        div = trades_divergence(y)
        reference = clean_out.detach()
        if e > 0:
            attack["random_start"] = True  # TRADES starts from a random point: the divergence's gradient is 0 at x
            x_adv = inner_max(adapter, x, reference, loss=div, **attack)
        else:
            x_adv = x
        spread = div(clean_out, forward(adapter, x_adv))
        clean = step.loss(clean_out, y)
        return (clean + trades * spread).mean(), {"eps": e, "adv_loss": float(spread.detach().mean())}

    return objective


@dataclass(frozen=True)
class _Misclassify(Goal):
    """Change the model's call away from the true ``labels`` (N,): a goal bound to labels, not to the model's call."""

    labels: torch.Tensor | None = None

    def bind(self, output, y_ref: torch.Tensor) -> BoundGoal:
        y_ref = y_ref.detach()
        score = output(y_ref)
        labels = self.labels.to(y_ref.device).long()
        if output.classes and y_ref.ndim <= 2 and _class_axis(y_ref).shape[1] > 1:
            return BoundGoal(self, output, score, ref_class=labels, mode="leave_class")
        sign = (2 * labels - 1).to(score.dtype)
        return BoundGoal(self, output, score, sign=sign, mode="cross")


def misclassify(labels) -> Goal:
    """A goal reached where the model's call differs from ``labels`` (N,): 0/1 for a single score, class indices otherwise.

    Examples
    --------
    >>> import torch
    >>> from probekit import outputs
    >>> bound = misclassify(torch.tensor([0])).bind(outputs.logit(1), torch.tensor([[2.0, 0.0]]))
    >>> float(bound(torch.tensor([[2.0, 0.0]])))
    2.0
    """
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError("misclassify needs class labels (integers), not float targets")
    return _Misclassify("misclassify", labels=labels.long())


def substitutions(
    k: int,
    *,
    method: str = "gradient",
    positions=None,
    gradient_candidates: int = 16,
    beam_width: int = 4,
    warmup: float = 0.0,
    clean_weight: float = 0.0,
):
    """Discrete adversarial training for DNA classifiers: the worst of ``k`` substitutions per sequence.

    For every batch, :func:`probekit.search.min_substitutions` looks for at most
    ``k`` substitutions per sequence that change the model's call away from the
    true label (:func:`misclassify`); a sequence it cannot flip is replaced by the
    closest attempt. The loss is taken at the edited sequences.

    Parameters
    ----------
    k : int
        Substitutions per sequence; must be non-negative.
    method : {"gradient", "greedy", "beam", "exhaustive", "auto"}
        The search inside the loop (``gradient`` is the cheapest).
    positions : optional
        Editable positions, as in :func:`probekit.search.min_substitutions`.
    gradient_candidates, beam_width : int
    warmup : float
        Share of the run trained on unedited sequences.
    clean_weight : float
        Weight in [0, 1] of the clean loss mixed in: ``(1 - w) * adv + w * clean``.

    Returns
    -------
    callable
        An objective for :func:`probekit.train.fit` (which needs a
        :class:`~probekit.SequenceModel`); metrics ``flipped`` (share of the batch
        the search flipped) and ``edits`` (mean substitutions).

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> from probekit.train import fit
    >>> from probekit.encode.dna import one_hot
    >>> X, y = one_hot(["ACGTACGTAC", "TTTTACGTAA", "GGGGCCCCAA", "ACACACACAC"]), torch.tensor([0, 1, 1, 0])
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> model, history = fit(adapter, (X, y), objective=substitutions(1), epochs=1)
    >>> 0 <= float(history["flipped"][0]) <= 1
    True
    """
    from ..search.discrete import METHODS

    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0.0 <= clean_weight <= 1.0:
        raise ValueError(f"clean_weight must lie in [0, 1], got {clean_weight}")

    def objective(adapter, x, y, step: Step):
        from ..adapters import SequenceModel
        from ..search.discrete import min_substitutions

        if not isinstance(adapter, SequenceModel):
            raise TypeError("substitutions() trains DNA models: pass a SequenceModel to fit")
        _check_labels(x, y)
        if k == 0 or step.progress < warmup:
            clean = step.loss(forward(adapter, x), y)
            return clean.mean(), {"flipped": 0.0, "edits": 0.0}
        result = min_substitutions(adapter, x, goal=misclassify(y), max_edits=k, method=method, positions=positions,
                                   gradient_candidates=gradient_candidates, beam_width=beam_width)
        x_adv = result.sequences.to(adapter.device, x.dtype)
        adv = step.loss(forward(adapter, x_adv), y)
        value = adv.mean()
        if clean_weight > 0:
            value = (1 - clean_weight) * value + clean_weight * step.loss(forward(adapter, x), y).mean()
        return value, {"flipped": float(result.success.float().mean()), "edits": float(result.n_edits.float().mean())}

    return objective


__all__ = ["inner_max", "adversarial", "substitutions", "misclassify", "divergence", "trades_divergence"]
