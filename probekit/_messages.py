r"""Messages for people: errors as one line, without terminal escape codes or an interpreter's traceback.

Examples
--------
>>> one_line("cannot load:\n\tsize mismatch for w")
'cannot load:; size mismatch for w'
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
MAX_LINES = 4
_TORCHSCRIPT = "The following operation failed in the TorchScript interpreter."
# Long enough for probekit's own messages with a deep path in them; a model's runaway message is still cut.
MAX_LINE_CHARS = 800


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, bold, cursor moves).

    Examples
    --------
    >>> strip_ansi("do this \\x1b[1monly if you trust it\\x1b[0m.")
    'do this only if you trust it.'
    """
    return _ANSI.sub("", text)


def one_line(message) -> str:
    r"""An error message as one line: escape codes stripped, its first lines joined by ``"; "``.

    A TorchScript model's error keeps only the exception its code raised, without
    the interpreter's traceback.

    Examples
    --------
    >>> one_line("cannot load:\n\tsize mismatch for w\n\n\x1b[1mbold\x1b[0m")
    'cannot load:; size mismatch for w; bold'
    >>> one_line("\n".join(f"line {i}" for i in range(7)))
    'line 0; line 1; line 2; line 3; (3 more lines)'
    >>> one_line("the model raised Error: " + _TORCHSCRIPT + "\n  File ...\nbuiltins.ValueError: bad token")
    'the model raised ValueError: bad token'
    """
    text = _without_torchscript_traceback(strip_ansi(str(message)))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    more = len(lines) - MAX_LINES
    lines = [line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..." for line in lines[:MAX_LINES]]
    if more > 0:
        lines.append(f"({more} more line{'s' if more != 1 else ''})")
    return "; ".join(lines)


def _without_torchscript_traceback(text: str) -> str:
    """``text`` with a TorchScript interpreter traceback replaced by the exception it ends with."""
    head, found, rest = text.partition(_TORCHSCRIPT)
    last = [line.strip() for line in rest.splitlines() if line.strip()][-1:] if found else []
    if not last:
        return text
    head = re.sub(r"[\w.]*(Error|Exception):\s*$", "", head)  # the interpreter's wrapper, named again below
    return head + last[0].removeprefix("builtins.")


__all__ = ["one_line", "strip_ansi"]
