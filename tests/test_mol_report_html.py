"""The HTML page of a molecule report: reading order, shared formatting and sections, column meanings, wording."""

import re

import pandas as pd
import pytest
import torch

from probekit import FeatureModel, outputs
from probekit.encode.mol import Morgan
from probekit.probe.molecules import probe_features
from probekit.report import html
from probekit.report.molecules import EDIT_COLUMNS, FRAME_COLUMNS, SUMMARY_COLUMNS, MoleculeReport

DASH = html.MISSING


def summary_of(rows: list[dict]) -> pd.DataFrame:
    """A summary table with every column, values missing unless given."""
    full = [{c: None for c in SUMMARY_COLUMNS} | {"goal": "decrease:1.0", "top_features": "a, b, c"} | r for r in rows]
    return pd.DataFrame(full, columns=SUMMARY_COLUMNS)


def flips(id, *, reached, p, ratio, proved=False, z=1.0):
    return {"id": id, "smiles": "CCO", "score": 5.0, "n_flips": 2, "flips_success": reached, "flips_proved_minimal": proved,
            "score_after_flips": 4.0, "flip_ratio": ratio, "flip_z": z, "flip_p_value": p}  # fmt: skip


def perturbed(id, *, reached, p, ratio):
    return {"id": id, "smiles": "CCO", "score": 5.0, "perturbation_norm": 1.0, "perturbation_success": reached,
            "score_after_perturbation": 4.0, "perturbation_ratio": ratio, "perturbation_p_value": p}  # fmt: skip


def report_of(rows, *, edits=None, **params) -> MoleculeReport:
    tables = {"frame": pd.DataFrame(columns=FRAME_COLUMNS), "summary": summary_of(rows)}
    if edits is not None:
        tables["edits"] = edits
    return MoleculeReport("features", tables, {"goal": "decrease:1.0", "max_flips": 3, "baseline_draws": 200} | params)


def view_order(text: str) -> list[str]:
    return re.findall(r'<section id="input-([^"]+)"><h3>', text)


def test_molecules_whose_goal_was_reached_are_shown_first():
    rows = [flips("none", reached=False, p=0.001, ratio=50.0), flips("weak", reached=True, p=0.04, ratio=2.0),
            flips("strong", reached=True, p=0.01, ratio=9.0)]  # fmt: skip
    text = report_of(rows, n_binary=8).to_html(figures=False)
    assert view_order(text) == ["strong", "weak", "none"]
    assert "Order: molecules whose goal was reached first, then by increasing bit-flip p-value" in text


def test_without_bit_flips_the_perturbation_orders_the_molecules():
    rows = [perturbed("none", reached=False, p=0.001, ratio=5.0), perturbed("late", reached=True, p=0.2, ratio=1.0),
            perturbed("first", reached=True, p=0.01, ratio=3.0)]  # fmt: skip
    text = report_of(rows, n_continuous=2).to_html(figures=False)
    assert view_order(text) == ["first", "late", "none"]
    assert "increasing perturbation p-value" in text


def test_the_views_shown_are_the_strongest_and_say_so():
    rows = [flips("none", reached=False, p=0.001, ratio=50.0), flips("strong", reached=True, p=0.01, ratio=9.0)]
    text = report_of(rows, n_binary=8).to_html(figures=False, max_inputs=1)
    assert view_order(text) == ["strong"] and "Views of 1 of 2 molecules; order: molecules whose goal" in text


def test_molecule_text_labels_the_smiles_and_prints_missing_values_as_the_shared_dash():
    text = report_of([flips("m", reached=True, p=0.01, ratio=3.0, z=float("nan"))], n_binary=8).to_html(figures=False)
    assert "SMILES CCO; score 5; most important features" in text
    assert f"z = {DASH}, p = 0.01" in text


def test_bit_flips_are_called_minimal_only_when_proved():
    rows = [flips("proved", reached=True, p=0.01, ratio=3.0, proved=True), flips("found", reached=True, p=0.02, ratio=3.0),
            flips("short", reached=False, p=0.03, ratio=3.0)]  # fmt: skip
    text = report_of(rows, n_binary=8).to_html(figures=False)
    views = dict(zip(view_order(text), re.split(r'<section id="input-', text)[1:]))
    assert "Minimal bit flips: none (goal reached, proved minimal; score 5 -&gt; 4)" in views["proved"]
    assert "Bit flips reaching the goal: none (not proved minimal" in views["found"]
    assert "Closest to the goal in at most 3 bit flips (goal not reached)" in views["short"]
    assert "Minimal" not in views["found"] + views["short"]


