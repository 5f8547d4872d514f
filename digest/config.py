"""Load `digest.toml`: defaults merged with the file, checked once, at start.

Every setting has a default that works with no file at all. Relative paths are
resolved against the folder of the config file (or the working folder when there is
none). Problems are collected and raised together as `ConfigError`, each one
`FILE:LINE: key: what is wrong`. Nothing else in the program reads raw settings.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.cron import DEFAULT_GRACE
from digest.files import display_path
from digest.models import Problem, Profile
from digest.profiles import email_address, parse_profiles, timezone
from digest.validate import (
    Field,
    Invalid,
    TomlLines,
    Where,
    attributes,
    boolean,
    fields_of,
    integer,
    number,
    one_of,
    read_table,
    string,
)

CONFIG_NAME = "digest.toml"

_PATH_KEYS = ("inbox", "db", "quarantine", "feeds", "site", "digests", "outbox")


# Paths that hold the files the program writes stay this far under PATH_MAX (4096 bytes):
# the deepest name made inside one, `digests/<id>/.<date>.html.<8 random>.tmp`, is shorter.
MAX_PATH_BYTES = 3584
MAX_NAME_BYTES = 255  # one file or folder name, on every common file system
_DB_SUFFIX = "-journal"  # SQLite's longest companion file: `<db>-journal` (also -wal, -shm)

# The characters RFC 3986 allows in a URL, `%` only as `%XX`. The single quote, a
# sub-delimiter there, is left out too: these addresses go into mail headers and HTML.
_URL_TEXT = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=]|%[0-9A-Fa-f]{2})*")


def _absolute_url(value: Any, expected: str) -> str:
    """An absolute http(s) URL in plain URL characters; `expected` says what one looks like."""
    text = string(allow_empty=False)(value).strip()
    plain = _URL_TEXT.match(text)
    bad = plain.end() if plain else 0
    if bad < len(text):
        what = "'%' not followed by two hex digits" if text[bad] == "%" else f"{text[bad]!r}"
        raise Invalid(f"{text!r} has {what} at character {bad + 1}, which a URL cannot have (percent-encode it)")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError unless the port is a number from 0 to 65535)
    except ValueError as exc:
        raise Invalid(f"{text!r} is not a URL: {exc}") from None
    if "[" in parts.path or "]" in parts.path:  # brackets only go around an IPv6 host
        raise Invalid(f"{text!r} has '[' or ']' in its path, which a URL cannot have (percent-encode it)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{text!r} is not {expected}")
    return text


def site_url(value: Any) -> str:
    """The public address of the published site: absolute http(s), always ending in '/'."""
    text = _absolute_url(value, "an http(s) address like 'https://USER.github.io/REPO/'")
    if "?" in text or "#" in text:
        raise Invalid(f"{text!r}: the site address takes no '?query' or '#fragment'")
    return text if text.endswith("/") else text + "/"


def mail_sender(value: Any) -> str:
    """'Name <address>' or a bare address, on one line, checked; returned in canonical form."""
    text = string(allow_empty=False)(value)
    if any(c in text for c in "\r\n"):
        raise Invalid("must be on one line")
    name, address = parseaddr(text)
    if not address or "@" not in address:
        raise Invalid(f"{text!r} is not an address like 'Paper Digest <digest@example.org>'")
    local, _, domain = email_address(address).rpartition("@")
    return str(Address(display_name=name, username=local, domain=domain))


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The `[digest]` table as written (paths relative to the config file's folder); every
    default of it is here. `Config` holds the same settings resolved."""

    inbox: str = "seeds"
    db: str = ".digest/state.db"
    quarantine: str = ".digest/quarantine"
    feeds: str = "feeds"
    site: str = "site"
    digests: str = "digests"
    outbox: str = "outbox"
    timezone: str = "UTC"
    title: str = "Paper Digest"
    feed_size: int = 100
    site_url: str = "https://example.org/paper-digest/"
    sender: str = "Paper Digest <digest@example.org>"
    templates: str = ""
    stale_after_days: int = 3
    semantic: bool = False
    catch_up_hours: int = DEFAULT_GRACE // timedelta(hours=1)
    retention_days: int = 400
    # Added by issue 18 (scale): how the daily job's ranking and rendering are shared out.
    workers: int = 0  # worker processes; 0: one per CPU; 1: everything in this process
    shard_size: int = 25  # profiles per piece of work handed to a worker
    scheduler: str = ""  # a Dask scheduler ("tcp://HOST:8786"): the cluster works instead of local processes


