"""SensitivityReport: the tidy tables, figures and HTML that :func:`probekit.probe` returns."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import MappingProxyType
from typing import Callable

import pandas as pd
import torch

from . import html as _html
from .tables import frame_from_plain, frame_to_plain, jsonable, normalize_text

FORMAT = "probekit.SensitivityReport"
FORMAT_VERSION = 1

# kind -> plot name -> fn(report, id, ax, **kwargs) -> ax
_PLOTS: dict[str, dict[str, Callable]] = {}
# kind -> list of (order, name, fn(report, *, figures, max_inputs) -> str)
_SECTIONS: dict[str, list[tuple[float, str, Callable]]] = {}
# Modules that register the plots and sections of a kind, imported on first use so that
# a report read back with load() finds them without the user importing anything.
_KIND_MODULES = {"dna": "probekit.report.plots", "features": "probekit.report.molecules",
                 "molecule_model": "probekit.report.molmodels"}


_LOADED: set = set()
# kind -> the SensitivityReport subclass that load() and from_json() give back
_CLASSES: dict[str, type] = {}


def register_report_class(kind: str, report_class: type) -> None:
    """Make :meth:`SensitivityReport.load` and ``from_json`` return ``report_class`` for ``kind``."""
    _CLASSES[kind] = report_class


def _class_for(kind: str, default: type) -> type:
    _ensure_kind(kind)
    chosen = _CLASSES.get(kind, default)
    return chosen if issubclass(chosen, default) else default


def _ensure_kind(kind: str) -> None:
    module = _KIND_MODULES.get(kind)
    if module is not None and module not in _LOADED:
        _LOADED.add(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


class SensitivityReport:
    """What a model relies on: positions (or features), regions, minimal edits, and their statistics.

    A report is a set of named tidy ``pandas`` tables plus the parameters that made
    it. It is immutable: every accessor returns a copy. :func:`probekit.probe` builds
    one; so can any module, by passing tables directly.

    Parameters
    ----------
    kind : str
        ``"dna"`` for sequence models, ``"features"`` for feature and molecule models,
        or any new kind that registers its plots and sections (see below).
    tables : dict of str -> pandas.DataFrame
        Must hold ``"frame"`` (one row per input and position or feature, with at least
        ``id``, ``rank``, ``critical`` and ``importance``) and ``"summary"`` (one row per
        input, with ``id`` and ``error``). Common optional tables: ``"regions"``,
        ``"edits"``, ``"trajectory"``, ``"motifs"``; any other name is kept and
        reachable through :meth:`table`.
    params : dict
        JSON-serialisable parameters (goal, budget, seed, device, timings ...).

    Notes
    -----
    For ``kind="dna"`` the tables are:

    - ``frame``: id, position, ref, importance, rank, critical, region, motif,
      effect_A, effect_C, effect_G, effect_T (and ``attribution`` when asked for).
      ``importance`` is the largest absolute ISM effect over the alternative bases
      at the position; ``rank`` is 1 for the most important position of the input;
      ``critical`` marks positions whose importance reaches the input's null threshold
      (the ``1 - alpha`` quantile of the absolute effects of all single substitutions
      of that input, i.e. of one random substitution); ``region`` (nullable int) is the
      critical region the position belongs to, 1 being the strongest.
    - ``summary``: id, length, score, goal, goal_score (the score at which the goal is
      reached; NaN for class goals, read in ``g``), n_edits, success, proved_minimal,
      score_after, adversarial_delta, random_k (edits per random draw), random_mean,
      random_std, ratio, z, p_value (adversarial vs. random, see
      :meth:`probekit.results.BaselineResult.compare`), threshold (the null threshold),
      n_critical, n_regions, top_region ("start-end"), evaluations, error. Bad records
      have only id, length and error.
    - ``regions``: id, region (its number, also given as ``rank``: 1 is the strongest),
      start, end (exclusive), length, sequence,
      importance_sum, importance_max, n_edits_inside, motif, motif_id, motif_score,
      motif_p_value, motif_offset, motif_strand (the best JASPAR match, with ``motifs=``).
    - ``edits``: id, step, position, ref, alt, score, g (score and goal value after
      the edits up to this one). ``trajectory`` adds step 0 (no edit) to these.
    - ``motifs``: the best JASPAR matches of each region (see :mod:`probekit.motifs`).

    Extending to a new kind (this is how ``probekit.report.molecules`` does it)::

        from probekit.report import SensitivityReport, html

        @SensitivityReport.register_plot("features", "bars")
        def _bars(report, id, ax, **kwargs):
            frame = report.to_frame()
            ...  # draw on ax
            return ax

        def _atoms_section(report, *, figures, max_inputs):
            return html.section("Atoms", html.table_html(report.table("atoms")))

        SensitivityReport.register_section("features", _atoms_section, order=30)
        # kind-agnostic sections anyone can reuse:
        SensitivityReport.register_section("features", html.errors_section, order=80)
        SensitivityReport.register_section("features", html.parameters_section, order=90)
        report = SensitivityReport("features", {"frame": ..., "summary": ...}, params={...})

    Sections are joined in ``order`` to make :meth:`to_html`; a plot is drawn with
    ``report.plot(kind="bars", id=...)``. The module named for a kind in
    ``_KIND_MODULES`` (``"features"`` -> ``probekit.report.molecules``) is imported
    on first use, so registrations there need no import by the user.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"id": ["a", "a"], "position": [0, 1], "importance": [0.2, 1.0],
    ...                       "rank": [2, 1], "critical": [False, True]})
    >>> summary = pd.DataFrame({"id": ["a"], "score": [1.0], "error": [None]})
    >>> report = SensitivityReport("dna", {"frame": frame, "summary": summary})
    >>> report.critical(top=1)["position"].tolist()
    [1]
    """

    def __init__(self, kind: str, tables: dict, params: dict | None = None):
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        missing = [name for name in ("frame", "summary") if name not in tables]
        if missing:
            raise ValueError(f"a SensitivityReport needs tables {missing}; got {sorted(tables)}")
        for name, table in tables.items():
            if not isinstance(table, pd.DataFrame):
                raise TypeError(f"table {name!r} must be a pandas DataFrame, got {type(table).__name__}")
        object.__setattr__(self, "_kind", kind)
        own = {name: normalize_text(table.reset_index(drop=True)) for name, table in tables.items()}
        object.__setattr__(self, "_tables", MappingProxyType(own))
        object.__setattr__(self, "_params", jsonable(dict(params or {})))

    def __setattr__(self, name, value):
        raise AttributeError("a SensitivityReport is immutable")

    # ----------------------------------------------------------------- data
    @property
    def kind(self) -> str:
        return self._kind

    @property
    def params(self) -> dict:
        """Parameters that produced the report (a copy)."""
        return json.loads(json.dumps(self._params))

    @property
    def table_names(self) -> list[str]:
        return list(self._tables)

    @property
    def ids(self) -> list[str]:
        """Input ids, in input order (bad records included)."""
        return [str(i) for i in self._tables["summary"]["id"]]

    def table(self, name: str) -> pd.DataFrame:
        """A copy of the named table; an empty DataFrame when the report has none."""
        table = self._tables.get(name)
        return pd.DataFrame() if table is None else table.copy()

    def to_frame(self) -> pd.DataFrame:
        """One row per input and position (or feature): id, position, ref, importance, rank, critical, ..."""
        return self.table("frame")

    def summary(self) -> pd.DataFrame:
        """One row per input, bad records included with their ``error``."""
        return self.table("summary")

    def regions(self) -> pd.DataFrame:
        """One row per critical region, strongest first within each input."""
        return self.table("regions")

    def edits(self) -> pd.DataFrame:
        """One row per edit of each input's minimal edit set, with the score after it."""
        return self.table("edits")

    def critical(self, top: int | None = 10) -> pd.DataFrame:
        """Critical rows of :meth:`to_frame`, most important first, at most ``top`` per input.

        Examples
        --------
        >>> import pandas as pd
        >>> f = pd.DataFrame({"id": ["a"] * 3, "importance": [3.0, 1.0, 2.0], "rank": [1, 3, 2],
        ...                   "critical": [True, False, True]})
        >>> s = pd.DataFrame({"id": ["a"], "error": [None]})
        >>> SensitivityReport("dna", {"frame": f, "summary": s}).critical()["importance"].tolist()
        [3.0, 2.0]
        """
        frame = self._tables["frame"]
        order = {i: n for n, i in enumerate(self.ids)}
        crit = frame[frame["critical"].astype(bool)].copy()
        crit["_order"] = crit["id"].map(order)
        crit = crit.sort_values(["_order", "rank"], kind="stable").drop(columns="_order")
        if top is not None:
            crit = crit.groupby("id", sort=False).head(top)
        return crit.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self._tables["summary"])

    def __repr__(self) -> str:
        summary = self._tables["summary"]
        good = _html.good_rows(summary)
        items = [f"kind={self._kind!r}", f"inputs={len(summary)}", f"errors={len(summary) - len(good)}"]
        # goal reached, per search: "success" for DNA, "flips_success" and the like for features
        for column in [c for c in summary.columns if c == "success" or c.endswith("_success")]:
            if good[column].notna().any():
                items.append(f"{column}={int(good[column].fillna(False).astype(bool).sum())}/{len(good)}")
        if "regions" in self._tables:
            items.append(f"regions={len(self._tables['regions'])}")
        items += [f"{key}={self._params[key]!r}" for key in ("goal", "output") if isinstance(self._params.get(key), str)]
        return f"{type(self).__name__}({', '.join(items)}, tables={list(self._tables)})"

    def equals(self, other) -> bool:
        """True when ``other`` has the same kind, parameters and tables (values and dtypes)."""
        if not isinstance(other, SensitivityReport):
            return False
        if self._kind != other._kind or self._params != other._params or set(self._tables) != set(other._tables):
            return False
        return all(self._tables[n].equals(other._tables[n]) for n in self._tables)

    def __eq__(self, other) -> bool:
        return self.equals(other)

    __hash__ = None

    # ---------------------------------------------------------- extension
    @classmethod
    def register_plot(cls, kind: str, name: str, fn: Callable | None = None):
        """Register ``fn(report, id, ax, **kwargs) -> ax`` as plot ``name`` of reports of ``kind``.

        Usable as a decorator. Registering an existing name replaces it.
        """

        def add(f):
            _PLOTS.setdefault(kind, {})[name] = f
            return f

        return add(fn) if fn is not None else add

    @classmethod
    def register_section(cls, kind: str, fn: Callable | None = None, *, order: float = 50, name: str | None = None):
        """Register an HTML section ``fn(report, *, figures, max_inputs) -> str`` for reports of ``kind``.

        Sections appear in increasing ``order``; a section registered again under the
        same ``name`` (default the function's name) replaces the old one.
        """

        def add(f):
            key = name or f.__name__
            entries = [e for e in _SECTIONS.get(kind, []) if e[1] != key]
            entries.append((order, key, f))
            _SECTIONS[kind] = sorted(entries, key=lambda e: e[0])
            return f

        return add(fn) if fn is not None else add

    @classmethod
    def plot_kinds(cls, kind: str) -> list[str]:
        """Names of the plots registered for reports of ``kind``."""
        _ensure_kind(kind)
        return sorted(_PLOTS.get(kind, {}))

    # --------------------------------------------------------------- plots
    def _default_id(self) -> str:
        summary = self._tables["summary"]
        good = summary[summary["error"].isna()] if "error" in summary else summary
        if good.empty:
            raise ValueError("the report has no input without an error to plot")
        return str(good["id"].iloc[0])

    def plot(self, kind: str = "ism", *, id: str | None = None, ax=None, **kwargs):
        """Draw one figure for one input and return its matplotlib Axes.

        Parameters
        ----------
        kind : str
            For DNA reports: ``"ism"`` (heatmap of ISM effects, bases x positions),
            ``"logo"`` (logo of position importance, needs ``probekit[plot]``) and
            ``"trajectory"`` (score after each minimal edit, with the goal line).
            Other kinds register their own (:meth:`plot_kinds`).
        id : str, optional
            The input to draw; the first input without an error by default.
        ax : matplotlib Axes, optional
            Draw here; a new pyplot figure by default.
        **kwargs
            Passed to the plot (e.g. ``start=``, ``end=`` to zoom into positions).
        """
        _ensure_kind(self._kind)
        plots = _PLOTS.get(self._kind, {})
        if kind not in plots:
            raise ValueError(f"no plot {kind!r} for {self._kind!r} reports; choose one of {sorted(plots)}")
        id = self._default_id() if id is None else str(id)
        if id not in self.ids:
            raise KeyError(f"no input {id!r} in the report")
        errors = self._tables["summary"].set_index("id")["error"] if "error" in self._tables["summary"] else None
        if errors is not None and isinstance(errors.get(id), str):
            raise ValueError(f"input {id!r} has no results: {errors[id]}")
        if ax is None:
            import matplotlib.pyplot as plt

            width = kwargs.pop("width", 10.0)
            _, ax = plt.subplots(figsize=(width, kwargs.pop("height", 2.8)))
        return plots[kind](self, id, ax, **kwargs)

    # ---------------------------------------------------------------- HTML
    def _body(self, *, figures: bool, max_inputs: int) -> str:
        _ensure_kind(self._kind)
        parts = [sec(self, figures=figures, max_inputs=max_inputs) for _, _, sec in _SECTIONS.get(self._kind, [])]
        if not parts:  # a kind without sections still shows its tables
            parts = [_html.section(name, _html.table_html(t)) for name, t in self._tables.items()]
        return "\n".join(parts)

    def to_html(self, path=None, *, title: str | None = None, max_inputs: int = 20, figures: bool = True):
        """The whole report as ONE self-contained HTML file: tables as HTML, figures as base64 PNG.

        Parameters
        ----------
        path : str or Path, optional
            Where to write; without it the HTML text is returned.
        title : str, optional
        max_inputs : int
            Inputs that get their own figures (the strongest by p-value first).
        figures : bool
            Draw figures (needs matplotlib; logos need ``probekit[plot]``).

        Returns
        -------
        pathlib.Path when ``path`` is given, else str
        """
        title = title or self._params.get("title") or f"probekit sensitivity report ({self._kind})"
        text = _html.page(title, self._body(figures=figures, max_inputs=max_inputs))
        if path is None:
            return text
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return _html.fragment(self._body(figures=True, max_inputs=1))

    # -------------------------------------------------------- serialisation
    def to_json(self, *, indent: int | None = None) -> str:
        """The report as JSON: kind, params and each table in pandas' ``orient="table"`` form."""
        tables = {
            name: json.loads(t.to_json(orient="table", index=False, double_precision=15)) for name, t in self._tables.items()
        }
        payload = {"format": FORMAT, "version": FORMAT_VERSION, "kind": self._kind, "params": self._params, "tables": tables}
        return json.dumps(payload, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "SensitivityReport":
        """Read a report from :meth:`to_json` text (floats kept to 15 significant digits)."""
        from io import StringIO

        payload = json.loads(text)
        if payload.get("format") != FORMAT:
            raise ValueError("not a probekit SensitivityReport JSON document")
        tables = {name: pd.read_json(StringIO(json.dumps(t)), orient="table") for name, t in payload["tables"].items()}
        return _class_for(payload["kind"], cls)(payload["kind"], tables, payload["params"])

    def save(self, path) -> Path:
        """Write the report to ``path``: a ``torch.save`` file of plain columns (no pickled objects).

        :meth:`load` reads it back exactly (values and dtypes), with ``weights_only=True``.
        """
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self._kind,
            "params": json.dumps(self._params),
            "tables": {name: frame_to_plain(t) for name, t in self._tables.items()},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path) -> "SensitivityReport":
        """Read a report written by :meth:`save`; never executes code from the file."""
        payload = torch.load(Path(path), weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved probekit SensitivityReport")
        if payload.get("version", 0) > FORMAT_VERSION:
            raise ValueError(f"{path} was written by a newer probekit (format {payload['version']})")
        tables = {name: frame_from_plain(t) for name, t in payload["tables"].items()}
        return _class_for(payload["kind"], cls)(payload["kind"], tables, json.loads(payload["params"]))


__all__ = ["SensitivityReport"]
