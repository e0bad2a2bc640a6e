"""The variant demo: a small seeded genome with the DNA demo's planted motifs, a VCF of calls, and the demo model.

:func:`write_variants_demo` writes, from a seed alone (nothing is downloaded or
shipped):

* ``genome.fa.gz``: a bgzipped FASTA with its ``.fai`` and ``.gzi`` indexes and
  three contigs of uniform random bases, ``chr1`` (2,400 bp), ``chr2``
  (1,600 bp) and a short ``chrM`` (180 bp, shorter than the model's window),
  with sites of the three motifs the demo model was trained on (FOS::JUN
  MA0099, CTCF MA0139, GATA1 MA0035, read from ``data/dna_demo_motifs.json``)
  planted at known positions, on both strands, at least 300 bp apart so that
  no 200 bp window holds two of them (each site is its matrix's consensus,
  except one CTCF site whose four least conserved columns take their second
  base);
* ``calls.vcf.gz``: a bgzipped, tabix-indexed VCF whose records are of three
  roles. *Motif losses* destroy a planted site (SNVs at its most conserved
  column to its least likely base, an MNV, a deletion, a multi-allelic record,
  one on ``chrM`` whose window runs off the contig's end); *neutral* ones change
  background bases (SNVs, a multi-allelic record, an MNV, an insertion, a
  deletion, one near the contig start, one on contig ``2`` read as ``chr2`` and
  one on ``MT`` read as ``chrM`` through ``chrom_aliases``); *bad* records are
  one of each kind that cannot be scored: REF not matching the genome, an
  unknown chromosome, REF running past the contig's end, a symbolic ``<DEL>``,
  a breakend, a missing ALT, a non-nucleotide base and a line with too few
  columns;
* ``truth.tsv``: one row per ALT (as :func:`~probekit.variants.read_variants`
  gives them) with its ``role``, the ``motif`` it destroys and the ``case``.

:func:`run_variants_demo` scores every call with the bundled demo model
(``DemoCNN``, 200 bp windows, output ``margin[1]``: the "motif" logit minus the
other) with the motif gain/loss columns of the three planted matrices
(:func:`demo_motifs`), and :func:`demo_summary` says how the motif losses rank.

Examples
--------
>>> import tempfile
>>> files = write_variants_demo(tempfile.mkdtemp())
>>> files.truth.groupby("role").size().to_dict()
{'bad': 8, 'motif loss': 9, 'neutral': 11}
>>> sorted(p.name for p in files.genome.parent.iterdir())
['calls.vcf.gz', 'calls.vcf.gz.tbi', 'genome.fa.gz', 'genome.fa.gz.fai', 'genome.fa.gz.gzi', 'truth.tsv']
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._warnings import warn
from ..datasets import _probabilities, load_demo_motifs, load_dna_demo, reverse_complement
from .io import pysam_module, read_variants

#: Window length of the demo model: the length it was trained on.
DEMO_LENGTH = 200
#: Contig lengths of the demo genome.
DEMO_CONTIGS = {"chr1": 2400, "chr2": 1600, "chrM": 180}
#: Names the demo's genome resolves through ``chrom_aliases`` (the ``chr`` prefix rule needs none).
DEMO_ALIASES = {"MT": "chrM"}
#: p-value at or below which a motif match counts as a site in the demo: GATA1's 7 columns cannot reach 1e-5.
DEMO_MOTIF_P = 1e-4
# (name, contig, 0-based start, strand, weakened) of each planted site: the consensus, with its ``weakened``
# least conserved columns at their second most likely base (a strong site that is not the consensus).
_SITES = (
    ("FOS::JUN", "chr1", 300, "+", 0), ("CTCF", "chr1", 900, "+", 4), ("GATA1", "chr1", 1500, "-", 0),
    ("CTCF", "chr1", 2000, "-", 0), ("FOS::JUN", "chr2", 400, "-", 0), ("GATA1", "chr2", 1000, "+", 0),
    ("GATA1", "chrM", 120, "+", 0),
)  # fmt: skip
TRUTH_COLUMNS = ["id", "chrom", "pos", "ref", "alt", "record", "role", "motif", "case"]
_NEXT = str.maketrans("ACGT", "CGTA")


class DemoFiles(NamedTuple):
    """The inputs :func:`write_variants_demo` wrote.

    Attributes
    ----------
    genome : Path
        Bgzipped FASTA (indexed).
    vcf : Path
        Bgzipped VCF (tabix-indexed).
    truth : pandas.DataFrame
        One row per ALT: the reader's ``id``, ``chrom``, ``pos``, ``ref``, ``alt``
        and ``record``, and ``role`` (``"motif loss"``, ``"neutral"`` or ``"bad"``),
        ``motif`` (the planted factor a motif loss destroys, else ``""``) and ``case``.
    sites : pandas.DataFrame
        The planted sites: ``motif``, ``matrix_id``, ``chrom``, ``start``, ``end``
        (0-based, end exclusive), ``strand``, ``site`` (forward-strand bases).
    """

    genome: Path
    vcf: Path
    truth: pd.DataFrame
    sites: pd.DataFrame


class DemoRun(NamedTuple):
    """What :func:`run_variants_demo` scored and wrote.

    Attributes
    ----------
    result : VariantResult
    frame : pandas.DataFrame
        ``result.to_frame()`` with the truth's ``role`` and ``motif`` (as ``planted``)
        and ``abs_rank``: the rank of ``|delta|`` among scored rows (1 = largest).
    files : DemoFiles
    written : dict of str to Path
        ``table`` (TSV), ``vcf`` (annotated, bgzipped) and ``report`` (HTML, unless
        ``report=False``).
    seconds : float
        Time spent scoring (the report not included).
    """

    result: object
    frame: pd.DataFrame
    files: DemoFiles
    written: dict
    seconds: float


# ------------------------------------------------------------------- genome
def _consensus(motif: dict, weakened: int = 0) -> tuple[str, np.ndarray]:
    """The most likely base of each column (the second most likely in the ``weakened`` least conserved
    columns), and the column probabilities (length, 4)."""
    probs = _probabilities(motif)
    order = np.argsort(-probs, axis=1, kind="stable")
    choice = order[:, 0].copy()
    weakest = np.argsort(probs.max(axis=1), kind="stable")[:weakened]
    choice[weakest] = order[weakest, 1]
    return "".join("ACGT"[i] for i in choice), probs


def demo_genome(*, seed: int = 0, motifs: dict | None = None) -> tuple[dict, pd.DataFrame]:
    """The demo contigs (uniform random bases, seeded) with the planted consensus sites.

    Parameters
    ----------
    seed : int
        Seed of the NumPy generator drawing the background.
    motifs : dict, optional
        Matrix id -> motif, as :func:`probekit.datasets.load_demo_motifs` returns (the default).

    Returns
    -------
    contigs : dict of str to str
        Name -> sequence, in :data:`DEMO_CONTIGS` order.
    sites : pandas.DataFrame
        See :class:`DemoFiles`.

    Examples
    --------
    >>> contigs, sites = demo_genome()
    >>> {name: len(s) for name, s in contigs.items()}
    {'chr1': 2400, 'chr2': 1600, 'chrM': 180}
    >>> row = sites.iloc[1]
    >>> row["motif"], contigs[row["chrom"]][row["start"]:row["end"]] == row["site"]
    ('CTCF', True)
    """
    motifs = motifs if motifs is not None else load_demo_motifs()
    by_name = {m["name"]: (matrix_id, m) for matrix_id, m in motifs.items()}
    rng = np.random.default_rng(seed)
    contigs = {name: "".join(np.array(list("ACGT"))[rng.integers(0, 4, size=size)]) for name, size in DEMO_CONTIGS.items()}
    rows = []
    for name, chrom, start, strand, weakened in _SITES:
        matrix_id, motif = by_name[name]
        site, _ = _consensus(motif, weakened)
        site = site if strand == "+" else reverse_complement(site)
        contigs[chrom] = contigs[chrom][:start] + site + contigs[chrom][start + len(site) :]
        rows.append({"motif": name, "matrix_id": matrix_id, "chrom": chrom, "start": start, "end": start + len(site),
                     "strand": strand, "site": site})  # fmt: skip
    return contigs, pd.DataFrame(rows)


def demo_motifs() -> list:
    """The three matrices planted in the demo, as :class:`probekit.motifs.Motif` (no pyjaspar needed).

    Examples
    --------
    >>> [(m.name, m.matrix_id, m.length) for m in demo_motifs()]
    [('FOS::JUN', 'MA0099.4', 9), ('CTCF', 'MA0139.2', 15), ('GATA1', 'MA0035.5', 7)]
    """
    from ..motifs import Motif

    return [Motif(m["name"], matrix_id, np.array([m["pfm"][b] for b in "ACGT"], dtype=np.float64))
            for matrix_id, m in load_demo_motifs().items()]  # fmt: skip


def _key_column(motif: dict, strand: str) -> tuple[int, str]:
    """Offset in the forward-strand site of the motif's most conserved column, and its least likely base there."""
    _, probs = _consensus(motif)
    column = int(np.argmax(probs.max(axis=1)))
    worst = "ACGT"[int(np.argmin(probs[column]))]
    if strand == "-":
        return len(probs) - 1 - column, reverse_complement(worst)
    return column, worst


