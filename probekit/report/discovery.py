"""The "what the model learned" section: patterns with logos, seqlet counts, JASPAR matches, insertion effects.

:func:`learned_table` joins the three results on the pattern name: the pattern
table of a :class:`~probekit.discover.DiscoveryResult`, the best TOMTOM match
of each pattern (:func:`~probekit.discover.match_jaspar`) and the insertion
effect of each pattern's consensus against random k-mers
(:func:`~probekit.discover.insertion_effect`). :class:`DiscoveryReport` renders
them as a standalone HTML page (:meth:`DiscoveryReport.to_html`) or a notebook
cell; :func:`discovery_section` is the same section for a larger page.

Examples
--------
>>> import torch
>>> from probekit.discover.results import DiscoveryResult
>>> d = DiscoveryResult(
...     names=["pos_0"], signs=[1], ppms=[torch.eye(4)], contributions=[torch.eye(4)], hypothetical=[torch.eye(4)],
...     cores=[[0, 4]], seqlets={"pattern": [0], "sequence": [0], "start": [3], "end": [7], "strand": ["+"]}, ids=["s"],
... )
>>> learned_table(d)[["pattern", "n_seqlets", "consensus"]].values.tolist()
[['pos_0', 1, 'ACGT']]
>>> "<h2>What the model learned</h2>" in DiscoveryReport(d).to_html(figures=False)
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .html import figure_html, fragment, new_figure, note, page, params_html, section, table_html

BASES = ["A", "C", "G", "T"]
#: Insertion p-value under which a pattern counts as causal in the table.
CAUSAL_P = 0.01
CAUSAL_RATIO = 10.0  # |insertion effect| / mean |random k-mer effect| a causal pattern reaches
#: TOMTOM q-value under which a pattern's best JASPAR match names it.
NAMED_Q = 0.05


def _logomaker():
    try:
        import logomaker
    except ImportError as error:
        raise ImportError('pattern logos need logomaker: pip install "probekit[plot]"') from error
    return logomaker


def _bits(ppm: np.ndarray) -> np.ndarray:
    """A (K, 4) probability matrix scaled by each column's information content (bits)."""
    p = np.clip(ppm, 1e-9, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    ic = 2.0 + (p * np.log2(p)).sum(axis=1, keepdims=True)
    return p * ic


def pattern_logo(discovery, pattern, ax=None, *, matrix: str = "contribution", core: bool = False):
    """Draw one pattern's ``"contribution"``, ``"hypothetical"`` or ``"ppm"`` (in bits) matrix as a logo.

    Parameters
    ----------
    discovery : DiscoveryResult
    pattern : str or int
    ax : matplotlib Axes, optional
        A new figure's axes when None.
    matrix : {"contribution", "hypothetical", "ppm"}
    core : bool
        Draw the core columns only; otherwise the whole pattern, its core shaded.

    Returns
    -------
    matplotlib Axes
    """
    logomaker = _logomaker()
    i = discovery._index(pattern)
    if matrix not in ("contribution", "hypothetical", "ppm"):
        raise ValueError(f"matrix must be 'contribution', 'hypothetical' or 'ppm', got {matrix!r}")
    values = {"contribution": discovery.contributions, "hypothetical": discovery.hypothetical, "ppm": discovery.ppms}[matrix][i]
    start, end = discovery.cores[i]
    values = values.numpy().T.astype(np.float64)  # (K, 4)
    offset = 0
    if core:
        values, offset = values[start:end], start
    if matrix == "ppm":
        values = _bits(values)
    if ax is None:
        _, ax = new_figure(max(3.0, 0.3 * len(values)), 1.6)
    frame = pd.DataFrame(values, columns=BASES, index=np.arange(offset, offset + len(values)))
    logomaker.Logo(frame, ax=ax, color_scheme="classic")
    if not core and (start > 0 or end < len(values)):
        ax.axvspan(start - 0.5, end - 0.5, color="#f2d675", alpha=0.3, lw=0)
    ax.set_ylabel("bits" if matrix == "ppm" else matrix)
    ax.set_title(f"{discovery.names[i]} ({matrix})", fontsize=9)
    return ax


def spacing_heatmap(spacing, ax=None, *, value: str = "excess"):
    """Heatmap of a :class:`~probekit.discover.SpacingResult`: orientation pairs by distance.

    Returns
    -------
    matplotlib Axes
    """
    table = spacing.to_frame()
    if value not in table.columns:
        raise ValueError(f"value must be one of {list(table.columns[2:])}, got {value!r}")
    grid = table.pivot(index="orientation", columns="distance", values=value)
    if ax is None:
        _, ax = new_figure(max(4.0, 0.35 * grid.shape[1] + 2), 0.5 * grid.shape[0] + 1.2)
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(grid.shape[0]), grid.index.tolist())
    ax.set_xticks(range(grid.shape[1]), [str(d) for d in grid.columns])
    ax.set_xlabel("gap between the motifs (bases)")
    ax.set_title(f"{' + '.join(spacing.motifs)}: {value}", fontsize=9)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def learned_table(discovery, matches=None, effects=None) -> pd.DataFrame:
    """One row per pattern: the pattern table, its best JASPAR match and its insertion effect.

    Parameters
    ----------
    discovery : DiscoveryResult
    matches : pandas.DataFrame, optional
        :func:`~probekit.discover.match_jaspar`'s table; adds ``match``, ``matrix_id``, ``match_p``, ``match_q``
        and ``named`` (``match_q < 0.05``).
    effects : MotifEffects, optional
        :func:`~probekit.discover.insertion_effect` of the discovery; adds
        ``insertion_effect``, ``insertion_ratio``, ``insertion_z``, ``insertion_p`` and
        ``causal`` (``insertion_p < 0.01`` and an effect at least 10 times that of random k-mers:
        with enough k-mers a tiny effect is also significant).

    Returns
    -------
    pandas.DataFrame
    """
    table = discovery.to_frame()
    if matches is not None and len(matches):
        best = matches[matches["match_rank"] == 1].set_index("pattern")
        table["match"] = table["pattern"].map(best["name"])
        table["matrix_id"] = table["pattern"].map(best["matrix_id"])
        table["match_p"] = table["pattern"].map(best["p_value"])
        table["match_q"] = table["pattern"].map(best["q_value"])
        table["named"] = table["match_q"] < NAMED_Q
    if effects is not None:
        frame = effects.to_frame().drop_duplicates("motif").set_index("motif")
        for name, column in (("effect", "insertion_effect"), ("ratio", "insertion_ratio"), ("z", "insertion_z"), ("p_value", "insertion_p")):
            table[column] = table["pattern"].map(frame[name])
        table["causal"] = (table["insertion_p"] < CAUSAL_P) & (table["insertion_ratio"] >= CAUSAL_RATIO)
    return table


