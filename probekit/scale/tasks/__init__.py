"""The tasks :func:`probekit.scale.run` knows, each in its own module, imported when first asked for.

- ``"dna_probe"`` and ``"molecule_probe"`` (:mod:`.probes`): :func:`probekit.probe`
  on each shard of records, merged into one report;
- ``"ism"`` (:mod:`.ism`): saturation mutagenesis, one ISMResult in input order;
- ``"variants"`` (:mod:`.variants`): variant scoring into one table;
- ``"molecule_screen"`` (:mod:`.screening`): a molecule library scored into one table;
- ``"attributions"`` (:mod:`.attributions`): captum attributions, one Attribution in input order.

Examples
--------
>>> sorted(TASKS)
['attributions', 'dna_probe', 'ism', 'molecule_probe', 'molecule_screen', 'variants']
>>> TASKS["ism"].shard_size
64
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .common import Task

# task name -> the module (in this package) whose TASKS holds it
_MODULES = {
    "dna_probe": "probes",
    "molecule_probe": "molecules",
    "ism": "ism",
    "variants": "variants",
    "molecule_screen": "screening",
    "attributions": "attributions",
}


class _Registry(Mapping):
    """Task name -> :class:`Task`, importing a task's module on first use."""

    def __getitem__(self, name: str) -> Task:
        if name not in _MODULES:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{_MODULES[name]}").TASKS[name]

    def __iter__(self):
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


TASKS = _Registry()

__all__ = ["TASKS", "Task"]