def _records(contigs: dict, sites: pd.DataFrame, motifs: dict) -> list[dict]:
    """The demo's VCF records, in file order: chrom, pos, id, ref, alt, role, motif, case."""
    out = []

    def add(chrom, pos, vid, ref, alt, role, case, motif=""):
        out.append({"chrom": chrom, "pos": pos, "id": vid, "ref": ref, "alt": alt, "role": role, "motif": motif, "case": case})

    def base(chrom, pos, n=1):
        return contigs[chrom][pos - 1 : pos - 1 + n]

    def loss(i, vid, kind):
        site = sites.iloc[i]
        column, worst = _key_column(motifs[site["matrix_id"]], site["strand"])
        pos = int(site["start"]) + column + 1
        if kind == "SNV":
            add(site["chrom"], pos, vid, base(site["chrom"], pos), worst, "motif loss", "SNV at the most conserved column", site["motif"])
        elif kind == "multi":
            ref = base(site["chrom"], pos)
            alts = ",".join(b for b in "ACGT" if b != ref)
            add(site["chrom"], pos, vid, ref, alts, "motif loss", "every other base at the most conserved column", site["motif"])
        elif kind == "MNV":
            ref = base(site["chrom"], pos - 1, 2)
            add(site["chrom"], pos - 1, vid, ref, ref.translate(_NEXT), "motif loss", "MNV of two bases in the site", site["motif"])
        else:  # a deletion of three site bases, anchored on the base before them
            add(site["chrom"], pos - 2, vid, base(site["chrom"], pos - 2, 4), base(site["chrom"], pos - 2), "motif loss",
                "deletion of three site bases", site["motif"])  # fmt: skip

    def neutral(chrom, pos, vid, case, kind="SNV", name=None):
        ref = base(chrom, pos)
        alt = {"SNV": ref.translate(_NEXT), "multi": ",".join(b for b in "ACGT" if b != ref)}.get(kind)
        if kind == "MNV":
            ref = base(chrom, pos, 3)
            alt = ref.translate(_NEXT)
        elif kind == "insertion":
            alt = ref + "TTAG"
        elif kind == "deletion":
            ref, alt = base(chrom, pos, 4), ref
        add(name or chrom, pos, vid, ref, alt, "neutral", case)

    neutral("chr1", 40, "bg_start", "SNV whose window runs off the contig start (N padding)")
    neutral("chr1", 150, "bg_multi", "multi-allelic SNV in background", "multi")
    loss(0, "fosjun_1", "SNV")
    neutral("chr1", 600, "bg_snv_1", "SNV in background")
    loss(1, "ctcf_1", "SNV")
    neutral("chr1", 1200, "bg_del", "deletion in background", "deletion")
    loss(2, "gata1_del", "deletion")
    neutral("chr1", 1700, "bg_ins", "insertion in background", "insertion")
    loss(3, "ctcf_2_mnv", "MNV")
    wrong = base("chr1", 2100).translate(_NEXT)
    add("chr1", 2100, "bad_ref", wrong, wrong.translate(_NEXT), "bad", "REF does not match the genome")
    add("chr1", 2200, "bad_symbolic", base("chr1", 2200), "<DEL>", "bad", "symbolic ALT")
    add("chr1", 2250, "bad_breakend", base("chr1", 2250), base("chr1", 2250) + "]chr2:100]", "bad", "breakend ALT")
    add("chr1", 2300, "bad_missing", base("chr1", 2300), ".", "bad", "missing ALT")
    add("chr1", 2350, "bad_base", base("chr1", 2350), "AXG", "bad", "non-nucleotide base")
    add("chr1", 2380, None, None, None, "bad", "malformed line (too few columns)")
    add("chr1", 2398, "bad_past_end", base("chr1", 2398, 3) + "AC", base("chr1", 2398), "bad", "REF runs past the contig end")
    loss(4, "fosjun_2", "SNV")
    neutral("chr2", 700, "bg_mnv", "MNV in background", "MNV")
    loss(5, "gata1_multi", "multi")
    neutral("chr2", 1300, "bg_snv_2", "SNV in background")
    neutral("chr2", 1450, "bg_no_chr", "SNV on contig '2', read as chr2", name="2")
    loss(6, "gata1_chrM", "SNV")
    neutral("chrM", 30, "bg_mt", "SNV on contig 'MT', read as chrM through chrom_aliases", name="MT")
    add("chr9", 100, "bad_chrom", "A", "G", "bad", "unknown chromosome")
    return out


