"""Variant-effect scoring on a reference genome: which SNPs and indels change the model's call, and by how much.

Read variants (:func:`read_variants`, VCF/BCF or tables), open the genome
(:class:`Genome`, indexed or bgzipped FASTA), build REF and ALT windows
(:func:`variant_windows`) and score them (:func:`score_variants`; chunk by chunk
into a Parquet/TSV table, resumable, with :func:`score_variants_to_table`), write
the scores back into the VCF (:func:`write_annotated_vcf`) and report the
strongest (:func:`variant_report`). Reading
needs pysam: ``pip install "probekit[variants]"``; importing this package does
not load it.
"""

from .annotate import write_annotated_vcf
from .genome import Fetched, Genome
from .io import iter_variants, read_variants
from .result import VariantResult
from .report import VariantReport, variant_report
from .score import score_variants
from .stream import score_variants_to_table
from .windows import allele_change, variant_windows

__all__ = [
    "read_variants",
    "iter_variants",
    "Genome",
    "Fetched",
    "variant_windows",
    "allele_change",
    "score_variants",
    "VariantResult",
    "write_annotated_vcf",
    "score_variants_to_table",
    "variant_report",
    "VariantReport",
]
