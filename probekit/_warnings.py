"""The one warning class probekit emits, so users can filter it."""

import warnings


class ProbekitWarning(UserWarning):
    """Warning raised by probekit (batch back-off, skipped records, approximations)."""


def warn(message: str, *, stacklevel: int = 3) -> None:
    """Emit ``message`` as a :class:`ProbekitWarning`."""
    warnings.warn(message, ProbekitWarning, stacklevel=stacklevel)