def _vcf_text(records: list[dict]) -> str:
    lines = ["##fileformat=VCFv4.2", "##source=probekit variant demo"]
    lines += [f"##contig=<ID={name},length={size}>" for name, size in DEMO_CONTIGS.items()]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    for r in records:
        if r["ref"] is None:
            lines.append(f"{r['chrom']}\t{r['pos']}\tbad_line")
        else:
            lines.append(f"{r['chrom']}\t{r['pos']}\t{r['id']}\t{r['ref']}\t{r['alt']}\t.\tPASS\t.")
    return "\n".join(lines) + "\n"


def _write_bgzipped_fasta(contigs: dict, path: Path) -> None:
    pysam = pysam_module()
    plain = path.with_suffix("")
    with open(plain, "w") as handle:
        for name, sequence in contigs.items():
            handle.write(f">{name}\n" + "".join(sequence[i : i + 60] + "\n" for i in range(0, len(sequence), 60)))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.faidx(str(path))


def write_variants_demo(folder, *, seed: int = 0) -> DemoFiles:
    """Write the demo genome, VCF and truth table into ``folder`` (created if needed); see the module notes.

    Parameters
    ----------
    folder : str or Path
    seed : int
        Seed of the genome's background bases; the same seed writes the same files.

    Returns
    -------
    DemoFiles

    Examples
    --------
    >>> import tempfile
    >>> files = write_variants_demo(tempfile.mkdtemp())
    >>> files.truth.loc[files.truth["role"] == "motif loss", "motif"].value_counts().to_dict()
    {'GATA1': 5, 'FOS::JUN': 2, 'CTCF': 2}
    """
    pysam = pysam_module()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    motifs = load_demo_motifs()
    contigs, sites = demo_genome(seed=seed, motifs=motifs)
    genome = folder / "genome.fa.gz"
    _write_bgzipped_fasta(contigs, genome)
    records = _records(contigs, sites, motifs)
    plain = folder / "calls.vcf"
    plain.write_text(_vcf_text(records))
    vcf = Path(pysam.tabix_index(str(plain), preset="vcf", force=True))
    truth = read_variants(vcf).drop(columns=["error"])
    for key in ("role", "motif", "case"):
        truth[key] = [records[i][key] for i in truth["record"]]
    truth = truth[TRUTH_COLUMNS]
    truth.to_csv(folder / "truth.tsv", sep="\t", index=False)
    return DemoFiles(genome, vcf, truth, sites)


