"""``python -m probekit``: the same as the ``probekit`` command."""

from .cli import main

raise SystemExit(main())
