"""Characters refused in identifiers and names (docs/security.md, finding 11).

Control characters (C0 including CR, LF and tab, DEL, C1) let a value forge extra lines in logs, exports and
emails; bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) make a name read
differently from what it is ("Trojan Source"): `lead‮gpj.exe` shows as `leadexe.jpg`. Neither has a place
in a lead's id, a person's, company's, queue's, rule's, source's or account's name.
"""

import re
import unicodedata

_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\x00": "NUL"}
REFUSED_MESSAGE = "Must not contain control characters (line breaks, tabs …) or bidirectional overrides"


def refused_character(value: str) -> str | None:
    """What is wrong with `value`, naming the first refused character and where it is; None when it is fine."""
    found = _REFUSED.search(value)
    if found is None:
        return None
    char = found.group()
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "control character")
    return f"{REFUSED_MESSAGE}: U+{ord(char):04X} ({name}) at position {found.start() + 1}."