_DESCRIPTIONS = {
    "n_seqlets": "seqlets (high-contribution windows) aligned into the pattern",
    "consensus": "most likely base at each core column",
    "contribution": "summed contribution of the core's observed bases (sign: raises or lowers the score)",
    "match_q": "TOMTOM q-value of the best JASPAR match (Benjamini-Hochberg over the matrices compared)",
    "insertion_effect": "mean score change of implanting the consensus into shuffled backgrounds",
    "insertion_ratio": "|insertion effect| / mean |effect| of random k-mers of the same length at the same places",
    "insertion_p": "empirical p-value of the insertion effect against the random k-mers",
}


def discovery_section(discovery, *, matches=None, effects=None, figures: bool = True, max_patterns: int = 20) -> str:
    """HTML of the "What the model learned" section (a heading, the joined table, logos per pattern).

    Parameters
    ----------
    discovery : DiscoveryResult
    matches : pandas.DataFrame, optional
    effects : MotifEffects, optional
    figures : bool
        Draw the logos (needs matplotlib and logomaker).
    max_patterns : int
        Patterns that get logos, most seqlets first.

    Returns
    -------
    str
    """
    table = learned_table(discovery, matches, effects)
    n_seq = len(discovery.ids)
    parts = [
        note(
            f"TF-MoDISco found {len(discovery)} pattern{'s' if len(discovery) != 1 else ''} in {n_seq} sequences of "
            f"{discovery.length} bases ({int(discovery.n_seqlets().sum())} seqlets; contributions: "
            f"{discovery.params.get('contributions', '?')})."
        )
    ]
    if discovery.errors:
        parts.append(note(f"{len(discovery.errors)} sequences were left out (see the error rows of the seqlet table).", error=True))
    if len(table):
        parts.append(table_html(table, max_rows=None, descriptions=_DESCRIPTIONS))
    if figures and len(discovery):
        order = table.sort_values("n_seqlets", ascending=False)["pattern"].tolist()[:max_patterns]
        for name in order:
            fig, axes = new_figure(8.0, 3.2, nrows=2)
            pattern_logo(discovery, name, axes[0], matrix="contribution")
            pattern_logo(discovery, name, axes[1], matrix="ppm")
            parts.append(section(name, figure_html(fig, alt=f"logos of {name}"), level=3))
    return section("What the model learned", "\n".join(parts), anchor="learned")


class DiscoveryReport:
    """The discovery, its JASPAR matches and its insertion effects, rendered together.

    Parameters
    ----------
    discovery : DiscoveryResult
    matches : pandas.DataFrame, optional
    effects : MotifEffects, optional
    spacing : SpacingResult, optional
    title : str

    Examples
    --------
    >>> import torch
    >>> from probekit.discover.results import DiscoveryResult
    >>> empty = DiscoveryResult(names=[], signs=[], ppms=[], contributions=[], hypothetical=[], cores=[], seqlets={})
    >>> len(DiscoveryReport(empty).to_frame())
    0
    """

    def __init__(self, discovery, *, matches=None, effects=None, spacing=None, title: str = "What the model learned"):
        self.discovery = discovery
        self.matches = matches
        self.effects = effects
        self.spacing = spacing
        self.title = title

    def to_frame(self) -> pd.DataFrame:
        """One row per pattern (:func:`learned_table`)."""
        return learned_table(self.discovery, self.matches, self.effects)

    def _body(self, figures: bool) -> str:
        body = [discovery_section(self.discovery, matches=self.matches, effects=self.effects, figures=figures)]
        if self.matches is not None and len(self.matches):
            body.append(section("JASPAR matches (TOMTOM)", table_html(self.matches, max_rows=None), level=2))
        if self.effects is not None:
            body.append(section("Insertion effects against random k-mers", table_html(self.effects.to_frame(), max_rows=None)))
        if self.spacing is not None:
            spacing = table_html(self.spacing.to_frame(), max_rows=None)
            if figures:
                fig, ax = new_figure(8.0, 2.6)
                spacing = figure_html(spacing_heatmap(self.spacing, ax).figure, alt="spacing heatmap") + spacing
            body.append(section("Spacing and orientation", spacing))
        body.append(section("Parameters", params_html(self.discovery.params)))
        return "\n".join(body)

    def to_html(self, path=None, *, figures: bool = True) -> str:
        """One self-contained HTML page (figures inline); also written to ``path`` when given."""
        html = page(self.title, self._body(figures))
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def _repr_html_(self) -> str:
        return fragment(self._body(figures=True))


__all__ = ["DiscoveryReport", "discovery_section", "learned_table", "pattern_logo", "spacing_heatmap", "CAUSAL_P", "NAMED_Q"]
