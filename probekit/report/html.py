"""Self-contained HTML: tables as HTML, figures as base64 PNG, one file, no external assets.

These helpers build the page of a :class:`~probekit.report.SensitivityReport`.
Report kinds register their own sections (see
:meth:`SensitivityReport.register_section`); a section is a function
``(report, *, figures, max_inputs) -> str`` that returns an HTML fragment,
usually built from :func:`section`, :func:`table_html` and :func:`figure_html`.

Examples
--------
>>> import pandas as pd
>>> html = section("Scores", table_html(pd.DataFrame({"id": ["a"], "score": [1.5]})))
>>> "<table" in html and "Scores" in html
True
"""

from __future__ import annotations

import base64
import html as _html
import io
import json

import numpy as np
import pandas as pd

_PAGE_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #345; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.6em; color: #345; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
"""

_CSS = """
.probekit-scroll { overflow: auto; max-height: 30em; max-width: 100%; width: fit-content; margin: .5em 0; border: 1px solid #ccc; }
table.probekit-table { border-collapse: separate; border-spacing: 0; font-size: .85em;
                       font-variant-numeric: tabular-nums; }
table.probekit-table th, table.probekit-table td { border: solid #ddd; border-width: 0 1px 1px 0; padding: 2px 6px;
                                                   text-align: left; white-space: nowrap; background: #fff; }
table.probekit-table th { background: #eef2f6; position: sticky; top: 0; z-index: 1; vertical-align: bottom; }
table.probekit-table th:first-child, table.probekit-table td:first-child { position: sticky; left: 0;
                                                                           border-right: 1px solid #bbb; }
table.probekit-table th:first-child { z-index: 2; }
table.probekit-table .num { text-align: right; }
table.probekit-table td.long { white-space: normal; min-width: 24em; }
table.probekit-table td.missing { color: #999; text-align: center; }
.probekit-note { color: #666; font-size: .9em; }
.probekit-error { color: #a00; }
img.probekit-figure { max-width: 100%; display: block; margin: .4em 0; }
@media print { .probekit-scroll { max-height: none; overflow: visible; } }
"""

MISSING = "\u2013"  # an en dash: a missing value, never "nan" or "None"
_LONG_TEXT = 60  # characters from which a text cell wraps instead of widening its column


def escape(text) -> str:
    """HTML-escape any value."""
    return _html.escape(str(text), quote=True)


def is_missing(value) -> bool:
    """True for None, NaN, ``pd.NA`` and ``pd.NaT``.

    Examples
    --------
    >>> [is_missing(v) for v in (None, float("nan"), pd.NA, 0.0, "")]
    [True, True, True, False, False]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def fmt_number(value, digits: int = 3) -> str:
    """A value as short text: floats to ``digits`` significant digits, missing values as an en dash.

    Parameters
    ----------
    value : object
    digits : int

    Returns
    -------
    str

    Examples
    --------
    >>> fmt_number(0.0049751), fmt_number(float("nan")), fmt_number(12), fmt_number(float("inf"))
    ('0.00498', '–', '12', 'inf')
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def good_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of a summary table without an ``error`` (all rows when it has no such column).

    Examples
    --------
    >>> good_rows(pd.DataFrame({"id": ["a", "b"], "error": [None, "bad"]}))["id"].tolist()
    ['a']
    """
    return summary[summary["error"].isna()] if "error" in summary else summary


def strongest_first(summary: pd.DataFrame, *, found, p_value: str, ratio: str) -> pd.DataFrame:
    """Rows ordered for reading: findings first, then by increasing p-value, then by decreasing ratio.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per input.
    found : str or pandas.Series of bool
        A column (or values aligned with ``summary``) that is true where the input has a
        finding, e.g. its goal was reached or it has a critical region. Inputs without
        one come last whatever their p-value.
    p_value, ratio : str
        Columns; missing p-values sort after all others, missing ratios last.

    Returns
    -------
    pandas.DataFrame
        ``summary`` reordered (ties keep their order).

    Examples
    --------
    >>> s = pd.DataFrame({"id": ["none", "weak", "strong"], "found": [False, True, True],
    ...                   "p": [0.001, 0.04, 0.01], "ratio": [50.0, 2.0, 9.0]})
    >>> strongest_first(s, found="found", p_value="p", ratio="ratio")["id"].tolist()
    ['strong', 'weak', 'none']
    """
    found = summary[found] if isinstance(found, str) else pd.Series(found, index=summary.index)
    keys = pd.DataFrame(
        {
            "missing": ~found.fillna(False).astype(bool),
            "p": pd.to_numeric(summary[p_value], errors="coerce").fillna(np.inf),
            "ratio": -pd.to_numeric(summary[ratio], errors="coerce").fillna(-np.inf),
        },
        index=summary.index,
    )
    order = keys.sort_values(["missing", "p", "ratio"], kind="stable").index
    return summary.loc[order]


def drop_empty_columns(frame: pd.DataFrame, *, keep=()) -> pd.DataFrame:
    """``frame`` without the columns whose every value is missing, except those in ``keep``.

    Examples
    --------
    >>> drop_empty_columns(pd.DataFrame({"a": [1], "motif": [None]})).columns.tolist()
    ['a']
    """
    return frame[[c for c in frame.columns if c in keep or frame[c].notna().any()]]


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _cell(value, digits: int) -> str:
    if is_missing(value):
        return f'<td class="missing">{MISSING}</td>'
    text = fmt_number(value, digits)
    if _is_number(value):
        return f'<td class="num">{text}</td>'
    cls = ' class="long"' if len(text) > _LONG_TEXT else ""
    return f"<td{cls}>{_html.escape(text, quote=False)}</td>"


def _header(name, numeric: bool, description: str | None) -> str:
    # <wbr> after underscores lets long snake_case names wrap, keeping numeric columns narrow
    label = _html.escape(str(name), quote=False).replace("_", "_<wbr>")
    title = f' title="{escape(description)}"' if description else ""
    cls = ' class="num"' if numeric else ""
    return f"<th{cls}{title}>{label}</th>"


def table_html(
    frame: pd.DataFrame,
    *,
    max_rows: int | None = 50,
    caption: str | None = None,
    descriptions: dict | None = None,
    digits: int = 4,
) -> str:
    """A DataFrame as an escaped HTML table that scrolls inside its box (index dropped).

    Numbers are right-aligned to ``digits`` significant digits, text left-aligned, and
    missing values shown as an en dash. The header row and the first column stay in
    view while the box scrolls, so wide and long tables never run off the page.

    Parameters
    ----------
    frame : pandas.DataFrame
    max_rows : int, optional
        Show at most this many rows and say how many were left out.
    caption : str, optional
    descriptions : dict of str -> str, optional
        Column name -> what it means, shown when the pointer rests on the header.
    digits : int

    Returns
    -------
    str

    Examples
    --------
    >>> text = table_html(pd.DataFrame({"id": ["a"], "p_value": [float("nan")]}))
    >>> "nan" in text, "probekit-scroll" in text
    (False, True)
    """
    shown = frame if max_rows is None or len(frame) <= max_rows else frame.head(max_rows)
    descriptions = descriptions or {}
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in frame}
    head = "".join(_header(c, numeric[c], descriptions.get(c)) for c in frame.columns)
    rows = "\n".join(
        "<tr>" + "".join(_cell(v, digits) for v in row) + "</tr>" for row in shown.itertuples(index=False, name=None)
    )
    body = (
        f'<div class="probekit-scroll"><table class="probekit-table">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table></div>"
    )
    note = ""
    if len(shown) < len(frame):
        note = f'<p class="probekit-note">{len(frame) - len(shown)} more rows not shown (see the saved tables).</p>'
    cap = f'<p class="probekit-note">{escape(caption)}</p>' if caption else ""
    return cap + body + note


def png_data_uri(fig, *, dpi: int = 100) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - a figure made without pyplot needs no closing
        pass
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(fig, *, alt: str = "figure", dpi: int = 100) -> str:
    """An ``<img>`` tag embedding ``fig`` as a base64 PNG."""
    return f'<img class="probekit-figure" alt="{escape(alt)}" src="{png_data_uri(fig, dpi=dpi)}"/>'


def new_figure(width: float = 10.0, height: float = 2.5, *, nrows: int = 1):
    """A matplotlib Figure and its axes, made without pyplot (no global state, safe off-screen)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=True)
    return fig, axes


def section(title: str, body: str, *, level: int = 2, anchor: str | None = None) -> str:
    """A heading followed by ``body`` (already HTML)."""
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{ident}><h{level}>{escape(title)}</h{level}>\n{body}\n</section>\n"


def note(text: str, *, error: bool = False) -> str:
    """A short paragraph of escaped text."""
    cls = "probekit-error" if error else "probekit-note"
    return f'<p class="{cls}">{escape(text)}</p>'


def params_html(params: dict) -> str:
    """The parameters that produced a report, as a two-column table."""
    plain = (str, int, float, bool, type(None))
    # values as text: one column of numbers, names and lists reads best aligned alike
    rows = [{"parameter": k, "value": fmt_number(v, 4) if isinstance(v, plain) else json.dumps(v)} for k, v in params.items()]
    return table_html(pd.DataFrame(rows, columns=["parameter", "value"]), max_rows=None)


def errors_section(report, *, figures=True, max_inputs=20) -> str:
    """Section listing the records of ``report.summary()`` that have an ``error`` (any report kind)."""
    summary = report.summary()
    if "error" not in summary or summary["error"].isna().all():
        return ""
    bad = summary[summary["error"].notna()][["id", "error"]]
    return section("Records with errors", table_html(bad, max_rows=None))


def parameters_section(report, *, figures=True, max_inputs=20) -> str:
    """Section with the parameters that produced ``report`` (any report kind)."""
    return section("Parameters", params_html(report.params))


def page(title: str, body: str) -> str:
    """A complete HTML document with inline CSS and nothing loaded from elsewhere."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        f"<title>{escape(title)}</title>\n<style>{_PAGE_CSS}{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def fragment(body: str) -> str:
    """HTML for a notebook cell: the page's styles scoped into a div."""
    return f'<div class="probekit-report"><style>{_CSS}</style>{body}</div>'


__all__ = [
    "MISSING", "escape", "is_missing", "fmt_number", "good_rows", "strongest_first", "drop_empty_columns", "table_html", "png_data_uri", "figure_html", "new_figure", "section", "note", "params_html",
    "errors_section", "parameters_section", "page", "fragment",
]  # fmt: skip
