"""Reasons in words: the `reason` macro of `templates/reasons.txt`, called from Python.

Every output words a reason through this one macro (the email, the Markdown digest, the
feeds and the site through `views.paper_view`; `digest rank` directly), so the wording
lives in one template, and a `reasons.txt` in the user's template folder rewords them
all. A digest stored before reasons were data holds LEGACY reasons, shown as stored.

Never decides what a reason says (the ranker does) and never escapes: the words go to the
templates as plain text, which escape them for their format. The macro is called from
Python, never from an HTML template: Jinja would mark the output of a plain-text
template's macro as safe there.
"""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment

from digest.models import Reason
from digest.render.text import clip, one_line

REASONS_TEMPLATE = "reasons.txt"
REASON_LIMIT = 200
REASONS_SHOWN = 5


def word_reason(reason: Reason, env: Environment, *, mine: bool = False) -> str:
    """The reason in the words of the environment's `reasons.txt` (neither cleaned nor clipped).

    `mine`: the votes behind a "more/less like this" reason are the reader's own, so the
    words may say "you marked"; otherwise they are the profile owner's (a feed, a page, or
    the email of a reader who did not vote). A `reasons.txt` whose macro takes no `mine`
    words both alike."""
    macro = env.get_template(REASONS_TEMPLATE).module.reason  # type: ignore[attr-defined]
    return str(macro(reason, mine) if "mine" in macro.arguments else macro(reason))


def shown_reasons(reasons: Sequence[Reason], env: Environment, *, mine: bool = False) -> tuple[str, ...]:
    """The first `REASONS_SHOWN` reasons in words (`word_reason`), each on one line, cleaned
    and at most `REASON_LIMIT` characters; a reason that words to nothing is left out."""
    worded = (clip(one_line(word_reason(r, env, mine=mine)), REASON_LIMIT) for r in reasons[:REASONS_SHOWN])
    return tuple(w for w in worded if w)
