"""Load `digest.toml`: defaults merged with the file, checked once, at start.

Every setting has a default that works with no file at all. Relative paths are
resolved against the folder of the config file (or the working folder when there is
none). Problems are collected and raised together as `ConfigError`, each one
`FILE:LINE: key: what is wrong`. Nothing else in the program reads raw settings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.models import Problem, Profile
from digest.profiles import email_address, parse_profiles, timezone
from digest.validate import Field, Invalid, TomlLines, Where, boolean, integer, number, one_of, read_table, string

CONFIG_NAME = "digest.toml"

_PATH_KEYS = ("inbox", "db", "quarantine", "feeds", "site", "digests", "outbox")


def site_url(value: Any) -> str:
    """The public address of the published site: absolute http(s), always ending in '/'."""
    text = string(allow_empty=False)(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{text!r} is not an http(s) address like 'https://USER.github.io/REPO/'")
    if parts.query or parts.fragment:
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


DIGEST_FIELDS: dict[str, Field] = {
    "inbox": Field(string(allow_empty=False), "seeds"),
    "db": Field(string(allow_empty=False), ".digest/state.db"),
    "quarantine": Field(string(allow_empty=False), ".digest/quarantine"),
    "feeds": Field(string(allow_empty=False), "feeds"),
    "site": Field(string(allow_empty=False), "site"),
    "digests": Field(string(allow_empty=False), "digests"),
    "outbox": Field(string(allow_empty=False), "outbox"),
    "timezone": Field(timezone, "UTC"),
    "title": Field(string(allow_empty=False), "Paper Digest"),
    "feed_size": Field(integer(minimum=1, maximum=10_000), 100),
    "site_url": Field(site_url, "https://example.org/paper-digest/"),
    "sender": Field(mail_sender, "Paper Digest <digest@example.org>"),
    "templates": Field(string(), ""),
    "stale_after_days": Field(integer(minimum=0, maximum=3650), 3),
    "semantic": Field(boolean, False),
    "catch_up_hours": Field(integer(minimum=1, maximum=168), 12),
    # At least a month: well past the week an email is retried and a missed tick caught up.
    "retention_days": Field(integer(minimum=30, maximum=36_500), 400),
}


def http_url(value: Any) -> str:
    """An http(s) URL with a host, without a trailing slash."""
    text = string(allow_empty=False)(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"{text!r} is not an http(s) URL like 'https://huggingface.co'")
    if parts.query or parts.fragment:
        raise Invalid(f"{text!r}: a base URL takes no query or fragment")
    return text.rstrip("/")


SOURCE_FIELDS: dict[str, Field] = {
    "enabled": Field(boolean, False),
    "base_url": Field(http_url, "https://huggingface.co"),
    "timeout": Field(number(minimum=0.1, maximum=600), 30.0),
    "pace": Field(number(minimum=0, maximum=3600), 1.0),
    "attempts": Field(integer(minimum=1, maximum=20), 5),
    "backoff": Field(number(minimum=0, maximum=600), 1.0),
    "backoff_max": Field(number(minimum=0, maximum=3600), 60.0),
    "max_retry_after": Field(number(minimum=0, maximum=86_400), 300.0),
}


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """The `[source]` table: the live Daily Papers API (see `digest.fetch`).

    `enabled` makes `digest serve` fetch on its schedule (`digest fetch` always fetches).
    Times are in seconds: `timeout` per request, `pace` between two days, `backoff` the
    first wait before a retry (doubling up to `backoff_max`), `max_retry_after` the longest
    `Retry-After` honoured (a server asking for longer makes that day fail instead).
    """

    enabled: bool = False
    base_url: str = "https://huggingface.co"
    timeout: float = 30.0
    pace: float = 1.0
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0


PASSWORD_VARIABLE = "DIGEST_SMTP_PASSWORD"
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


SMTP_FIELDS: dict[str, Field] = {
    "host": Field(string(allow_empty=False)),
    "port": Field(integer(minimum=1, maximum=65535), None),
    "security": Field(one_of(*SECURITY_PORTS), "starttls"),
    "username": Field(string(allow_empty=False), None),
    "from": Field(mail_sender, None),
    "timeout": Field(number(minimum=1, maximum=600), 30.0),
    "attempts": Field(integer(minimum=1, maximum=20), 4),
    "backoff": Field(number(minimum=0, maximum=600), 2.0),
    "backoff_max": Field(number(minimum=0, maximum=3600), 60.0),
    "max_connection_failures": Field(integer(minimum=1, maximum=100), 5),
}

_TOP_LEVEL = ("digest", "profiles", "source", "smtp")


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
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. Paths are absolute."""

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
    catch_up_hours: int = 12
    retention_days: int = 400
    site_url: str = "https://example.org/paper-digest/"
    sender: str = "Paper Digest <digest@example.org>"
    templates: Path | None = None
    source: SourceConfig = field(default_factory=SourceConfig)
    smtp: SmtpSettings | None = None


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
    source = _display(path, cwd) if path else CONFIG_NAME
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


def _with_environment(raw: dict[str, Any], environ: Mapping[str, str], problems: list[Problem]) -> dict[str, Any]:
    """`raw` with the settings given in the environment put over the file's."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
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
    return merged


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
    raw = _with_environment(raw, environ, problems)
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.append(Where(source, lines, (key,), "").problem(None, f"unknown table or key {key!r}"))
    where = Where(source, lines, ("digest",), "digest")
    settings = read_table(raw.get("digest", {}), DIGEST_FIELDS, where, problems)
    profiles, profile_problems = parse_profiles(raw.get("profiles"), source, lines, settings.get("timezone", "UTC"))
    problems.extend(profile_problems)
    live = read_table(raw.get("source", {}), SOURCE_FIELDS, Where(source, lines, ("source",), "source"), problems)
    templates = (base / settings["templates"]).resolve() if settings.get("templates", "").strip() else None
    if templates is not None and not templates.is_dir():
        problems.append(where.problem("templates", f"no such folder: {templates}"))
    smtp = None
    if "smtp" in raw:
        smtp = _parse_smtp(raw["smtp"], Where(source, lines, ("smtp",), "smtp"), problems, environ)
    if problems:
        raise ConfigError(problems)
    paths = {key: (base / settings[key]).resolve() for key in _PATH_KEYS}
    if db is not None:
        paths["db"] = db.resolve()
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
        **paths,
    )


def _parse_smtp(raw: Any, where: Where, problems: list[Problem], environ: Mapping[str, str]) -> SmtpSettings | None:
    if isinstance(raw, dict) and "password" in raw:
        problems.append(
            where.problem("password", f"never put the password in a file: set {PASSWORD_VARIABLE} in the environment")
        )
        raw = {k: v for k, v in raw.items() if k != "password"}
    before = len(problems)
    values = read_table(raw, SMTP_FIELDS, where, problems)
    if len(problems) > before:
        return None
    port = values.pop("port") or SECURITY_PORTS[values["security"]]
    return SmtpSettings(port=port, sender=values.pop("from"), password=environ.get(PASSWORD_VARIABLE) or None, **values)


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int:
    # tomllib puts the position only in the message: "... (at line 3, column 7)".
    message = str(exc)
    marker = "at line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].strip(") ")
        if digits.isdigit():
            return int(digits)
    return 0