# ------------------------------------------------------------------ scoring
def demo_adapter(*, device=None, batch_size=128, output=None):
    """The bundled DNA demo model as a :class:`~probekit.SequenceModel`.

    Parameters
    ----------
    device : str, optional
        Default: CUDA when available, else the CPU.
    batch_size : int or "auto"
        Windows per forward pass.
    output : Output, int or callable, optional
        What to score; default ``outputs.margin(1)``, the "motif" logit minus the other.

    Examples
    --------
    >>> demo_adapter(device="cpu").output.name
    'margin[1]'
    """
    from ..adapters import SequenceModel
    from ..outputs import margin

    model, _ = load_dna_demo()
    return SequenceModel(model, output=margin(1) if output is None else output, device=device, batch_size=batch_size)


def rank_by_effect(frame: pd.DataFrame) -> pd.Series:
    """Rank of each scored row's ``|delta|`` (1 = largest; ties share the best rank); NaN for error rows.

    Examples
    --------
    >>> frame = pd.DataFrame({"delta": [-3.0, 0.5, float("nan"), 3.0], "error": [None, None, "bad", None]})
    >>> rank_by_effect(frame).tolist()
    [1.0, 3.0, nan, 1.0]
    """
    effect = frame["delta"].abs().where(frame["error"].isna())
    return effect.rank(ascending=False, method="min")


