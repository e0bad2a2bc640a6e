"""``probe``: the one call that runs every search on a batch of inputs and returns a report.

One module per domain: :mod:`probekit.probe.dna` (DNA-sequence models) and
:mod:`probekit.probe.molecules` (feature and molecule models), sharing the
random-baseline comparison of :mod:`probekit.probe.baseline`;
:mod:`probekit.probe.chunks` runs either in saved, resumable chunks. The
reports they return only render these results.

Examples
--------
>>> from probekit import SequenceModel, goals
>>> from probekit.testing import MotifCounter
>>> adapter = SequenceModel(MotifCounter("TGACTCA"), output=0, device="cpu")
>>> report = probe(adapter, ["CCGATGACTCAGGCAT", "AATGACTCATTTCCGA"], goal=goals.below(0.5), baseline_draws=50)
>>> report.regions()[["id", "start", "end"]].values.tolist()
[['seq0', 4, 11], ['seq1', 2, 9]]
"""

from __future__ import annotations

from ..adapters import FeatureModel
from ..report.sensitivity import SensitivityReport


def probe(
    adapter,
    inputs,
    *,
    goal=None,
    max_edits: int | None = None,
    baseline_draws: int = 200,
    method: str = "auto",
    attribution: str | None = None,
    motifs=False,
    motif_query=None,
    window=None,
    seed: int = 0,
    progress: bool = False,
    alpha: float = 0.05,
    max_gap: int = 2,
    min_length: int = 3,
    **feature_options,
) -> SensitivityReport:
    """Probe what a model relies on: minimal edits, their significance, and critical positions.

    For each input (grouped by length, batched on ``adapter.device``):

    1. saturation mutagenesis (ISM): the effect of every single substitution;
    2. the fewest substitutions that reach ``goal`` (:func:`probekit.search.discrete.min_substitutions`);
    3. the random baseline: ``baseline_draws`` random edit sets of the same size
       (``max_edits`` for inputs whose goal was not reached), giving the
       adversarial-vs-random ``ratio`` (|adversarial change| / mean |random change|),
       ``z`` and the empirical one-sided ``p_value``
       (:meth:`probekit.results.BaselineResult.compare`);
    4. position ``importance`` = the largest absolute ISM effect over the
       alternative bases at the position, and its ``rank`` within the input;
    5. ``critical`` positions: importance at or above the input's null threshold,
       the larger of the ``1 - alpha`` quantile of the absolute effect of one random
       substitution (exactly: of all single-substitution effects in the same input's
       ISM) and a robust outlier floor over positions (median + z MAD, Bonferroni
       over positions; :func:`probekit.report.tables.outlier_floor`), so that a
       sequence the model finds nothing in gets few or no critical positions;
    6. critical regions: runs of critical positions, widened on both sides through
       contiguous positions with at least half the run's peak importance (its full
       width at half maximum: when a motif covers more than ``alpha`` of the input's
       substitutions the threshold falls inside it, and this keeps the motif whole),
       merged across gaps of at most ``max_gap``, at least ``min_length`` long, and
       numbered 1, 2, ... by their summed importance (region 1 is the strongest);
    7. with ``motifs``, the best JASPAR matches overlapping each region.

    Records that cannot be read, and groups the model cannot take (e.g. a wrong
    length), become rows of ``summary()`` with their ``error``; the rest goes on.

    Parameters
    ----------
    adapter : SequenceModel, FeatureModel or MoleculeModel
        Feature models are probed by :func:`probekit.probe.molecules.probe_features`,
        molecule models (graph networks, black boxes) by
        :func:`probekit.probe.molmodels.probe_molecule_model` (atoms, fragments,
        counterfactual molecules; ``baseline_draws`` random draws for each baseline).
    inputs : FASTA path, list of str, dict, DataFrame or one-hot tensor (N, 4, L)
    goal : Goal or str, optional
        Default :func:`probekit.goals.flip`.
    max_edits : int, optional
        Largest edit set searched; default 3. For feature models, the most bit
        flips searched: the same setting as their ``max_flips=`` (give either; both
        with different values raise ``ValueError``).
    baseline_draws : int
        Random edit sets per input.
    method : str
        Search method of ``min_substitutions``.
    attribution : str, optional
        Also add a captum attribution per position (``"saliency"``,
        ``"input_x_gradient"``, ``"integrated_gradients"``, ``"deeplift_shap"``) as
        the ``attribution`` column.
    motifs : bool or list of Motif
        True for JASPAR CORE vertebrates (needs ``probekit[motifs]``), or the motifs to use.
        Each region gets its top 3 matches, ranked by the exact p-value of the motif
        columns over the region (corrected for the placements tried, ``motif_p_value``)
        with a q-value over the motifs tried (``motif_q_value``); matrices tied at the
        best p-value are named in ``motif_tied_with``.
    motif_query : str or list of str, optional
        Factors, matrix ids or JASPAR families you expect (for example ``["CTCF", "GATA"]``):
        the best match among them is named per region (``motif_query_match``) even when
        it is not the top match. Needs ``motifs``.
    window : (start, end), optional
        Scan and edit only these positions (clipped to each sequence).
    seed : int
        Seed of the random baseline.
    progress : bool
        Show progress bars.
    alpha : float
        Level of the null threshold that marks critical positions.
    max_gap, min_length : int
        Region merging and minimum region length.
    **feature_options
        Feature models only: further options of ``probe_features`` (for example
        ``max_flips=``, ``flips=``, ``norm=``, ``attribution_kwargs=``).

    Returns
    -------
    SensitivityReport

    Examples
    --------
    >>> from probekit import SequenceModel
    >>> from probekit.testing import ToyConv
    >>> adapter = SequenceModel(ToyConv(), output=1, device="cpu")
    >>> report = probe(adapter, ["ACGTACGTACGTAC", "ACGRT"], max_edits=2, baseline_draws=20)
    >>> report.summary()["error"].notna().tolist()
    [False, True]
    >>> len(report.to_frame())
    14
    """
    from ..molmodel.adapter import MoleculeModel

    if isinstance(adapter, MoleculeModel):
        if motifs is not False or window is not None or motif_query is not None:
            raise ValueError("motifs=, motif_query= and window= apply to DNA models only")
        from .molmodels import probe_molecule_model

        return probe_molecule_model(adapter, inputs, goal=goal, max_edits=3 if max_edits is None else max_edits,
                                    n_random=baseline_draws, seed=seed, progress=progress, **feature_options)  # fmt: skip
    if isinstance(adapter, FeatureModel):
        if motifs is not False or window is not None or motif_query is not None:
            raise ValueError("motifs=, motif_query= and window= apply to DNA models only")
        from .molecules import probe_features

        if attribution is not None:  # otherwise probe_features keeps its own default method
            feature_options["attribution"] = attribution
        return probe_features(
            adapter, inputs, goal=goal, max_edits=max_edits, baseline_draws=baseline_draws, method=method,
            alpha=alpha, seed=seed, progress=progress, **feature_options,
        )  # fmt: skip
    if feature_options:
        raise TypeError(f"probe() got options {sorted(feature_options)} that apply to feature models only")
    if motif_query is not None and not motifs:
        raise ValueError("motif_query= names the motifs to look for among the JASPAR matches: give motifs= too")
    from .dna import probe_sequences

    return probe_sequences(
        adapter, inputs, goal=goal, max_edits=max_edits, baseline_draws=baseline_draws, method=method,
        attribution=attribution, motifs=motifs, motif_query=motif_query, window=window, seed=seed, progress=progress, alpha=alpha,
        max_gap=max_gap, min_length=min_length,
    )  # fmt: skip


__all__ = ["probe"]
