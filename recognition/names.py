"""Identity names: which are allowed, and why one is not (pure, no I/O).

A name is what the service answers for a face, so it must never be mistaken for
another: ASCII letters, digits, spaces and ``._-`` only (a Cyrillic ``а`` in "Pаul"
would otherwise be a second Paul who looks the same), no control characters, no runs
of spaces, at least one letter or digit, and never ``Unknown`` / ``NoFace`` (the labels
of unmatched faces and faceless photos). Each refusal names the offending character
with its code point, because a look-alike cannot be seen in the message itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from recognition.errors import GalleryError
from recognition.types import NO_FACE, UNKNOWN

MAX_NAME = 64
_ALLOWED = re.compile(r"[A-Za-z0-9 ._-]")
RESERVED = frozenset({UNKNOWN.casefold(), NO_FACE.casefold()})


def validate_name(name: str, *, stored: bool = False) -> str:
    """Return ``name`` if it is a valid identity name, else raise GalleryError.

    ``stored``: a name read back from a gallery, held to the rules it was enrolled
    under (the two newer rules, runs of spaces and a letter or digit, are for new
    names only), so a gallery written before them still loads.
    """
    problem = name_problem(name, stored=stored)
    if problem is not None:
        raise GalleryError(f"invalid identity name {_show(name)}: {problem}")
    return name


def name_problem(name: str, *, stored: bool = False) -> str | None:
    """Why ``name`` is refused, or None when it is a valid identity name."""
    if not name:
        return "it is empty"
    for at, ch in enumerate(name, 1):
        if not _ALLOWED.fullmatch(ch):
            return f"character {at} is {describe_char(ch)}; {_RULE}"
    if len(name) > MAX_NAME:
        return f"it has {len(name)} characters; at most {MAX_NAME}"
    if name != name.strip():
        return "it starts or ends with a space"
    if name.casefold() in RESERVED:
        return (f"{UNKNOWN!r} and {NO_FACE!r} are the labels of unmatched faces and "
                "faceless photos; choose another name")
    if stored:
        return None
    if "  " in name:
        return "it has two spaces in a row (it would look like the same name with one)"
    if not any(ch.isalnum() for ch in name):
        return "it needs at least one letter or digit"
    return None


def lookalike(name: str, existing: Iterable[str]) -> str | None:
    """An enrolled name that ``name`` differs from only in letter case, or None."""
    if name in existing:
        return None
    key = name.casefold()
    return next((other for other in existing if other.casefold() == key), None)


def describe_char(ch: str) -> str:
    """``'а' (U+0430 CYRILLIC SMALL LETTER A)``: visible even for look-alikes."""
    code = f"U+{ord(ch):04X}"
    label = unicodedata.name(ch, "")
    if unicodedata.category(ch).startswith("C"):
        return f"the control or invisible character {code}" + (f" {label}" if label else "")
    kind = " (not ASCII: it can look like an ASCII letter)" if ord(ch) > 127 else ""
    return f"{ch!r} ({code}{' ' + label if label else ''}){kind}"


def _show(name: str) -> str:
    # Bounded and escaped: a 5 KB name or a terminal escape is not echoed as is.
    shown = ascii(name[:MAX_NAME + 8])
    return shown + ("..." if len(name) > MAX_NAME + 8 else "")


_RULE = "use ASCII letters, digits, spaces or ._- (at most 64)"