def run_variants_demo(
    folder,
    *,
    adapter=None,
    context: bool = True,
    n_draws: int = 100,
    seed: int = 0,
    motifs=None,
    motif_p: float = DEMO_MOTIF_P,
    report: bool = True,
    progress: bool = False,
) -> DemoRun:
    """Write the demo inputs into ``folder``, score every call and write the table, annotated VCF and report.

    Parameters
    ----------
    folder : str or Path
        Output folder: the inputs of :func:`write_variants_demo`, ``variants_demo.tsv``,
        ``variants_demo.vcf.gz`` (with its tabix index) and ``variants_demo_report.html``.
    adapter : SequenceModel, optional
        Default :func:`demo_adapter` (the bundled model, ``margin:1``).
    context : bool
        Rank each change within its window (see :func:`~probekit.variants.score_variants`).
    n_draws, seed : int
        Random substitutions for the context of MNVs and indels, and their seed.
    motifs : list of Motif, bool or None
        Matrices for the motif gain/loss columns: None for the three planted ones
        (:func:`demo_motifs`), True for JASPAR CORE vertebrates, False for no columns.
    motif_p : float
        p-value at or below which a match counts as a site (default 1e-4).
    report : bool
        Also write the HTML report of the ten strongest variants (their windows' ISM, the
        variant marked) and of delta along the genome; without matplotlib a
        ``ProbekitWarning`` says it is skipped.
    progress : bool
        Progress bars.

    Returns
    -------
    DemoRun

    Examples
    --------
    >>> import tempfile
    >>> run = run_variants_demo(tempfile.mkdtemp(), context=False, report=False)
    >>> sorted(run.frame.loc[run.frame["role"] == "motif loss", "abs_rank"].astype(int))
    [1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    from .annotate import write_annotated_vcf
    from .genome import Genome
    from .score import score_variants

    folder = Path(folder)
    files = write_variants_demo(folder)
    adapter = adapter if adapter is not None else demo_adapter()
    started = time.perf_counter()
    with Genome(files.genome, chrom_aliases=DEMO_ALIASES) as genome:
        result = score_variants(adapter, files.vcf, genome, length=DEMO_LENGTH, context=context, n_draws=n_draws, seed=seed,
                                motifs=demo_motifs() if motifs is None else motifs, motif_p=motif_p,
                                progress=progress)  # fmt: skip
        seconds = time.perf_counter() - started
        html = None
        if report:
            try:
                html = _write_report(adapter, result, genome, folder / "variants_demo_report.html")
            except ImportError as error:  # matplotlib, an optional dependency, draws the report's figures
                warn(f"the HTML report is skipped: {error}")
    frame = result.to_frame()
    truth = files.truth.drop_duplicates("record").set_index("record")
    frame["role"] = truth["role"].reindex(frame["record"]).to_numpy()
    frame["planted"] = truth["motif"].reindex(frame["record"]).to_numpy()
    frame["abs_rank"] = rank_by_effect(frame)
    written = {"table": folder / "variants_demo.tsv", "vcf": folder / "variants_demo.vcf.gz"}
    frame.to_csv(written["table"], sep="\t", index=False)
    write_annotated_vcf(result, files.vcf, written["vcf"])
    if html is not None:
        written["report"] = html
    return DemoRun(result, frame, files, written, seconds)


def _write_report(adapter, result, genome, path: Path, *, top: int = 10) -> Path:
    """The HTML report of the ``top`` strongest variants (their windows' ISM) and of delta along the genome."""
    from .report import variant_report

    frame = result.to_frame()
    on_genome = frame["genome_chrom"].where(frame["genome_chrom"].notna(), frame["chrom"])  # '2' and 'MT' drawn as chr2, chrM
    positions = frame[["pos", "delta", "error"]].assign(chrom=on_genome)[["chrom", "pos", "delta", "error"]]
    variant_report(adapter, result, genome, length=DEMO_LENGTH, top=top, positions=positions).to_html(path)
    return path


# ------------------------------------------------------------------ summary
def _motif_text(row) -> str:
    """How a row's motif columns read (``CTCF MA0139.2 site lost (-12.2 bits)``); the planted factor without them."""
    change = row.get("motif_change")
    if isinstance(change, str) and change:
        bits = row.get("motif_delta")
        shift = f" ({bits:+.1f} bits)" if _finite(bits) else ""
        parts = []
        if "loss" in change:
            parts.append(f"{row.get('motif_ref')} site lost{shift}")
        if "gain" in change:
            parts.append(f"{row.get('motif_alt')} site gained")
        return ", ".join(parts)
    planted = row.get("planted")
    if isinstance(planted, str) and planted and "motif_change" not in row:
        return f"destroys the planted {planted} site"
    return ""


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.floating)) and np.isfinite(value)


