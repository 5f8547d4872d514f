"""What of a profile's description the reader wants: the parts that say what they do not want set aside.

Readers describe themselves in sentences, and say what they skip as often as what they
read ("I am not interested in text-to-image generation", "Generation is out of scope").
As words, such a part asks for the very papers it turns away. The description is cut
into sentences and clauses (at `.`, `!`, `?`, `;` and a dash between spaces), and a part
that says the reader does not want something is left out of the words the ranker reads.

Pure: text in, text out. It never turns a part into an exclusion (`exclude` says that), and
it never touches keywords.
"""

from __future__ import annotations

import re

# Where a description's parts end: a sentence's end, a semicolon, a dash between spaces.
_PARTS = re.compile(r"(?<=[.!?;])\s+|\s+[—–-]{1,2}\s+")
# A part in which the reader says they do not want something (English, as readers write).
_NOT_WANTED = re.compile(
    r"""(?ix)
    \bnot\s+(?:really\s+|very\s+|particularly\s+)?(?:interested|my\s+(?:area|focus|field|problem|job|thing)
        |what\s+(?:i|we)|for\s+(?:me|us)|relevant)\b
    | \b(?:is|are)n[’']t\s+(?:my|our|what\s+(?:i|we)|for\s+(?:me|us)|relevant|interesting)\b
    | \b(?:don[’']t|do\s+not|doesn[’']t|does\s+not)\s+(?:care|want|need|follow)\b
    | \b(?:less|un)\s*interested\b | \bno\s+interest\b
    | \bout\s+of\s+scope\b
    | \bskip(?:s|ping)?\b(?!\s*-?\s*(?:connections?|grams?|layers?|lists?)\b)
    | \b(?:a\s+)?different\s+(?:field|team|topic|area|community)\b
    | ^\s*(?:but\s+)?not\b(?!\s+(?:only|just|merely)\b)
    """
)


def wanted_text(description: str) -> str:
    """`description` without the parts that say what the reader does not want (see the
    module docstring); the rest as written, in order."""
    parts = [part for part in _PARTS.split(description) if part.strip()]
    return " ".join(part for part in parts if not _NOT_WANTED.search(part))
