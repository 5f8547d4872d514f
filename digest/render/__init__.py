"""The renderers: a digest (or feed history) in, bytes, strings or an `EmailMessage` out.

Pure functions: no network I/O, no clock (every timestamp comes from the data), and no
file I/O beyond Jinja's loader reading the templates (and `stamps` reading this package's
own code once, for the stamp that lets a build keep a page that would not change). Writing the results to disk is
`digest.publish`'s job; sending emails is the deliverer's.
"""

from digest.render.email import HTML_LIMIT, email_subject, render_email
from digest.render.feeds import entry_id, render_all_papers_feeds, render_profile_feeds
from digest.render.links import SiteLinks
from digest.render.markdown import markdown_escape, render_markdown
from digest.render.site import render_site

__all__ = [
    "HTML_LIMIT",
    "SiteLinks",
    "email_subject",
    "entry_id",
    "markdown_escape",
    "render_all_papers_feeds",
    "render_email",
    "render_markdown",
    "render_profile_feeds",
    "render_site",
]
