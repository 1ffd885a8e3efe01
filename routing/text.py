"""Characters refused in identifiers and names (docs/security.md, finding 11).

Control characters (C0 including CR, LF and tab, DEL, C1) and line or paragraph separators let a value forge
extra lines in logs, exports and emails; bidirectional embeddings, overrides, isolates and marks make a name
read differently from what it is ("Trojan Source"): `lead‮gpj.exe` shows as `leadexe.jpg`; invisible
characters (zero-width space, word joiner, byte order mark, tags …) make a twin that looks the same as another
id or name. None has a place in a lead's id, a person's, company's, queue's, rule's, source's or account's
name.
"""

import re
import unicodedata

_REFUSED = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    "\u202a-\u202e\u2066-\u2069"  # bidirectional embeddings, overrides, isolates
    "\u200e\u200f\u061c"  # bidirectional marks (LRM, RLM, ALM)
    "\u2028\u2029"  # line and paragraph separators
    # Invisible: soft hyphen, combining grapheme joiner, Hangul fillers, Mongolian vowel separator, zero-width
    # space, word joiner and invisible operators, byte order mark, interlinear annotations, tags.
    "\u00ad\u034f\u115f\u1160\u3164\uffa0\u180e\u200b\u2060-\u2064\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
    # Zero-width (non-)joiners belong inside Persian, Indic and emoji text; beside Latin text or at an end
    # they only make an invisible twin of another name.
    "|(?:^|(?<=[\x00-\x7f]))[\u200c\u200d]|[\u200c\u200d](?=[\x00-\x7f]|$)"
)
_CONTROL_NAMES = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\x00": "NUL"}
REFUSED_MESSAGE = (
    "Must not contain control characters (line breaks, tabs …), invisible characters or bidirectional overrides"
)


def refused_character(value: str) -> str | None:
    """What is wrong with `value`, naming the first refused character and where it is; None when it is fine."""
    found = _REFUSED.search(value)
    if found is None:
        return None
    char = found.group()
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "control character")
    return f"{REFUSED_MESSAGE}: U+{ord(char):04X} ({name}) at position {found.start() + 1}."


# CSV downloads: a cell that starts like a formula gets a leading apostrophe, so a spreadsheet shows it as text
# (a plain decimal number, negative ones included, is left as the number it is).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading apostrophe."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
