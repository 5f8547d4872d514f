"""The web side of `digest serve`: where readers answer the digest (the `web` extra).

- `app`: the Starlette application over an `App` facade: one-click unsubscribe (RFC 8058),
  subscribing with a confirmation by email, votes on papers, preferences, each reader's
  private page and feed, and `GET /healthz` (the `digest status` verdict);
- `pages`: what each page shows, rendered with the project's Jinja environment
  (`templates/web/`, in the site's look), and the reader's private Atom feed;
- `guard`: what every response carries and every request is held to: security headers,
  a strict Content-Security-Policy, a bound on request bodies;
- `server`: uvicorn on one address, in a thread of the service's process.

The web side calls `App` and nothing below it; a `GET` never changes anything (mail
scanners and link previewers fetch every link of a message); every change is a `POST`
whose URL carries a signed token (`digest.tokens`). Nothing here is imported unless the
web side runs, so the core works without the extra installed.
"""

from __future__ import annotations

INSTALL = "pip install 'paper-digest[web]'"


class WebUnavailable(Exception):
    """The web side cannot run: its extra is not installed, or it cannot listen. One line."""
