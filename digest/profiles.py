"""Interest profiles: the `[[profiles]]` tables of `digest.toml`, checked into `Profile`s.

Each profile is validated once, when the config loads; every problem is reported as
`digest.toml:LINE: profiles[N].field: what is wrong`. To add a setting, add a field to
`Profile` and an entry to `PROFILE_FIELDS`. Nothing here ranks, renders or sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from digest.cron import cron_trigger, cron_weekdays
from digest.formats import format_names
from digest.models import Cadence, Keyword, Problem, Profile
from digest.validate import (
    REQUIRED,
    Field,
    Invalid,
    TomlLines,
    Where,
    array,
    boolean,
    describe,
    fields_of,
    integer,
    number,
    read_table,
    string,
)

SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
# Ids that name something else in output file names: `feeds/all.atom` is the feed of all papers.
RESERVED_IDS = ("all",)
_KEYWORD_KEYS = ("term", "weight")
_FOLLOW_KEYS = ("author",)
# An id names files: the longest is the outbox's temporary file
# `.<day>_<id>_<12 hex>.eml.<8 random>.tmp`, the id plus 42 bytes. 64 leaves room for
# every such suffix within the 255 bytes a file name may have.
MAX_ID_LENGTH = 64
# Every date that exists comes back within 8 years (February 29 skips 2100).
_CRON_LOOK_AHEAD = timedelta(days=8 * 366)
_SUBSCRIBER_KEYS = ("address", "cadence")
# A weekly or monthly profile without a `schedule` sends its roll-up on Monday, or on the 1st.
CADENCE_SCHEDULES = {Cadence.WEEKLY: "0 7 * * mon", Cadence.MONTHLY: "0 7 1 * *"}
_LAST_DAY_OF_EVERY_MONTH = 28


def keyword(value: Any) -> Keyword:
    """A keyword: `"term"` or `{term = "...", weight = 2.0}`."""
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("a keyword must not be empty")
        return Keyword(value.strip())
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _KEYWORD_KEYS]
        if unknown:
            raise Invalid(f"unknown key {unknown[0]!r} in keyword table (known: term, weight)")
        term = string(allow_empty=False)(value.get("term"))
        weight = number(minimum=0.0, maximum=100.0)(value.get("weight", 1.0))
        if weight == 0:
            raise Invalid("a keyword's weight must be above 0 (use exclude to drop papers)")
        return Keyword(term.strip(), weight)
    raise Invalid(f"a keyword is a string or a table {{term, weight}}, got {describe(value)}")


@dataclass(frozen=True, slots=True)
class FollowedAuthor:
    """An item `{author = "Name"}` of `follow` (a plain string there is an organisation id)."""

    name: str


def followed(value: Any) -> str | FollowedAuthor:
    """An item of `follow`: `"openbmb"` (an organisation id) or `{author = "Yann LeCun"}`."""
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("an organisation id must not be empty")
        return value.strip()
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _FOLLOW_KEYS]
        if unknown:
            raise Invalid(f"unknown key {unknown[0]!r} in a followed author (known: author)")
        if "author" not in value:
            raise Invalid('a followed author is a table {author = "Name"}')
        name = " ".join(string()(value["author"]).split())
        if not name:
            raise Invalid("an author's name must not be empty")
        return FollowedAuthor(name)
    raise Invalid(f'follow lists organisation ids (strings) and authors ({{author = "Name"}}), got {describe(value)}')


def _split_follow(values: dict[str, Any]) -> None:
    """`follow` as read holds organisations and authors: each goes to its own field of `Profile`."""
    items = values.get("follow", ())
    values["follow"] = tuple(item for item in items if isinstance(item, str))
    values["follow_authors"] = tuple(dict.fromkeys(item.name for item in items if isinstance(item, FollowedAuthor)))


def email_address(value: Any) -> str:
    """The address, normalised (the domain in lower case). A local part outside ASCII needs
    SMTPUTF8, which the sender does not use: refused (its To header was an invalid
    encoded-word, and a server refused the message)."""
    text = string(allow_empty=False)(value)
    try:
        return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise Invalid(f"{text!r} is not an email address: {exc}") from None


def mail_address(address: str) -> str:
    """`address` as an SMTP envelope and a To header carry it: a domain outside ASCII in its
    IDNA form (`ada@xn--bcher-kva.example`). The address stays the reader's key as written;
    one that cannot be made ASCII (a local part outside it) is returned as it is, and the
    transport refuses it for good (SMTPUTF8 is not used)."""
    if address.isascii():
        return address
    try:
        ascii_form = validate_email(address, check_deliverability=False, allow_smtputf8=False).ascii_email
    except EmailNotValidError:
        return address
    return ascii_form or address


def cron(value: Any) -> str:
    text = string(allow_empty=False)(value)
    fields = text.split()
    if len(fields) != 5:
        raise Invalid(f"{text!r} is not a cron expression (five fields: minute hour day month weekday)")
    now = datetime.now(UTC)
    try:
        trigger = cron_trigger(text, "UTC", end_date=now + _CRON_LOOK_AHEAD)  # an end, so the search below stops
    except ValueError as exc:
        raise Invalid(f"{text!r} is not a cron expression: {exc}") from None
    if trigger.get_next_fire_time(None, now) is None:
        raise Invalid(f"{text!r} never fires: no date in the next 8 years has that day, month and weekday")
    return text


def cadence(value: Any) -> Cadence:
    """`daily`, `weekly` or `monthly`."""
    text = string()(value)
    try:
        return Cadence(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a cadence: daily, weekly or monthly") from None


def subscriber(value: Any) -> tuple[str, Cadence | None]:
    """A subscriber: `"address"`, or `{address = "...", cadence = "weekly"}` (their own cadence)."""
    if isinstance(value, str):
        return email_address(value), None
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _SUBSCRIBER_KEYS]
        if unknown:
            raise Invalid(f"unknown key {unknown[0]!r} in subscriber table (known: address, cadence)")
        if "address" not in value:
            raise Invalid("a subscriber table needs an address")
        return email_address(value["address"]), cadence(value["cadence"]) if "cadence" in value else None
    raise Invalid(f"a subscriber is an address or a table {{address, cadence}}, got {describe(value)}")


def subscriber_list(value: Any) -> tuple[tuple[str, Cadence | None], ...]:
    """Subscribers, each address once (compared ignoring case)."""
    entries: tuple[tuple[str, Cadence | None], ...] = array(subscriber)(value)
    array(string(), unique=True, same=str.lower)([address for address, _ in entries])
    return entries


def timezone(value: Any) -> str:
    text = string(allow_empty=False)(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" names a folder of the tz database
        raise Invalid(f"{text!r} is not an IANA time zone (like 'Europe/Berlin' or 'UTC')") from None
    return text


def profile_id(value: Any) -> str:
    text = string()(value)
    if len(text) > MAX_ID_LENGTH:
        raise Invalid(
            f"{text[:20]!r}... is {len(text)} characters long; an id names files (feeds/<id>.atom), "
            f"so it has at most {MAX_ID_LENGTH}"
        )
    string(pattern=SLUG, hint="lowercase letters, digits and '-', like 'continual-learning'")(text)
    if text in RESERVED_IDS:
        raise Invalid(f"{text!r} is reserved (feeds/{text}.atom is the feed of all papers); choose another id")
    return text


def _text_list(value: Any) -> tuple[str, ...]:
    return tuple(item.strip() for item in array(string(allow_empty=False))(value))


PROFILE_FIELDS: dict[str, Field] = fields_of(
    Profile,
    {
        "id": profile_id,
        "title": string(allow_empty=False),
        "description": string(),
        "keywords": array(keyword),
        "exclude": _text_list,
        "liked": _text_list,
        "follow": array(followed),
        "max_items": integer(minimum=1, maximum=200),
        "min_score": number(minimum=0.0, maximum=1.0),
        "subscribers": subscriber_list,
        "schedule": cron,
        "timezone": timezone,
        "formats": array(string(), unique=True),
        "open": boolean,
        "owner": email_address,
        "cadence": cadence,
    },
    # A title defaults to the id, a time zone to [digest] timezone, a schedule to one that fits
    # the cadence (see parse_profiles).
    defaults={"title": None, "timezone": None, "schedule": None},
)


def parse_profiles(
    raw: Any, source: str, lines: TomlLines, default_timezone: str
) -> tuple[list[Profile], list[Problem]]:
    """Check the `profiles` array of a parsed config; return the good profiles and every problem."""
    problems: list[Problem] = []
    if raw is None:
        return [], problems
    if not isinstance(raw, list):
        where = Where(source, lines, ("profiles",), "profiles")
        return [], [where.problem(None, "use [[profiles]] tables, one per profile")]
    profiles: list[Profile] = []
    first_line: dict[str, int] = {}
    for index, table in enumerate(raw):
        where = Where(source, lines, ("profiles", index), f"profiles[{index}]")
        before = len(problems)
        values = read_table(table, PROFILE_FIELDS, where, problems)
        _check_formats(values, where, problems)
        _split_subscribers(values)
        _check_cadence(values, where, problems)
        _split_follow(values)
        if isinstance(table, dict) and _is_empty(table, values):
            problems.append(where.problem(None, "empty profile: give at least one of description, keywords or liked"))
        pid = values.get("id")
        if pid in first_line:
            problems.append(where.problem("id", f"duplicate id {pid!r} (first used on line {first_line[pid]})"))
        elif pid:
            first_line[pid] = lines.key(("profiles", index), "id")
        if len(problems) == before:
            profiles.append(
                Profile(
                    **{**values, "title": values["title"] or pid, "timezone": values["timezone"] or default_timezone},
                    line=lines.table(("profiles", index)),
                    key_lines=tuple((key, lines.key(("profiles", index), key)) for key in table),
                )
            )
    return profiles, problems


def _split_subscribers(values: dict[str, Any]) -> None:
    """`subscribers` as the addresses (what `Profile.subscribers` holds) and, apart, the
    cadences of those who chose their own."""
    entries = values.pop("subscribers", None)
    if entries is None:
        return
    values["subscribers"] = tuple(address for address, _ in entries)
    values["subscriber_cadences"] = tuple((address, chosen) for address, chosen in entries if chosen is not None)


def _check_cadence(values: dict[str, Any], where: Where, problems: list[Problem]) -> None:
    """A weekly profile's schedule fires on one weekday and a monthly one's on one day of
    every month: the tick that sends the roll-up of the period before. Its subscribers may
    choose a cadence its schedule can keep (a monthly profile sends no weekly roll-ups)."""
    chosen = values.get("cadence", Cadence.DAILY)
    if values.get("schedule") is None:
        values["schedule"] = CADENCE_SCHEDULES.get(chosen, "0 7 * * *")
        key = "cadence"
    else:
        key = "schedule"
    problem = schedule_problem(values["schedule"], chosen)
    if problem:
        problems.append(where.problem(key, problem))
    if chosen == Cadence.MONTHLY:
        weekly = [address for address, own in values.get("subscriber_cadences", ()) if own == Cadence.WEEKLY]
        if weekly:
            problems.append(
                where.problem(
                    "subscribers",
                    f"{weekly[0]!r} asks for weekly roll-ups, but this profile is monthly: its schedule fires once "
                    "a month (choose monthly or daily, or make the profile weekly or daily)",
                )
            )


def schedule_problem(schedule: str, chosen: Cadence) -> str:
    """What is wrong with `schedule` for a profile of cadence `chosen`, or ''."""
    fields = schedule.split()
    if chosen == Cadence.DAILY or len(fields) != 5:
        return ""
    _, _, day, month, weekday = fields
    if chosen == Cadence.WEEKLY:
        try:
            one_day = day == "*" and month == "*" and weekday != "*" and "," not in cron_weekdays(weekday)
        except ValueError:
            return ""  # reported as a bad schedule already
        if not one_day:
            return (
                f"a weekly profile's schedule fires on one weekday, like '0 7 * * mon' (it sends the roll-up of "
                f"the week before, Monday to Sunday); {schedule!r} does not"
            )
        return ""
    every_month = weekday == "*" and month == "*" and day.isdigit() and 1 <= int(day) <= _LAST_DAY_OF_EVERY_MONTH
    if not every_month:
        return (
            f"a monthly profile's schedule fires on one day of every month (1 to {_LAST_DAY_OF_EVERY_MONTH}), like "
            f"'0 7 1 * *' (it sends the roll-up of the month before); {schedule!r} does not"
        )
    return ""


def _is_empty(table: dict[str, Any], values: dict[str, Any]) -> bool:
    interests = ("description", "keywords", "liked")
    given = [key for key in interests if key in table]
    # A key that failed its own check was reported already; do not also call the profile empty.
    return all(key in values for key in given) and not any(
        (values[key].strip() if key == "description" else values[key]) for key in given
    )


def _check_formats(values: dict[str, Any], where: Where, problems: list[Problem]) -> None:
    formats = values.get("formats", ())
    known = format_names()
    unknown = [f for f in formats if f not in known]
    if unknown:
        problems.append(where.problem("formats", f"unknown format {unknown[0]!r} (known: {', '.join(known)})"))
        values.pop("formats")


def find_profile(profiles: list[Profile] | tuple[Profile, ...], profile_id: str) -> Profile:
    """The profile with this id; `KeyError` with a message listing the known ids."""
    for profile in profiles:
        if profile.id == profile_id:
            return profile
    known = ", ".join(p.id for p in profiles) or "none configured"
    raise KeyError(f"unknown profile {profile_id!r} (known: {known})")


__all__ = ["PROFILE_FIELDS", "REQUIRED", "find_profile", "parse_profiles"]