_FOLDER = string(allow_empty=False)
DIGEST_FIELDS: dict[str, Field] = fields_of(
    DigestSettings,
    {
        **dict.fromkeys(_PATH_KEYS, _FOLDER),
        "timezone": timezone,
        "title": string(allow_empty=False),
        "feed_size": integer(minimum=1, maximum=10_000),
        "site_url": site_url,
        "sender": mail_sender,
        "templates": string(),
        "stale_after_days": integer(minimum=0, maximum=3650),
        "semantic": boolean,
        "catch_up_hours": integer(minimum=1, maximum=168),
        # At least a month: well past the week an email is retried and a missed tick caught up.
        "retention_days": integer(minimum=30, maximum=36_500),
        "workers": integer(minimum=0, maximum=1024),
        "shard_size": integer(minimum=1, maximum=100_000),
        "scheduler": lambda value: scheduler_address(value, allow_empty=True),
    },
)


_SCHEDULER = re.compile(r"(tcp|tls)://[^\s/]+:[0-9]{1,5}")


def scheduler_address(value: Any, *, allow_empty: bool = False) -> str:
    """A Dask scheduler's address, `tcp://HOST:PORT` or `tls://HOST:PORT` (empty: none)."""
    text = string()(value).strip()
    if not text and allow_empty:
        return ""
    if not _SCHEDULER.fullmatch(text):
        raise Invalid(f"{text!r} is not a Dask scheduler address like 'tcp://HOST:8786'")
    return text


def http_url(value: Any) -> str:
    """An http(s) URL with a host, without a trailing slash."""
    text = _absolute_url(value, "an http(s) URL like 'https://huggingface.co'")
    if "?" in text or "#" in text:
        raise Invalid(f"{text!r}: a base URL takes no query or fragment")
    return text.rstrip("/")


_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")


def _dns_name(value: Any, expected: str) -> str:
    text = string(allow_empty=False)(value).strip()
    if len(text) > 253 or not _DNS_NAME.fullmatch(text):
        raise Invalid(f"{text!r} is not {expected}")
    return text


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The `[web]` table: the web side of `digest serve` (`digest.web`).

    `listen` is where it accepts connections (`"127.0.0.1:8080"`; None: no web side unless
    `digest serve --http` asks for one); `base_url` the public https address readers reach
    it at (None: the emails link to the static site only, as without a web side).
    """

    listen: str | None = None
    base_url: str | None = None


def listen_address(value: Any) -> str:
    """`HOST:PORT` (`[::1]:8080` for IPv6), the port from 1 to 65535."""
    text = string(allow_empty=False)(value).strip()
    host, port = split_listen(text)
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise Invalid(f"{text!r} is not an address to listen on, like '127.0.0.1:8080'")
    return text


def split_listen(text: str) -> tuple[str, str]:
    """`HOST:PORT` as (host, port), the brackets of an IPv6 host removed."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def web_base_url(value: Any) -> str:
    """The web side's public address: https (plain http only on this machine, for tests), ending in '/'."""
    text = _absolute_url(value, "an https address like 'https://digest.example.org/'")
    if "?" in text or "#" in text:
        raise Invalid(f"{text!r}: the web address takes no '?query' or '#fragment'")
    parts = urlsplit(text)
    if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
        raise Invalid(f"{text!r} must be https: its links carry signed tokens (plain http only for this machine)")
    return text if text.endswith("/") else text + "/"


WEB_FIELDS: dict[str, Field] = fields_of(WebSettings, {"listen": listen_address, "base_url": web_base_url})


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """The `[source]` table: the live Daily Papers API (see `digest.fetch`).

    `enabled` makes `digest serve` fetch on its schedule (`digest fetch` always fetches).
    Times are in seconds: `timeout` per network wait (connecting, each read), `deadline`
    per request from sending it to the last byte of its answer, `pace` between two
    requests, `backoff` the first wait before a retry (doubling up to `backoff_max`),
    `max_retry_after` the longest `Retry-After` honoured (a server asking for longer makes
    that day fail instead). `max_pages` bounds the pages of one listing (a day longer
    than that fails, keeping what came); `max_response_mb` bounds one answer once
    decompressed (MB of 1,000,000 bytes).
    """

    enabled: bool = False
    base_url: str = "https://huggingface.co"
    timeout: float = 30.0
    pace: float = 1.0
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    max_pages: int = 20
    max_response_mb: float = 5.0
    deadline: float = 60.0