def demo_summary(frame: pd.DataFrame, *, top: int = 10) -> list[str]:
    """Lines that say how the demo went: the top variants by ``|delta|``, where the motif losses rank, the errors.

    Motif gains and losses are read from the ``motif_change``, ``motif_ref`` and
    ``motif_alt`` columns when the table has them (and a line says how many of the
    variants that destroy a planted site they call a loss of that factor), from
    the planted sites otherwise. Notes (N padding, chromosome names read another
    way) and error rows follow.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``DemoRun.frame``.
    top : int
        Variants listed.

    Returns
    -------
    list of str

    Examples
    --------
    >>> frame = pd.DataFrame({"id": ["a", "b", "c"], "kind": ["SNV", "SNV", None], "delta": [-8.0, 0.1, float("nan")],
    ...                       "p_value": [0.002, 0.6, float("nan")], "error": [None, None, "chr9:1 A>G: not found"],
    ...                       "role": ["motif loss", "neutral", "bad"], "planted": ["CTCF", "", ""], "abs_rank": [1.0, 2.0, None],
    ...                       "record": [0, 1, 2], "note": [None, "3 N added before the start of chr1", None]})
    >>> print("\\n".join(demo_summary(frame)))
    top 2 of 2 scored variants by |delta|:
       1. a  SNV  delta -8  p 0.002  destroys the planted CTCF site
       2. b  SNV  delta +0.1  p 0.6
    motif losses rank 1 by |delta| (all 1 in the top 1)
    1 scored variant with a note:
      b: 3 N added before the start of chr1
    1 record not scored, each an error row naming it:
      chr9:1 A>G: not found
    """
    scored = frame[frame["error"].isna()].sort_values("abs_rank", kind="stable")
    lines = [f"top {min(top, len(scored))} of {len(scored)} scored variants by |delta|:"]
    for n, row in enumerate(scored.head(top).to_dict("records"), start=1):
        p = row.get("p_value")
        p_text = f"  p {p:.2g}" if _finite(p) else ""
        motif = _motif_text(row)
        lines.append(f"  {n:>2}. {row['id']}  {row['kind']}  delta {row['delta']:+.3g}{p_text}" + (f"  {motif}" if motif else ""))
    losses = scored[scored["role"] == "motif loss"]
    if len(losses):
        ranks = ", ".join(str(int(r)) for r in sorted(losses["abs_rank"]))
        at_top = int((losses["abs_rank"] <= len(losses)).sum())
        share = f"all {at_top}" if at_top == len(losses) else f"{at_top} of {len(losses)}"
        lines.append(f"motif losses rank {ranks} by |delta| ({share} in the top {len(losses)})")
        if "motif_change" in scored:
            lines.append(_naming_line(scored, losses))
    notes = scored.loc[scored["note"].notna()].sort_values("record", kind="stable") if "note" in scored else scored.iloc[:0]
    if len(notes):
        lines.append(f"{len(notes)} scored variant{'s' if len(notes) != 1 else ''} with a note:")
        lines += [f"  {vid}: {note}" for vid, note in zip(notes["id"], notes["note"])]
    errors = frame.loc[frame["error"].notna(), "error"].tolist()
    if errors:
        lines.append(f"{len(errors)} record{'s' if len(errors) != 1 else ''} not scored, each an error row naming it:")
        lines += [f"  {e}" for e in errors]
    return lines