def test_summary_table_drops_empty_and_constant_columns_and_explains_the_rest():
    rows = [flips("a", reached=True, p=0.01, ratio=3.0), flips("b", reached=False, p=0.2, ratio=1.0)]
    text = report_of(rows, n_binary=8).to_html(figures=False)
    summary = text[text.index("<h2>Summary"):text.index("</section>")]
    headers = re.findall(r"<th[^>]*>(.*?)</th>", summary)
    names = [h.replace("<wbr>", "") for h in headers]
    assert "goal" not in names and "perturbation_norm" not in names and "error" in names  # error kept though empty
    assert "the smallest p-value 200 random draws can give is 0.00498" in summary.lower()
    titled = dict(re.findall(r'<th[^>]*title="([^"]*)"[^>]*>(.*?)</th>', summary))
    described = {name.replace("<wbr>", "") for name in titled.values()}
    assert {"flip_ratio", "flip_z", "flip_p_value", "flips_success", "flips_proved_minimal"} <= described
    mixed = [rows[0], rows[1] | {"goal": "below:4.0"}]  # goals that differ are not stated above: the column stays
    text = report_of(mixed, n_binary=8).to_html(figures=False)
    assert ">goal</th>" in text[text.index("<h2>Summary"):text.index("</section>")]


def test_perturbation_columns_have_their_meaning_on_the_header():
    text = report_of([perturbed("a", reached=True, p=0.01, ratio=3.0)], n_continuous=2).to_html(figures=False)
    titled = {name.replace("<wbr>", "") for name in re.findall(r'<th[^>]*title="[^"]*"[^>]*>(.*?)</th>', text)}
    assert {"perturbation_norm", "perturbation_ratio", "perturbation_p_value", "perturbation_success"} <= titled


def test_an_added_bit_shows_a_dash_for_its_atoms():
    edits = pd.DataFrame([{"id": "m", "step": 1, "edit": "morgan_5: 0->1", "change": "added", "feature": "morgan_5",
                           "index": 5, "old": 0, "new": 1, "atoms": "", "substructure": "CC", "smarts": "[#6]-[#6]",
                           "source": "reference set", "score_after": 4.0}], columns=EDIT_COLUMNS)  # fmt: skip
    text = report_of([flips("m", reached=True, p=0.01, ratio=3.0)], edits=edits, n_binary=8).to_html(figures=False)
    row = next(r for r in text.split("<tr>") if "morgan_5: 0-&gt;1</td>" in r)
    assert '<td class="missing">' in row and "<td></td>" not in row


def test_the_shared_errors_and_parameters_sections_render_the_page():
    from probekit.report.sensitivity import _SECTIONS

    sections = [fn for _, _, fn in _SECTIONS["features"]]
    assert html.errors_section in sections and html.parameters_section in sections
    rows = [flips("a", reached=True, p=0.01, ratio=3.0), {"id": "bad", "error": "record 'bad': SMILES Parse Error"}]
    text = report_of(rows, n_binary=8).to_html(figures=False)
    assert text.count("<h2>Records with errors</h2>") == 1 and text.count("<h2>Parameters</h2>") == 1


@pytest.fixture(scope="module")
def probed():
    adapter = FeatureModel(lambda x: (x @ torch.linspace(-1.0, 1.0, 32))[:, None], featurizer=Morgan(radius=1, n_bits=32),
                           output=outputs.value(0), device="cpu")  # fmt: skip
    return probe_features(adapter, ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O"], goal="decrease:1.5", max_flips=2,
                          baseline_draws=10, seed=1)  # fmt: skip


def test_the_two_drawings_of_a_molecule_are_told_apart(probed):
    atoms = probed.atoms()
    id = atoms.loc[atoms["in_flip"], "id"].iloc[0]
    assert probed.draw(id, legend=f"{id}: atom importance") != probed.draw(id)
    text = probed.to_html(figures=False)
    assert "Left: atoms coloured by importance (red raises the score, blue lowers it); right: the atoms of the bits" in text