SOURCE_FIELDS: dict[str, Field] = fields_of(
    SourceConfig,
    {
        "enabled": boolean,
        "base_url": http_url,
        "timeout": number(minimum=0.1, maximum=600),
        "pace": number(minimum=0, maximum=3600),
        "attempts": integer(minimum=1, maximum=20),
        "backoff": number(minimum=0, maximum=600),
        "backoff_max": number(minimum=0, maximum=3600),
        "max_retry_after": number(minimum=0, maximum=86_400),
        "max_pages": integer(minimum=1, maximum=1000),
        "max_response_mb": number(minimum=0.001, maximum=1024),
        "deadline": number(minimum=0.1, maximum=3600),
    },
)


PASSWORD_VARIABLE = "DIGEST_SMTP_PASSWORD"
DKIM_KEY_VARIABLE = "DIGEST_DKIM_KEY"
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


_TOP_LEVEL = ("digest", "profiles", "source", "smtp", "web")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists everything found wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The `[smtp]` table: where digests are sent. Without it they go to the outbox.

    `sender` is the envelope sender (MAIL FROM) and the From the renderer should use;
    None means the From of each message. `password` comes only from the environment
    (`DIGEST_SMTP_PASSWORD`). Times are seconds: `timeout` for connecting and for each
    reply, `backoff` the first wait before a retry (doubling up to `backoff_max`).
    """

    host: str
    port: int
    security: str = "starttls"
    username: str | None = None
    sender: str | None = None
    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 2.0
    backoff_max: float = 60.0
    max_connection_failures: int = 5
    connections: int = 1  # SMTP connections sending at once (issue 18), each message still through the ledger
    password: str | None = field(default=None, repr=False)
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key: str | None = field(default=None, repr=False)  # the private key (PEM), from DIGEST_DKIM_KEY

    @property
    def signs(self) -> bool:
        """Whether outgoing mail is DKIM-signed (`dkim_selector` and `dkim_domain` set)."""
        return bool(self.dkim_selector and self.dkim_domain)


SMTP_FIELDS: dict[str, Field] = fields_of(
    SmtpSettings,
    {
        "host": string(allow_empty=False),
        "port": integer(minimum=1, maximum=65535),
        "security": one_of(*SECURITY_PORTS),
        "username": string(allow_empty=False),
        "sender": mail_sender,
        "timeout": number(minimum=1, maximum=600),
        "attempts": integer(minimum=1, maximum=20),
        "backoff": number(minimum=0, maximum=600),
        "backoff_max": number(minimum=0, maximum=3600),
        "max_connection_failures": integer(minimum=1, maximum=100),
        "dkim_selector": lambda value: _dns_name(value, "a DKIM selector like 'mail' or '2026a'"),
        "dkim_domain": lambda value: _dns_name(value, "a domain like 'example.org'"),
        "connections": integer(minimum=1, maximum=64),
    },
    keys={"sender": "from"},
    defaults={"port": None},  # then the usual port of `security`
)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration: the `[digest]` settings (`DigestSettings`, paths
    made absolute), the profiles, `[source]` and `[smtp]`. Built only by `parse_config`."""

    path: Path | None
    inbox: Path
    db: Path
    quarantine: Path
    feeds: Path
    site: Path
    digests: Path
    outbox: Path
    timezone: str
    title: str
    feed_size: int
    stale_after_days: int
    semantic: bool
    profiles: tuple[Profile, ...]
    catch_up_hours: int
    retention_days: int
    site_url: str
    sender: str
    templates: Path | None
    source: SourceConfig
    smtp: SmtpSettings | None
    web: WebSettings = field(default_factory=WebSettings)
    workers: int = 1  # resolved: 0 in the file becomes the number of CPUs
    shard_size: int = 25
    scheduler: str = ""


