"""The web side's HTTP application (Starlette): every route, what it asks `App`, what it answers.

| route | GET (never changes anything) | POST |
|---|---|---|
| `/` | what this is, links to the site and the subscribe page | |
| `/healthz` | `digest status`'s verdict as JSON, without paths or profiles: 200 healthy, 503 not | |
| `/subscribe` | the profiles open to subscribers, a form | send the confirmation email |
| `/c/TOKEN` | the confirmation page, one button | subscribe |
| `/u/TOKEN` | the unsubscribe page, one button | unsubscribe at once (RFC 8058: 200, no redirect) |
| `/v/TOKEN` | the paper and the vote, one button | record the vote (again: harmless) |
| `/v/TOKEN/undo` | the undo page, one button | take the vote back |
| `/p/TOKEN` | the reader's preferences | pause, resume, save, unsubscribe |
| `/r/TOKEN`, `/r/TOKEN/feed.atom` | the reader's private page and feed | |

A token that is malformed, forged, made for another action, profile, reader or paper, or
names what no longer exists gets the same plain 404 page (`Pages.not_found`); an expired
confirmation gets a 410 page saying so. The application never redirects (no address it
builds comes from a request), never reads the `Host` header (absolute links come from
`[web] base_url`), and answers unknown paths with the 404 page.

Handlers are `async`. The few indexed reads that check a link and show its page (a token,
its reader's row, a pending confirmation, an unsubscribe, a vote) run on the event loop
itself with an `App` of their own (`look`): they cost less than the hop to a thread
(bench/RESULTS.md, "Web side"), and in WAL mode a read never waits for a writer. Anything
larger (a reader's page, preferences, `/healthz`, a subscription) runs in Starlette's
thread pool, each thread with its own `App` (`App.fresh`); writes go to the group commit
(`writer`), one thread with its own connection (SQLite's busy timeout lets the scheduler
and the web side wait for each other instead of failing).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.models import Cadence, Digest
from digest.readers import Confirmation, Link, Requested, is_owner
from digest.render.links import (
    CONFIRM_PATH,
    PREFERENCES_PATH,
    READER_FEED,
    READER_PATH,
    SUBSCRIBE_PATH,
    UNSUBSCRIBE_PATH,
    VOTE_PATH,
    ReaderLinks,
    WebLinks,
)
from digest.render.templates import template_environment
from digest.tokens import Action
from digest.web.guard import Guard, security_headers, style_hashes
from digest.web.pages import PageLink, Pages
from digest.web.writer import GroupWriter

log = logging.getLogger(__name__)

T = TypeVar("T")
FORM_FIELDS = 8
FORM_FIELD_BYTES = 1024
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # the body RFC 8058 prescribes
VOTES = (Action.MORE, Action.LESS, Action.MUTE)


class WebSide:
    """The routes of the module docstring over one `App` (its config, clock and environment)."""

    def __init__(self, root: App) -> None:
        self.root = root
        web = root.web_links()
        if web is None:
            raise ValueError("the web side needs [web] base_url")
        self.web: WebLinks = web
        self.local = threading.local()
        self.opened: list[App] = []
        self.lock = threading.Lock()
        self.loop_app: App | None = None  # the event loop's own (`look`)
        self.loop_app_opening = asyncio.Lock()
        self.writer = GroupWriter(root)
        config = root.config
        self.pages = Pages(
            template_environment(config.templates),
            site_title=config.title,
            site_url=config.site_url,
            subscribe_url=web.subscribe,
        )

    # -- plumbing ----------------------------------------------------------------------------

    def app(self) -> App:
        """This thread's `App` (its own database connection)."""
        mine: App | None = getattr(self.local, "app", None)
        if mine is None:
            mine = self.local.app = self.root.fresh()
            with self.lock:
                self.opened.append(mine)
        return mine

    def close(self) -> None:
        """Stop the writer and close every thread's database connection (the server has stopped)."""
        self.writer.close()
        with self.lock:
            for app in self.opened:
                app.close()
            self.opened.clear()

    async def call(self, work: Callable[[App], T]) -> T:
        """`work(app)` in the thread pool, with that thread's `App` (reads)."""
        return await run_in_threadpool(lambda: work(self.app()))

    async def look(self, work: Callable[[App], T]) -> T:
        """`work(app)` on the event loop, with the loop's own `App`: only for a link's few
        indexed reads (see the module docstring). Its connection is opened in the thread pool
        (opening may wait on another process setting the database up)."""
        if self.loop_app is None:
            async with self.loop_app_opening:
                if self.loop_app is None:
                    self.loop_app = await run_in_threadpool(self._open_loop_app)
        return work(self.loop_app)

    def _open_loop_app(self) -> App:
        app = self.root.fresh()
        app.store  # noqa: B018 -- opens the connection here, in a worker thread
        with self.lock:
            self.opened.append(app)
        return app

    async def write(self, work: Callable[[App], T]) -> T:
        """`work(app)` in the next group commit (`writer`); returns once it is on disk."""
        return await asyncio.wrap_future(self.writer.submit(work))

    def html(self, page: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return HTMLResponse(page, status_code=status, headers=headers)

    def not_found(self) -> HTMLResponse:
        return self.html(self.pages.not_found(), 404)

    async def form(self, request: Request) -> FormData | None:
        """The request's form fields (urlencoded or multipart, no files), or None when it is not one."""
        try:
            form = await request.form(max_files=0, max_fields=FORM_FIELDS, max_part_size=FORM_FIELD_BYTES)
        except (HTTPException, MultiPartException, ValueError, KeyError, AssertionError):
            return None  # Starlette answers a form over its limits with HTTPException(400)
        if any(not isinstance(value, str) or len(value) > FORM_FIELD_BYTES for value in form.values()):
            return None
        return form

    def bad_request(self, why: str) -> HTMLResponse:
        return self.html(self.pages.message("Not understood", why), 400)

    # -- pages ---------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return self.html(self.pages.index(self.root.open_profiles()))

    async def health(self, request: Request) -> Response:
        health = await self.call(lambda app: app.status())
        return JSONResponse(health.to_public_json(), status_code=200 if health.healthy else 503)

    async def subscribe_page(self, request: Request) -> Response:
        return self.html(self.pages.subscribe(self.root.open_profiles(), action=self.web.subscribe))

    async def subscribe(self, request: Request) -> Response:
        form = await self.form(request)
        if form is None:
            return self.bad_request("The form was not sent whole.")
        address, profile_id = str(form.get("address", "")), str(form.get("profile", ""))
        client = request.client.host if request.client else "unknown"
        asked = await self.call(lambda app: app.ask_subscription(profile_id, address, client=client))
        outcome = asked.outcome
        profiles = self.root.open_profiles()
        if outcome == Requested.INVALID:
            page = self.pages.subscribe(
                profiles, action=self.web.subscribe, error="That is not an email address.", chosen=profile_id
            )
            return self.html(page, 400)
        if outcome == Requested.CLOSED:
            page = self.pages.subscribe(profiles, action=self.web.subscribe, error="Choose one of these digests.")
            return self.html(page, 400)
        if outcome == Requested.BUSY:
            page = self.pages.message("Too many requests", "Too many subscriptions were asked for: try again later.")
            return self.html(page, 429, {"Retry-After": "3600"})
        lines = (
            f"If {address.strip()} can get this digest, an email with a link to confirm is on its way.",
            "Follow the link and press its button: nothing is sent to you before that.",
        )
        answer = self.html(self.pages.message("Check your inbox", *lines))
        pending = asked.confirmation
        if pending is not None:
            # Sent once the answer is out, in the thread pool: an answer that waited on SMTP
            # told a new address (tens of milliseconds) from a subscribed one (nothing to send).
            answer.background = BackgroundTask(lambda: self.app().send_confirmation(pending))
        return answer

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]

        def look(app: App) -> tuple[Link, Confirmation | None] | None:
            link = app.follow_link(token, Action.CONFIRM)
            return (link, app.confirmation_by_its_row(link)) if link else None

        found = await self.look(look)
        if found is None:
            return self.not_found()
        link, quick = found
        state = quick if quick is not None else await self.call(lambda app: app.confirmation(link))
        if state == Confirmation.WAITING:
            return self.html(self.pages.confirm(link.profile, link.address))
        return self.confirmed(link, state)

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]

        def confirm(app: App) -> tuple[Link, Confirmation] | None:
            link = app.follow_link(token, Action.CONFIRM)
            return (link, app.confirm(link)) if link else None

        found = await self.write(confirm)
        return self.not_found() if found is None else self.confirmed(*found)

    def confirmed(self, link: Link, state: Confirmation) -> Response:
        if state == Confirmation.EXPIRED:
            lines = ("This confirmation link has expired.", "Ask again on the subscribe page: a new link is sent.")
            page = self.pages.message("Expired", *lines, links=[PageLink(self.web.subscribe, "Subscribe")])
            return self.html(page, 410)
        if state not in (Confirmation.SUBSCRIBED, Confirmation.ALREADY):
            return self.not_found()
        preferences = self.web.preferences(link.profile.id, link.reader_id)
        heading = "Subscribed" if state == Confirmation.SUBSCRIBED else "Already subscribed"
        line = f"{link.address} gets “{link.profile.title}” from the next digest on."
        return self.html(self.pages.message(heading, line, links=[PageLink(preferences, "Your preferences")]))

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]

        def look(app: App) -> tuple[Link, bool] | None:
            link = app.follow_link(token, Action.UNSUBSCRIBE)
            return (link, app.is_unsubscribed(link)) if link else None

        found = await self.look(look)
        return self.not_found() if found is None else self.unsubscribe_answer(*found)

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await self.form(request)
        if form is None or form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
            found = await self.look(lambda app: app.follow_link(token, Action.UNSUBSCRIBE))
            if found is None:
                return self.not_found()
            return self.bad_request("An unsubscribe is a POST of List-Unsubscribe=One-Click (RFC 8058).")

        def unsubscribe(app: App) -> Link | None:
            link = app.follow_link(token, Action.UNSUBSCRIBE)
            if link is not None:
                app.unsubscribe_link(link)
            return link

        link = await self.write(unsubscribe)
        return self.not_found() if link is None else self.unsubscribe_answer(link, True)

    def unsubscribe_answer(self, link: Link, stopped: bool) -> Response:
        preferences = self.web.preferences(link.profile.id, link.reader_id)
        return self.html(
            self.pages.unsubscribe(link.profile, link.address, unsubscribed=stopped, preferences_url=preferences)
        )

    async def vote_page(self, request: Request) -> Response:
        return await self.vote_step(request, lambda app, link: "recorded" if app.vote_recorded(link) else "ask")

    async def undo_page(self, request: Request) -> Response:
        return await self.vote_step(request, lambda app, link: "ask-undo" if app.vote_recorded(link) else "undone")

    async def vote(self, request: Request) -> Response:
        return await self.vote_step(request, _record_vote, write=True)

    async def undo(self, request: Request) -> Response:
        return await self.vote_step(request, _undo_vote, write=True)

    async def vote_step(self, request: Request, step: Callable[[App, Link], str], *, write: bool = False) -> Response:
        """Follow a vote link and take `step` (reading, or with `write` in the next group commit);
        the page for the stage it returns ('ask', 'recorded', 'ask-undo', 'undone')."""
        token = request.path_params["token"]

        def work(app: App) -> tuple[Link, str] | None:
            link = app.follow_link(token, *VOTES)
            return (link, step(app, link)) if link else None

        try:
            found = await (self.write(work) if write else self.look(work))
        except ValueError:  # a mute of a paper of no organisation: no such link is ever made
            return self.not_found()
        if found is None:
            return self.not_found()
        link, stage = found
        assert link.paper is not None and link.vote is not None
        links = self.web.reader(link.profile.id, link.reader_id)
        url = self.web.vote(link.token.action, link.profile.id, link.reader_id, link.paper.id)
        return self.html(self.pages.vote(link.profile, link.paper, link.vote, links, vote_url=url, stage=stage))

    async def preferences_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        link = await self.look(lambda app: app.follow_link(token, Action.PREFERENCES))
        if link is None:
            return self.not_found()
        return await self.preferences_answer(link)

    async def preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = await self.form(request)
        link = await self.look(lambda app: app.follow_link(token, Action.PREFERENCES))
        if link is None:
            return self.not_found()
        if form is None:
            return self.bad_request("The form was not sent whole.")
        action = form.get("action")
        try:
            if action == "pause":
                weeks = _whole(form.get("weeks"))
                until = await self.write(lambda app: app.pause(link, weeks))
                notice = f"Paused: no email until {until:%a %d %b %Y}." if until else "Not paused."
            elif action == "resume":
                await self.write(lambda app: app.pause(link, 0))
                notice = "Resumed: you get the next digest."
            elif action == "save":
                max_items = _whole(form.get("max_items")) if form.get("max_items") else None
                cadence = Cadence(str(form.get("cadence", Cadence.DAILY)))
                await self.write(lambda app: app.choose(link, max_items=max_items, cadence=cadence))
                notice = "Saved: it applies from the next digest."
            elif action in ("unsubscribe", "unsubscribe-all"):
                everything = action == "unsubscribe-all"
                await self.write(lambda app: app.unsubscribe_link(link, everything=everything))
                notice = "Unsubscribed from every digest." if everything else "Unsubscribed from this digest."
            else:
                return self.bad_request("Unknown action.")
        except ValueError as exc:
            return await self.preferences_answer(link, error=str(exc), status=400)
        return await self.preferences_answer(link, notice=notice)

    async def preferences_answer(self, link: Link, *, notice: str = "", error: str = "", status: int = 200) -> Response:
        def gather(app: App) -> tuple[Any, ...]:
            records = app.reader_vote_records(link)
            papers = {p.id: p for p in app.papers_named([r.paper_id for r in records])}
            return app.reader_preferences(link), app.is_unsubscribed(link), records, papers

        chosen, stopped, records, papers = await self.call(gather)
        links = self.web.reader(link.profile.id, link.reader_id)
        actions = {"more": Action.MORE, "less": Action.LESS, "mute": Action.MUTE}
        votes = self.pages.vote_views(
            records,
            papers,
            lambda r: self.web.vote(actions[r.kind], link.profile.id, link.reader_id, r.paper_id),
        )
        page = self.pages.preferences(
            link.profile, link.address, chosen, links, votes, unsubscribed=stopped, notice=notice, error=error
        )
        return self.html(page, status)

    async def reader_page(self, request: Request) -> Response:
        found = await self.reader_digests(request)
        if found is None:
            return self.not_found()
        link, digests, links = found
        return self.html(self.pages.reader(link.profile, digests, links, owner=is_owner(link.profile, link.address)))

    async def reader_feed(self, request: Request) -> Response:
        found = await self.reader_digests(request)
        if found is None:
            return self.not_found()
        link, digests, links = found
        body = self.pages.reader_feed(link.profile, digests, links, owner=is_owner(link.profile, link.address))
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    async def reader_digests(self, request: Request) -> tuple[Link, list[Digest], ReaderLinks] | None:
        token = request.path_params["token"]

        def look(app: App) -> tuple[Link, list[Digest]] | None:
            link = app.follow_link(token, Action.READER)
            return (link, app.reader_digests(link)) if link else None

        found = await self.call(look)
        if found is None:
            return None
        link, digests = found
        papers = tuple(item.paper for d in digests for item in d.items)
        return link, digests, self.web.reader(link.profile.id, link.reader_id, papers)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            log.error("%s %s failed", request.method, request.url.path.split("/")[1], exc_info=exc)
            return self.html(self.pages.message("Something went wrong", "Try again in a little while."), 500)
        if exc.status_code == 405:
            return self.html(self.pages.message("Not allowed", "This address does not take that request."), 405)
        if exc.status_code == 400:
            return self.bad_request("The request was not understood.")
        return self.not_found()


