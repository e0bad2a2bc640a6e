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
table.probekit-table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
table.probekit-table th, table.probekit-table td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
table.probekit-table th { background: #eef2f6; }
table.probekit-table td:first-child { text-align: left; }
.probekit-note { color: #666; font-size: .9em; }
.probekit-error { color: #a00; }
img.probekit-figure { max-width: 100%; display: block; margin: .4em 0; }
"""


def escape(text) -> str:
    """HTML-escape any value."""
    return _html.escape(str(text), quote=True)


def _format_float(x) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.4g}"


def table_html(frame: pd.DataFrame, *, max_rows: int | None = 50, caption: str | None = None) -> str:
    """A DataFrame as an escaped HTML table (index dropped, floats to 4 significant digits).

    Parameters
    ----------
    frame : pandas.DataFrame
    max_rows : int, optional
        Show at most this many rows and say how many were left out.
    caption : str, optional
    """
    shown = frame if max_rows is None or len(frame) <= max_rows else frame.head(max_rows)
    body = shown.to_html(index=False, escape=True, na_rep="", classes="probekit-table", border=0, float_format=_format_float)
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
    rows = [{"parameter": k, "value": v if isinstance(v, plain) else json.dumps(v)} for k, v in params.items()]
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
    "escape", "table_html", "png_data_uri", "figure_html", "new_figure", "section", "note", "params_html",
    "errors_section", "parameters_section", "page", "fragment",
]  # fmt: skip