def find_config(explicit: Path | None, cwd: Path) -> Path | None:
    """The config file to use: the one given, else `digest.toml` in `cwd` if present."""
    if explicit is not None:
        return explicit
    candidate = cwd / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(
    path: Path | None, cwd: Path, *, db: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and check the config at `path` (None: defaults only); `db` overrides `[digest] db`.

    Secrets come from `environ` (default: the process environment), never from the file.
    """
    raw: dict[str, Any] = {}
    text = ""
    source = display_path(path, cwd) if path else CONFIG_NAME
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([Problem(source, 0, "config file not found")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem(source, 0, f"cannot read config file: {exc}")]) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([Problem(source, _toml_error_line(exc), f"not valid TOML: {exc}")]) from None
    base = (path.parent if path else cwd).resolve()
    return parse_config(raw, text, source, base=base, path=path, db=db, environ=environ)


# Settings a deployment may give in the environment instead of the file (e.g. repository
# secrets in the publish workflow); an empty value counts as unset.
ENVIRONMENT_SETTINGS: dict[str, tuple[str, str]] = {
    "DIGEST_SITE_URL": ("digest", "site_url"),
    "DIGEST_SMTP_HOST": ("smtp", "host"),
    "DIGEST_SMTP_PORT": ("smtp", "port"),
    "DIGEST_SMTP_SECURITY": ("smtp", "security"),
    "DIGEST_SMTP_USERNAME": ("smtp", "username"),
    "DIGEST_SMTP_FROM": ("smtp", "from"),
}


def _with_environment(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[Problem]
) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """`raw` with the settings given in the environment put over the file's, and the
    variable each of those settings came from."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    used: dict[tuple[str, str], str] = {}
    fields = {"digest": DIGEST_FIELDS, "smtp": SMTP_FIELDS}
    for variable, (table, key) in ENVIRONMENT_SETTINGS.items():
        value: Any = environ.get(variable, "").strip()
        if not value:
            continue
        if key == "port" and value.isdigit():
            value = int(value)
        try:
            fields[table][key].check(value)
        except Invalid as exc:
            problems.append(Problem(variable, 0, f"{table}.{key}: {exc}"))
            continue
        target = merged.setdefault(table, {})
        if isinstance(target, dict):
            target[key] = value
            used[table, key] = variable
    return merged, used


def parse_config(
    raw: dict[str, Any],
    text: str,
    source: str,
    *,
    base: Path,
    path: Path | None = None,
    db: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Check an already-parsed config; raise `ConfigError` listing every problem."""
    lines = TomlLines(text)
    problems: list[Problem] = []
    environ = os.environ if environ is None else environ
    raw, from_environment = _with_environment(raw, environ, problems)
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.append(Where(source, lines, (key,), "").problem(None, f"unknown table or key {key!r}"))
    where = Where(source, lines, ("digest",), "digest")
    settings = read_table(raw.get("digest", {}), DIGEST_FIELDS, where, problems)
    profiles, profile_problems = parse_profiles(raw.get("profiles"), source, lines, settings.get("timezone", "UTC"))
    problems.extend(profile_problems)
    live = read_table(raw.get("source", {}), SOURCE_FIELDS, Where(source, lines, ("source",), "source"), problems)
    live = attributes(live, SOURCE_FIELDS)
    paths = _folders(settings, base, where, problems)
    templates = _templates(settings, base, where, problems)
    smtp = None
    if "smtp" in raw:
        smtp_where = Where(source, lines, ("smtp",), "smtp")
        smtp = _parse_smtp(raw["smtp"], smtp_where, problems, environ, from_environment)
    web_where = Where(source, lines, ("web",), "web")
    web = read_table(raw.get("web", {}), WEB_FIELDS, web_where, problems)
    if web.get("listen") and not web.get("base_url") and "base_url" not in raw.get("web", {}):
        problems.append(web_where.problem("listen", "needs base_url too: the address readers reach the web side at"))
    if db is not None:
        paths["db"] = db.resolve()
        too_long = _too_long(paths["db"], _DB_SUFFIX)
        if too_long:
            problems.append(Problem("--db", 0, too_long))
    problems.extend(_overlaps(paths, where, db_given=db is not None))
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        timezone=settings["timezone"],
        title=settings["title"],
        feed_size=settings["feed_size"],
        stale_after_days=settings["stale_after_days"],
        semantic=settings["semantic"],
        catch_up_hours=settings["catch_up_hours"],
        retention_days=settings["retention_days"],
        profiles=tuple(profiles),
        source=SourceConfig(**live),
        site_url=settings["site_url"],
        sender=settings["sender"],
        templates=templates,
        smtp=smtp,
        web=WebSettings(**attributes(web, WEB_FIELDS)),
        workers=settings["workers"] or cpu_count(),
        shard_size=settings["shard_size"],
        scheduler=settings["scheduler"],
        **paths,
    )


def cpu_count() -> int:
    """The CPUs this process may run on (a container's or a cgroup's share, where the OS says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _folders(settings: dict[str, Any], base: Path, where: Where, problems: list[Problem]) -> dict[str, Path]:
    """The folder and file settings as absolute paths; a path too long to create is a problem."""
    paths = {}
    for key in _PATH_KEYS:
        if key in settings:
            paths[key] = (base / settings[key]).resolve()
            too_long = _too_long(paths[key], _DB_SUFFIX if key == "db" else "")
            if too_long:
                problems.append(where.problem(key, too_long))
    return paths


_OUTPUT_KEYS = ("feeds", "site", "digests", "outbox", "quarantine")
_PRIVATE_KEYS = ("outbox", "db")  # subscriber addresses, signed links: never under the published site


def _overlaps(paths: dict[str, Path], where: Where, *, db_given: bool) -> list[Problem]:
    """Folders that would hide the inbox (an ingest leaves out what the program writes, so
    an output folder holding the inbox left every dump unread) or publish private files."""
    found = []
    inbox, site = paths.get("inbox"), paths.get("site")
    for key in _OUTPUT_KEYS:
        folder = paths.get(key)
        if inbox is not None and folder is not None and inbox.is_relative_to(folder):
            found.append(where.problem(key, f"holds the inbox ({inbox}): its dumps would never be read"))
    for key in _PRIVATE_KEYS:
        path = paths.get(key)
        if site is not None and path is not None and path.is_relative_to(site):
            what = "the state database" if key == "db" else "the emails"
            problem = f"is inside the site folder ({site}), which is published: {what} would be too"
            found.append(Problem("--db", 0, problem) if key == "db" and db_given else where.problem(key, problem))
    return found


def _templates(settings: dict[str, Any], base: Path, where: Where, problems: list[Problem]) -> Path | None:
    if not settings.get("templates", "").strip():
        return None
    templates = (base / settings["templates"]).resolve()
    problem = _too_long(templates)
    if not problem:
        try:
            problem = "" if templates.is_dir() else f"no such folder: {templates}"
        except OSError as exc:
            problem = f"cannot read {templates}: {exc.strerror}"
    if not problem:
        from digest.render.templates import template_problem

        problem = template_problem(templates)
    if problem:
        problems.append(where.problem("templates", problem))
    return templates


def _too_long(path: Path, suffix: str = "") -> str:
    """What makes `path` (and `path` + `suffix`) too long for a file system, or ''."""
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        return f"the path is {size} bytes long; at most {MAX_PATH_BYTES} (the files made inside need the rest)"
    last = len(path.parts) - 1
    for index, name in enumerate(path.parts):
        limit = MAX_NAME_BYTES - (len(suffix) if index == last else 0)
        size = len(os.fsencode(name))
        if size > limit:
            why = f" (SQLite adds {suffix!r})" if suffix else ""
            return f"the name {name[:20]!r}... is {size} bytes long; a file or folder name has at most {limit}{why}"
    return ""


def _parse_smtp(
    raw: Any,
    where: Where,
    problems: list[Problem],
    environ: Mapping[str, str],
    from_environment: Mapping[tuple[str, str], str],
) -> SmtpSettings | None:
    if isinstance(raw, dict) and "password" in raw:
        problems.append(
            where.problem("password", f"never put the password in a file: set {PASSWORD_VARIABLE} in the environment")
        )
        raw = {k: v for k, v in raw.items() if k != "password"}
    before = len(problems)
    values = read_table(raw, SMTP_FIELDS, where, problems)
    if len(problems) > before:
        return None
    if values["security"] == "none" and values["username"] and not is_loopback(values["host"]):
        message = (
            f"'none' would send the login of {values['username']!r} in clear text to {values['host']!r}; "
            "use starttls or ssl (clear text is allowed only to localhost, 127.0.0.0/8 and ::1)"
        )
        variable = from_environment.get(("smtp", "security"))
        problems.append(
            Problem(variable, 0, f"smtp.security: {message}") if variable else where.problem("security", message)
        )
        return None
    if bool(values["dkim_selector"]) != bool(values["dkim_domain"]):
        given, missing = ("dkim_selector", "dkim_domain")
        if not values["dkim_selector"]:
            given, missing = missing, given
        problems.append(where.problem(given, f"DKIM signing needs {missing} too"))
        return None
    values = attributes(values, SMTP_FIELDS)
    values["port"] = values["port"] or SECURITY_PORTS[values["security"]]
    dkim_key = environ.get(DKIM_KEY_VARIABLE) or None
    return SmtpSettings(password=environ.get(PASSWORD_VARIABLE) or None, dkim_key=dkim_key, **values)


def is_loopback(host: str) -> bool:
    """True for this machine: localhost, 127.0.0.0/8 or ::1 (what may be spoken to in clear text)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int:
    # tomllib puts the position only in the message: "... (at line 3, column 7)".
    message = str(exc)
    marker = "at line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].strip(") ")
        if digits.isdigit():
            return int(digits)
    return 0