def _naming_line(scored: pd.DataFrame, losses: pd.DataFrame) -> str:
    """How many planted-site variants the motif columns call a loss of the planted factor, and what else they call.

    Examples
    --------
    >>> scored = pd.DataFrame({"motif_change": ["loss", "", "gain"], "motif_ref": ["CTCF MA0139.2", "GATA1 MA0035.5", "x"],
    ...                        "planted": ["CTCF", "GATA1", ""], "role": ["motif loss", "motif loss", "neutral"]})
    >>> _naming_line(scored, scored.iloc[:2])
    'the motif columns call 1 of 2 a loss of the planted factor; 1 other variant has a motif change'
    """
    change = losses["motif_change"].fillna("")
    factor = np.array([str(r).split(" ")[0] == p for r, p in zip(losses["motif_ref"], losses["planted"])], dtype=bool)
    named = change.str.contains("loss").to_numpy() & factor
    others = int((scored["motif_change"].fillna("") != "").sum() - (change != "").sum())
    return (f"the motif columns call {int(named.sum())} of {len(losses)} a loss of the planted factor; "
            f"{others} other variant{' has' if others == 1 else 's have'} a motif change")  # fmt: skip


__all__ = [
    "write_variants_demo",
    "run_variants_demo",
    "demo_genome",
    "demo_adapter",
    "demo_summary",
    "rank_by_effect",
    "DemoFiles",
    "DemoRun",
    "DEMO_LENGTH",
    "DEMO_CONTIGS",
    "DEMO_ALIASES",
    "DEMO_MOTIF_P",
    "demo_motifs",
]
