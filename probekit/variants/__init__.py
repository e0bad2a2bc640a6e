"""Variant-effect scoring on a reference genome: which SNPs and indels change the model's call, and by how much.

Read variants (:func:`read_variants`, VCF/BCF or tables), open the genome
(:class:`Genome`, indexed or bgzipped FASTA), build REF and ALT windows
(:func:`variant_windows`) and score them (:func:`score_variants`). Reading
needs pysam: ``pip install "probekit[variants]"``; importing this package does
not load it.
"""

from .annotate import write_annotated_vcf
from .genome import Fetched, Genome
from .io import iter_variants, read_variants
from .result import VariantResult
from .score import score_variants
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
]