def create_app(root: App) -> Guard:
    """The web side over `root`'s config, clock and environment (each thread opens its own
    `App` from it), wrapped in its `Guard`. `ConfigError` when `[web] base_url` is set but
    no key signs its links; `ValueError` when `[web] base_url` is not set."""
    side = WebSide(root)
    token = "{token:str}"
    routes = [
        Route("/", side.index, methods=["GET"]),
        Route("/healthz", side.health, methods=["GET"]),
        Route("/" + SUBSCRIBE_PATH, side.subscribe_page, methods=["GET"]),
        Route("/" + SUBSCRIBE_PATH, side.subscribe, methods=["POST"]),
        Route("/" + CONFIRM_PATH + token, side.confirm_page, methods=["GET"]),
        Route("/" + CONFIRM_PATH + token, side.confirm, methods=["POST"]),
        Route("/" + UNSUBSCRIBE_PATH + token, side.unsubscribe_page, methods=["GET"]),
        Route("/" + UNSUBSCRIBE_PATH + token, side.unsubscribe, methods=["POST"]),
        Route("/" + VOTE_PATH + token, side.vote_page, methods=["GET"]),
        Route("/" + VOTE_PATH + token, side.vote, methods=["POST"]),
        Route("/" + VOTE_PATH + token + "/undo", side.undo_page, methods=["GET"]),
        Route("/" + VOTE_PATH + token + "/undo", side.undo, methods=["POST"]),
        Route("/" + PREFERENCES_PATH + token, side.preferences_page, methods=["GET"]),
        Route("/" + PREFERENCES_PATH + token, side.preferences, methods=["POST"]),
        Route("/" + READER_PATH + token, side.reader_page, methods=["GET"]),
        Route("/" + READER_PATH + token + READER_FEED, side.reader_feed, methods=["GET"]),
    ]
    application = Starlette(
        routes=routes, exception_handlers={HTTPException: side.http_error, Exception: side.http_error}
    )
    application.router.redirect_slashes = False  # a redirect would be built from the request's Host
    styles = style_hashes(side.pages.not_found())
    return Guard(application, security_headers(styles), on_close=side.close)


def _record_vote(app: App, link: Link) -> str:
    app.vote(link)  # a second press changes nothing, and shows the same page
    return "recorded"


def _undo_vote(app: App, link: Link) -> str:
    app.undo_vote(link)
    return "undone"


def _whole(value: object) -> int:
    text = str(value or "").strip()
    if not text.isdigit() or len(text) > 4:
        raise ValueError("expected a whole number")
    return int(text)
