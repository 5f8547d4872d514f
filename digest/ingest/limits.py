"""The plausible range of every number a source gives, and the longest text it may give.

Both parsers check their input against these at the edge (README, "digest ingest"): an
entry with a number outside its range is reported and skipped, and a title or abstract
longer than its cap is reported and kept, shortened. So nothing absurd reaches the store
(SQLite integers stop at 2**63 - 1) or the outputs (a 50 MB abstract would be a 50 MB
feed). The bounds are far beyond any real paper: the most upvoted papers have a few
thousand upvotes, real abstracts are under 3,000 characters and titles under 300.

Pure constants; nothing here reads input or looks at the clock.
"""

from __future__ import annotations

MAX_UPVOTES = 10_000_000
MAX_COMMENTS = 10_000_000
MIN_AUTHORS = 1
MAX_AUTHORS = 100_000
# The earliest year a date may carry: on an entry (an old paper listed today) or a listing.
EARLIEST_YEAR = 1900
TITLE_CAP = 1_000
ABSTRACT_CAP = 20_000
# Hugging Face's machine-written summary (one or two sentences) and keywords (a handful).
AI_SUMMARY_CAP = 5_000
AI_KEYWORDS_CAP = 100  # keywords kept per paper
AI_KEYWORD_CAP = 200  # characters per keyword


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (trailing spaces of the cut dropped)."""
    return text if len(text) <= limit else text[:limit].rstrip()
