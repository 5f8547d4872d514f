"""digest.toml: defaults, path resolution, and every validation problem with its line."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from digest.app import App
from digest.config import ConfigError, SourceConfig, load_config
from digest.models import Cadence, Keyword, Subscriber

ROOT = Path(__file__).resolve().parent.parent


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "digest.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, tmp_path)
    return [str(p).replace(str(path), "digest.toml") for p in caught.value.problems]


def test_no_file_means_working_defaults(tmp_path: Path) -> None:
    config = load_config(None, tmp_path)
    assert config.inbox == tmp_path / "seeds"
    assert config.db == tmp_path / ".digest" / "state.db"
    assert config.profiles == () and config.timezone == "UTC" and config.feed_size == 100
    assert config.catch_up_hours == 12


def test_workers_default_to_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    assert load_config(None, tmp_path).workers == len(os.sched_getaffinity(0))
    (tmp_path / "digest.toml").write_text("[digest]\nworkers = 1\n", encoding="utf-8")
    assert load_config(tmp_path / "digest.toml", tmp_path).workers == 1
    # Allowed one CPU (a container's share, `taskset`): one worker, whatever the machine has.
    script = (
        "import os; from pathlib import Path; from digest.config import load_config; "
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); print(load_config(None, Path('.')).workers)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "digest.toml").write_text('[digest]\ninbox = "in"\ndb = "/tmp/x/state.db"\n')
    config = load_config(folder / "digest.toml", tmp_path, db=None)
    assert config.inbox == folder / "in" and config.db == Path("/tmp/x/state.db")
    assert load_config(folder / "digest.toml", tmp_path, db=tmp_path / "o.db").db == tmp_path / "o.db"


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "digest.toml", ROOT)
    assert 3 <= len(config.profiles) <= 5
    assert all(p.subscribers and all(s.endswith("@example.org") for s in p.subscribers) for p in config.profiles)


def test_profile_values(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\ntimezone = "Europe/Berlin"\n\n[[profiles]]\nid = "cl"\n'
        'keywords = ["continual learning", {term = "forgetting", weight = 2.5}]\n'
        'subscribers = ["Reader@Example.org"]\n'
    )
    (profile,) = load_config(path, tmp_path).profiles
    assert profile.title == "cl" and profile.timezone == "Europe/Berlin" and profile.line == 4
    assert profile.keywords == (Keyword("continual learning"), Keyword("forgetting", 2.5))
    assert profile.subscribers == ("Reader@example.org",)
    assert profile.max_items == 10 and profile.min_score == 0.15 and profile.schedule == "0 7 * * *"


def test_follow_takes_organisations_and_authors(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[[profiles]]\nid = "a"\ndescription = "d"\n'
        'follow = ["openbmb", {author = " Yann  LeCun "}, "nvidia", {author = "Yann LeCun"}]\n',
        encoding="utf-8",
    )
    (profile,) = load_config(path, tmp_path).profiles
    assert profile.follow == ("openbmb", "nvidia")
    assert profile.follow_authors == ("Yann LeCun",)


def test_a_bad_follow_item_names_its_file_and_line(tmp_path: Path) -> None:
    bad = [
        ("[3]", 'item 1: follow lists organisation ids (strings) and authors ({author = "Name"}), got an integer 3'),
        ('[""]', "item 1: an organisation id must not be empty"),
        ('["x", {name = "Ann"}]', "item 2: unknown key 'name' in a followed author (known: author)"),
        ("[{}]", 'item 1: a followed author is a table {author = "Name"}'),
        ('[{author = "  "}]', "item 1: an author's name must not be empty"),
        ("[{author = 7}]", "item 1: expected a string, got an integer 7"),
    ]
    for value, message in bad:
        found = problems(tmp_path, f'[[profiles]]\nid = "a"\ndescription = "d"\nfollow = {value}\n')
        assert found == [f"digest.toml:4: profiles[0].follow: {message}"], value


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = """\
[digest]
inbx = "x"
feed_size = "many"

[[profiles]]
id = "Bad Slug"
title = "One"
description = "d"
colour = "blue"

[[profiles]]
id = "two"
max_items = "ten"
min_score = 1.5
keywords = [3]

[[profiles]]
id = "two"
title = "Empty"

[[profiles]]
id = "four"
description = "x"
subscribers = ["not-an-address", "a@example.org"]
schedule = "every day"
timezone = "Mars/Olympus"
formats = ["email", "fax"]
liked = "one title"
"""
    assert problems(tmp_path, text) == [
        "digest.toml:2: digest.inbx: unknown key (known keys: inbox, db, quarantine, feeds, site, digests, outbox, "
        "timezone, title, feed_size, site_url, sender, templates, stale_after_days, semantic, catch_up_hours, "
        "retention_days, workers, shard_size, scheduler)",
        "digest.toml:3: digest.feed_size: expected an integer, got a string 'many'",
        "digest.toml:9: profiles[0].colour: unknown key (known keys: id, title, description, keywords, exclude, "
        "liked, follow, max_items, min_score, subscribers, schedule, timezone, formats, open, owner, cadence)",
        "digest.toml:6: profiles[0].id: 'Bad Slug' is not valid: lowercase letters, digits and '-', like "
        "'continual-learning'",
        "digest.toml:15: profiles[1].keywords: item 1: a keyword is a string or a table {term, weight}, "
        "got an integer 3",
        "digest.toml:13: profiles[1].max_items: expected an integer, got a string 'ten'",
        "digest.toml:14: profiles[1].min_score: must be at most 1.0, got 1.5",
        "digest.toml:17: profiles[2]: empty profile: give at least one of description, keywords or liked",
        "digest.toml:18: profiles[2].id: duplicate id 'two' (first used on line 12)",
        "digest.toml:28: profiles[3].liked: expected an array, got a string 'one title'",
        "digest.toml:24: profiles[3].subscribers: item 1: 'not-an-address' is not an email address: An email "
        "address must have an @-sign.",
        "digest.toml:25: profiles[3].schedule: 'every day' is not a cron expression (five fields: minute hour day "
        "month weekday)",
        "digest.toml:26: profiles[3].timezone: 'Mars/Olympus' is not an IANA time zone (like 'Europe/Berlin' or 'UTC')",
        "digest.toml:27: profiles[3].formats: unknown format 'fax' (known: email, atom, rss, json, markdown)",
    ]


def test_a_time_zone_that_names_a_folder_of_the_database_is_one_line(tmp_path: Path) -> None:
    # ZoneInfo("America") reads a folder of tzdata: IsADirectoryError, a traceback.
    text = '[digest]\ntimezone = "Europe"\n\n[[profiles]]\nid = "a"\ndescription = "d"\ntimezone = "America"\n'
    assert problems(tmp_path, text) == [
        "digest.toml:2: digest.timezone: 'Europe' is not an IANA time zone (like 'Europe/Berlin' or 'UTC')",
        "digest.toml:7: profiles[0].timezone: 'America' is not an IANA time zone (like 'Europe/Berlin' or 'UTC')",
    ]


def test_a_template_that_does_not_compile_is_a_configuration_error(tmp_path: Path) -> None:
    # Found when the configuration is read, before anything is ingested or built.
    (tmp_path / "mine" / "site").mkdir(parents=True)
    (tmp_path / "mine" / "site" / "base.html").write_text("<html>\n{% block body %}\n</html>\n")
    # A README beside the templates (the shipped folder has one) is no template.
    (tmp_path / "mine" / "README.md").write_text("Override a block with `{% block body %}`.\n")
    text = '[digest]\ntemplates = "mine"\n\n[[profiles]]\nid = "a"\ndescription = "d"\n'
    assert problems(tmp_path, text) == [
        f"digest.toml:2: digest.templates: {(tmp_path / 'mine' / 'site' / 'base.html').resolve()}, line 3: "
        "Unexpected end of template. Jinja was looking for the following tags: 'endblock'. The innermost block "
        "that needs to be closed is 'block'."
    ]


def test_folders_that_would_hide_the_inbox_or_publish_private_files_are_refused(tmp_path: Path) -> None:
    base = '[digest]\ninbox = "seeds"\n'
    profile = '\n[[profiles]]\nid = "a"\ndescription = "d"\n'
    assert problems(tmp_path, base + 'feeds = "seeds"\noutbox = "."\n' + profile) == [
        f"digest.toml:3: digest.feeds: holds the inbox ({tmp_path / 'seeds'}): its dumps would never be read",
        f"digest.toml:4: digest.outbox: holds the inbox ({tmp_path / 'seeds'}): its dumps would never be read",
    ]
    assert problems(tmp_path, base + 'outbox = "site/mail"\n' + profile) == [
        f"digest.toml:3: digest.outbox: is inside the site folder ({tmp_path / 'site'}), which is published: "
        "the emails would be too"
    ]
    (tmp_path / "digest.toml").write_text(base + profile)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "digest.toml", tmp_path, db=tmp_path / "site" / "state.db")
    assert [str(p) for p in raised.value.problems] == [
        f"--db: is inside the site folder ({tmp_path / 'site'}), which is published: the state database would be too"
    ]


def test_profile_without_id_and_unknown_table(tmp_path: Path) -> None:
    assert problems(tmp_path, '[smtpp]\nhost = "x"\n\n[[profiles]]\ndescription = "d"\n') == [
        "digest.toml:1: unknown table or key 'smtpp'",
        "digest.toml:4: profiles[0]: missing required key 'id'",
    ]


def test_bad_cron_field(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, '[[profiles]]\nid = "a"\ndescription = "d"\nschedule = "61 7 * * *"\n')
    assert problem.startswith("digest.toml:4: profiles[0].schedule: '61 7 * * *' is not a cron expression")


def test_keyword_weight_must_be_positive(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, '[[profiles]]\nid = "a"\nkeywords = [{term = "x", weight = 0}]\n')
    assert "weight must be above 0" in problem


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, '[digest]\ninbox = "x"\ndb = \n')
    assert problem.startswith("digest.toml:3: not valid TOML")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", tmp_path)


def test_source_defaults_and_values(tmp_path: Path) -> None:
    assert load_config(None, tmp_path).source == SourceConfig()
    assert SourceConfig().base_url == "https://huggingface.co" and SourceConfig().enabled is False
    path = tmp_path / "digest.toml"
    path.write_text('[source]\nenabled = true\nbase_url = "https://hf-mirror.example/"\npace = 0\nattempts = 2\n')
    source = load_config(path, tmp_path).source
    assert (source.enabled, source.base_url, source.pace, source.attempts) == (
        True,
        "https://hf-mirror.example",
        0.0,
        2,
    )


def test_source_problems_name_their_lines(tmp_path: Path) -> None:
    text = '[source]\nenabled = "yes"\nbase_url = "huggingface.co"\ntimeout = 0\nattempts = 0\ntoken = "hf_x"\n'
    assert problems(tmp_path, text) == [
        "digest.toml:6: source.token: unknown key (known keys: enabled, base_url, timeout, pace, attempts, backoff, "
        "backoff_max, max_retry_after, max_pages, max_response_mb, deadline)",
        "digest.toml:2: source.enabled: expected true or false, got a string 'yes'",
        "digest.toml:3: source.base_url: 'huggingface.co' is not an http(s) URL like 'https://huggingface.co'",
        "digest.toml:4: source.timeout: must be at least 0.1, got 0",
        "digest.toml:5: source.attempts: must be at least 1, got 0",
    ]


def test_site_url_sender_and_templates(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\nsite_url = "https://user.github.io/repo"\nsender = "Digest Bot <Bot@Example.org>"\n'
        'templates = "my-templates"\n'
    )
    assert problems(tmp_path, path.read_text()) == [
        f"digest.toml:4: digest.templates: no such folder: {tmp_path / 'my-templates'}"
    ]
    (tmp_path / "my-templates").mkdir()
    config = load_config(path, tmp_path)
    assert config.site_url == "https://user.github.io/repo/"
    assert config.sender == "Digest Bot <Bot@example.org>"
    assert config.templates == tmp_path / "my-templates"
    defaults = load_config(None, tmp_path)
    assert defaults.site_url == "https://example.org/paper-digest/" and defaults.templates is None


def test_bad_site_url_sender_and_reserved_id(tmp_path: Path) -> None:
    text = """\
[digest]
site_url = "javascript:alert(1)"
sender = "nobody"

[[profiles]]
id = "all"
description = "x"
"""
    assert problems(tmp_path, text) == [
        "digest.toml:2: digest.site_url: 'javascript:alert(1)' is not an http(s) address like "
        "'https://USER.github.io/REPO/'",
        "digest.toml:3: digest.sender: 'nobody' is not an address like 'Paper Digest <digest@example.org>'",
        "digest.toml:6: profiles[0].id: 'all' is reserved (feeds/all.atom is the feed of all papers); "
        "choose another id",
    ]


def test_smtp_settings_and_the_password_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[smtp]\nhost = "mail.example.org"\nusername = "digest"\nfrom = "Paper Digest <Digest@Example.org>"\n'
    )
    smtp = load_config(path, tmp_path, environ={"DIGEST_SMTP_PASSWORD": "s3cret"}).smtp
    assert smtp is not None and (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "mail.example.org",
        587,
        "starttls",
        "digest",
    )
    assert smtp.sender == "Paper Digest <Digest@example.org>" and smtp.password == "s3cret"
    assert "s3cret" not in repr(smtp)
    assert load_config(path, tmp_path, environ={}).smtp.password is None  # type: ignore[union-attr]
    path.write_text('[smtp]\nhost = "h"\nsecurity = "ssl"\n')
    assert load_config(path, tmp_path, environ={}).smtp.port == 465  # type: ignore[union-attr]
    assert load_config(None, tmp_path).smtp is None


def test_smtp_problems_name_their_line(tmp_path: Path) -> None:
    text = '[digest]\n\n[smtp]\nhost = "h"\npassword = "hunter2"\nsecurity = "tls"\nport = 0\nfrom = "nobody"\n'
    assert problems(tmp_path, text) == [
        "digest.toml:5: smtp.password: never put the password in a file: set DIGEST_SMTP_PASSWORD in the environment",
        "digest.toml:7: smtp.port: must be at least 1, got 0",
        "digest.toml:6: smtp.security: expected one of starttls, ssl, none; got a string 'tls'",
        "digest.toml:8: smtp.from: 'nobody' is not an address like 'Paper Digest <digest@example.org>'",
    ]
    assert problems(tmp_path, "[smtp]\nport = 25\n") == ["digest.toml:1: smtp: missing required key 'host'"]


def test_settings_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "DIGEST_SITE_URL": "https://user.github.io/repo",
        "DIGEST_SMTP_HOST": "smtp.example.org",
        "DIGEST_SMTP_PORT": "2525",
        "DIGEST_SMTP_FROM": "",
        "DIGEST_SMTP_PASSWORD": "pw",
    }
    config = load_config(None, tmp_path, environ=environ)
    assert config.site_url == "https://user.github.io/repo/"
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.sender, config.smtp.password) == (
        "smtp.example.org",
        2525,
        None,
        "pw",
    )
    path = tmp_path / "digest.toml"
    path.write_text('[smtp]\nhost = "file.example.org"\nusername = "me"\n')
    both = load_config(path, tmp_path, environ={"DIGEST_SMTP_HOST": "env.example.org"})
    assert both.smtp is not None and (both.smtp.host, both.smtp.username) == ("env.example.org", "me")
    assert load_config(None, tmp_path, environ={}).smtp is None


def test_bad_values_in_the_environment_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None, tmp_path, environ={"DIGEST_SMTP_HOST": "h", "DIGEST_SMTP_PORT": "abc", "DIGEST_SITE_URL": "x"}
        )
    assert [str(p) for p in caught.value.problems] == [
        "DIGEST_SITE_URL: digest.site_url: 'x' is not an http(s) address like 'https://USER.github.io/REPO/'",
        "DIGEST_SMTP_PORT: smtp.port: expected an integer, got a string 'abc'",
    ]


def test_catch_up_hours_is_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text("[digest]\ncatch_up_hours = 20\n")
    assert load_config(tmp_path / "digest.toml", tmp_path).catch_up_hours == 20
    (tmp_path / "digest.toml").write_text("[digest]\n\ncatch_up_hours = 0\n")
    with pytest.raises(ConfigError, match=r"digest.toml:3: .*catch_up_hours"):
        load_config(tmp_path / "digest.toml", tmp_path)


# -- values that become file names, numbers, schedules, addresses, URLs (issue 12) ---------


def test_a_profile_id_is_short_enough_for_every_file_name_made_from_it(tmp_path: Path) -> None:
    longest = "a" * 64
    path = tmp_path / "digest.toml"
    path.write_text(f'[[profiles]]\nid = "{longest}"\ndescription = "d"\n')
    assert load_config(path, tmp_path).profiles[0].id == longest
    text = f'[[profiles]]\ndescription = "d"\nid = "{"b" * 65}"\n\n[[profiles]]\nid = "{"c-" * 150}c"\nliked = ["x"]\n'
    assert problems(tmp_path, text) == [
        "digest.toml:3: profiles[0].id: 'bbbbbbbbbbbbbbbbbbbb'... is 65 characters long; an id names files "
        "(feeds/<id>.atom), so it has at most 64",
        "digest.toml:6: profiles[1].id: 'c-c-c-c-c-c-c-c-c-c-'... is 301 characters long; an id names files "
        "(feeds/<id>.atom), so it has at most 64",
    ]


def test_folders_and_files_too_long_to_create_are_config_errors(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * 18)  # every name fits, the whole path does not
    text = (
        f'[digest]\nfeeds = "{"f" * 256}"\ndb = "state/{"s" * 250}"\noutbox = "{deep}"\n'
        f'templates = "{"t" * 300}"\ninbox = "in/{"i" * 255}"\n'
    )
    found = problems(tmp_path, text)
    assert [p.split(": the ")[0] for p in found] == [
        "digest.toml:3: digest.db",
        "digest.toml:2: digest.feeds",
        "digest.toml:4: digest.outbox",
        "digest.toml:5: digest.templates",
    ]
    assert "is 250 bytes long; a file or folder name has at most 247 (SQLite adds '-journal')" in found[0]
    assert "'ffffffffffffffffffff'... is 256 bytes long; a file or folder name has at most 255" in found[1]
    assert "bytes long; at most 3584" in found[2]
    assert "'tttttttttttttttttttt'... is 300 bytes long" in found[3]
    with pytest.raises(ConfigError) as caught:
        load_config(None, tmp_path, db=tmp_path / ("s" * 248))  # `digest --db FILE`
    assert [str(p) for p in caught.value.problems] == [
        "--db: the name 'ssssssssssssssssssss'... is 248 bytes long; a file or folder name has at most 247 "
        "(SQLite adds '-journal')"
    ]


@pytest.mark.parametrize(
    ("table", "text", "line", "key"),
    [
        ("", '[[profiles]]\nid = "a"\ndescription = "d"\nmin_score = nan\n', 4, "profiles[0].min_score"),
        ("", '[[profiles]]\nid = "a"\n\nmin_score = -inf\ndescription = "d"\n', 4, "profiles[0].min_score"),
        ("", '[[profiles]]\nid = "a"\nkeywords = [{term = "x", weight = +nan}]\n', 3, "profiles[0].keywords"),
        ("", '[[profiles]]\nid = "a"\nkeywords = [{term = "x", weight = inf}]\n', 3, "profiles[0].keywords"),
        ("", "[source]\n\ntimeout = inf\n", 3, "source.timeout"),
        ("", "[source]\nbackoff_max = nan\n", 2, "source.backoff_max"),
        ("", '[smtp]\nhost = "h"\nbackoff = +inf\n', 3, "smtp.backoff"),
        ("", '[smtp]\nhost = "h"\ntimeout = nan\n', 3, "smtp.timeout"),
    ],
)
def test_numbers_must_be_finite(tmp_path: Path, table: str, text: str, line: int, key: str) -> None:
    (problem,) = problems(tmp_path, table + text)
    assert problem.startswith(f"digest.toml:{line}: {key}: ")
    assert "expected a finite number, got " in problem


@pytest.mark.parametrize("schedule", ["0 7 31 2 *", "0 0 30 2 *", "15 9 31 4,6,9,11 *", "0 0 30-31 2 *"])
def test_a_schedule_that_can_never_fire_is_rejected(tmp_path: Path, schedule: str) -> None:
    text = f'[[profiles]]\nid = "a"\ndescription = "d"\nschedule = "{schedule}"\n'
    assert problems(tmp_path, text) == [
        f"digest.toml:4: profiles[0].schedule: '{schedule}' never fires: no date in the next 8 years has that "
        "day, month and weekday"
    ]


def test_a_schedule_for_february_29_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[[profiles]]\nid = "a"\ndescription = "d"\nschedule = "0 7 29 2 *"\n')
    assert load_config(path, tmp_path).profiles[0].schedule == "0 7 29 2 *"


def test_subscribers_that_differ_only_in_case_are_listed_twice(tmp_path: Path) -> None:
    text = (
        '[[profiles]]\nid = "a"\ndescription = "d"\n'
        'subscribers = ["Reader@Example.org", "b@example.org", "READER@example.ORG"]\n'
    )
    assert problems(tmp_path, text) == [
        "digest.toml:4: profiles[0].subscribers: 'READER@example.org' is listed twice (also as 'Reader@example.org')"
    ]
    exact = '[[profiles]]\nid = "a"\ndescription = "d"\nsubscribers = ["b@example.org", "b@example.org"]\n'
    assert problems(tmp_path, exact) == ["digest.toml:4: profiles[0].subscribers: 'b@example.org' is listed twice"]


def test_subscribers_with_their_own_cadence_beside_plain_addresses(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[[profiles]]\nid = "a"\ndescription = "d"\n'
        'subscribers = ["ada@example.org", {address = "Bob@Example.org", cadence = "weekly"}, '
        '{address = "cy@example.org"}, {address = "di@example.org", cadence = "monthly"}]\n'
        '\n[[profiles]]\nid = "w"\ndescription = "d"\ncadence = "weekly"\n'
        'subscribers = ["ada@example.org", {address = "bob@example.org", cadence = "daily"}]\n'
    )
    daily, weekly = load_config(path, tmp_path).profiles
    # The addresses stay a plain tuple; the cadences chosen are kept beside them.
    assert daily.subscribers == ("ada@example.org", "Bob@example.org", "cy@example.org", "di@example.org")
    assert daily.cadence == Cadence.DAILY and daily.schedule == "0 7 * * *"
    assert daily.subscriber_cadences == (("Bob@example.org", Cadence.WEEKLY), ("di@example.org", Cadence.MONTHLY))
    assert App(load_config(path, tmp_path)).subscribers(daily) == [
        Subscriber("ada@example.org", Cadence.DAILY),
        Subscriber("Bob@example.org", Cadence.WEEKLY),
        Subscriber("cy@example.org", Cadence.DAILY),
        Subscriber("di@example.org", Cadence.MONTHLY),
    ]
    # A weekly profile without a schedule sends on Mondays; its readers are weekly unless they chose.
    assert weekly.cadence == Cadence.WEEKLY and weekly.schedule == "0 7 * * mon"
    assert [s.cadence for s in App(load_config(path, tmp_path)).subscribers(weekly)] == [
        Cadence.WEEKLY,
        Cadence.DAILY,
    ]


def test_addresses_need_ascii_before_the_at_sign(tmp_path: Path) -> None:
    # A local part outside ASCII needs SMTPUTF8, which the sender does not use (its To header
    # was an invalid encoded-word): refused, naming it. A domain outside ASCII is kept as it
    # was (the address is a reader's key in the database).
    path = tmp_path / "digest.toml"
    path.write_text('[[profiles]]\nid = "a"\ndescription = "d"\nsubscribers = ["ada@Bücher.example"]\n')
    assert load_config(path, tmp_path).profiles[0].subscribers == ("ada@bücher.example",)
    path.write_text('[[profiles]]\nid = "a"\ndescription = "d"\nsubscribers = ["ünïcødé@example.org"]\n')
    with pytest.raises(ConfigError) as raised:
        load_config(path, tmp_path)
    assert "'ünïcødé@example.org' is not an email address: Internationalized characters before the @-sign" in str(
        raised.value
    )


def test_a_monthly_profile_sends_on_the_first_by_default(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text('[[profiles]]\nid = "m"\ndescription = "d"\ncadence = "monthly"\nschedule = "30 6 15 * *"\n')
    (monthly,) = load_config(path, tmp_path).profiles
    assert monthly.cadence == Cadence.MONTHLY and monthly.schedule == "30 6 15 * *"
    path.write_text('[[profiles]]\nid = "m"\ndescription = "d"\ncadence = "monthly"\n')
    assert load_config(path, tmp_path).profiles[0].schedule == "0 7 1 * *"


def test_cadence_problems_name_their_lines(tmp_path: Path) -> None:
    text = """\
[[profiles]]
id = "a"
description = "d"
cadence = "weekly"
schedule = "0 7 * * *"

[[profiles]]
id = "b"
description = "d"
cadence = "monthly"
schedule = "0 7 31 * *"
subscribers = [{address = "x@example.org", cadence = "weekly"}]

[[profiles]]
id = "c"
description = "d"
cadence = "hourly"
subscribers = [{address = "y@example.org", cadence = "yearly"}, {email = "z@example.org"}]

[[profiles]]
id = "d"
description = "d"
cadence = "weekly"
schedule = "0 7 1 * mon"
subscribers = ["p@example.org", {address = "P@example.org", cadence = "monthly"}, {cadence = "daily"}]
"""
    assert problems(tmp_path, text) == [
        "digest.toml:5: profiles[0].schedule: a weekly profile's schedule fires on one weekday, like '0 7 * * mon' "
        "(it sends the roll-up of the week before, Monday to Sunday); '0 7 * * *' does not",
        "digest.toml:11: profiles[1].schedule: a monthly profile's schedule fires on one day of every month (1 to "
        "28), like '0 7 1 * *' (it sends the roll-up of the month before); '0 7 31 * *' does not",
        "digest.toml:12: profiles[1].subscribers: 'x@example.org' asks for weekly roll-ups, but this profile is "
        "monthly: its schedule fires once a month (choose monthly or daily, or make the profile weekly or daily)",
        "digest.toml:18: profiles[2].subscribers: item 1: 'yearly' is not a cadence: daily, weekly or monthly",
        "digest.toml:17: profiles[2].cadence: 'hourly' is not a cadence: daily, weekly or monthly",
        "digest.toml:25: profiles[3].subscribers: item 3: a subscriber table needs an address",
        "digest.toml:24: profiles[3].schedule: a weekly profile's schedule fires on one weekday, like '0 7 * * mon' "
        "(it sends the roll-up of the week before, Monday to Sunday); '0 7 1 * mon' does not",
    ]
    text = '[[profiles]]\nid = "a"\ndescription = "d"\nsubscribers = ["p@example.org", {address = "P@example.org"}]\n'
    assert problems(tmp_path, text) == [
        "digest.toml:4: profiles[0].subscribers: 'P@example.org' is listed twice (also as 'p@example.org')"
    ]
    text = '[[profiles]]\nid = "a"\ndescription = "d"\nsubscribers = [{email = "p@example.org"}]\n'
    assert problems(tmp_path, text) == [
        "digest.toml:4: profiles[0].subscribers: item 1: unknown key 'email' in subscriber table (known: address, "
        "cadence)"
    ]


CLEAR_TEXT = (
    "'none' would send the login of 'digest' in clear text to 'mail.example.org'; use starttls or ssl "
    "(clear text is allowed only to localhost, 127.0.0.0/8 and ::1)"
)


def test_an_smtp_login_in_clear_text_goes_only_to_this_machine(tmp_path: Path) -> None:
    text = '[smtp]\nhost = "mail.example.org"\nusername = "digest"\nsecurity = "none"\n'
    assert problems(tmp_path, text) == [f"digest.toml:4: smtp.security: {CLEAR_TEXT}"]
    path = tmp_path / "digest.toml"
    for host in ("localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "::1"):
        path.write_text(f'[smtp]\nhost = "{host}"\nusername = "digest"\nsecurity = "none"\n')
        assert load_config(path, tmp_path, environ={}).smtp.host == host  # type: ignore[union-attr]
    path.write_text('[smtp]\nhost = "mail.example.org"\nsecurity = "none"\n')  # no login: nothing to leak
    assert load_config(path, tmp_path, environ={}).smtp.security == "none"  # type: ignore[union-attr]


def test_an_smtp_login_in_clear_text_from_the_environment(tmp_path: Path) -> None:
    environ = {"DIGEST_SMTP_HOST": "mail.example.org", "DIGEST_SMTP_USERNAME": "digest", "DIGEST_SMTP_SECURITY": "none"}
    with pytest.raises(ConfigError) as caught:
        load_config(None, tmp_path, environ=environ)
    assert [str(p) for p in caught.value.problems] == [f"DIGEST_SMTP_SECURITY: smtp.security: {CLEAR_TEXT}"]
    path = tmp_path / "digest.toml"
    path.write_text('[smtp]\nhost = "127.0.0.1"\n\nsecurity = "none"\n')  # the file's host is local, the env's is not
    with pytest.raises(ConfigError) as caught:
        load_config(path, tmp_path, environ=environ)
    assert [str(p) for p in caught.value.problems] == [f"DIGEST_SMTP_SECURITY: smtp.security: {CLEAR_TEXT}"]
    del environ["DIGEST_SMTP_SECURITY"]
    with pytest.raises(ConfigError) as caught:
        load_config(path, tmp_path, environ=environ)
    assert [str(p) for p in caught.value.problems] == [f"{path.name}:4: smtp.security: {CLEAR_TEXT}"]


def test_dotted_keys_and_inline_tables_name_their_lines(tmp_path: Path) -> None:
    text = """\
title_of_nothing = 1
digest.site_url = "ftp://x"
source = { base_url = "https://x.example", timeout = 0 }

smtp.host = "h"
smtp.security.level = 1

[[profiles]]
id = "a"
keywords = [
  "x",
  { term = "y", weight = -1 },
]
limits.max_items = 3
"""
    assert problems(tmp_path, text) == [
        "digest.toml:1: unknown table or key 'title_of_nothing'",
        "digest.toml:2: digest.site_url: 'ftp://x' is not an http(s) address like 'https://USER.github.io/REPO/'",
        "digest.toml:14: profiles[0].limits: unknown key (known keys: id, title, description, keywords, exclude, "
        "liked, follow, max_items, min_score, subscribers, schedule, timezone, formats, open, owner, cadence)",
        "digest.toml:10: profiles[0].keywords: item 2: must be at least 0.0, got -1",
        "digest.toml:3: source.timeout: must be at least 0.1, got 0",
        "digest.toml:6: smtp.security: expected one of starttls, ssl, none; got a table {'level': 1}",
    ]


def test_inline_tables_name_their_lines(tmp_path: Path) -> None:
    text = """\
digest = { site_url = "ftp://x", feed_size = 0 }
profiles = [
  { id = "a", description = "d" },
  { id = "BAD", keywords = [{ term = "x", weight = nan }] },
  { description = "no id" },
]
"""
    assert problems(tmp_path, text) == [
        "digest.toml:1: digest.feed_size: must be at least 1, got 0",
        "digest.toml:1: digest.site_url: 'ftp://x' is not an http(s) address like 'https://USER.github.io/REPO/'",
        "digest.toml:4: profiles[1].id: 'BAD' is not valid: lowercase letters, digits and '-', like "
        "'continual-learning'",
        "digest.toml:4: profiles[1].keywords: item 1: expected a finite number, got nan",
        "digest.toml:5: profiles[2]: missing required key 'id'",
    ]
    assert problems(tmp_path, '# a table written as dotted headers\n[profiles.x]\nid = "a"\n') == [
        "digest.toml:2: profiles: use [[profiles]] tables, one per profile"
    ]


@pytest.mark.parametrize(
    ("url", "wrong"),
    [
        ('https://example.org/a\\"b/', "has '\"' at character 22"),
        ("https://example.org/<b>/", "has '<' at character 21"),
        ("https://example.org/a b/", "has ' ' at character 22"),
        ("https://example.org/a\\\\b/", "has '\\\\' at character 22"),
        ("https://example.org/a\\u0007/", "has '\\x07' at character 22"),
        ("https://example.org/a\\r\\nBcc: x/", "has '\\r' at character 22"),
        ("https://example.org/it's/", 'has "\'" at character 23'),
        ("https://example.org/{x}/", "has '{' at character 21"),
        ("https://example.org/b\\u00fccher/", "has 'ü' at character 22"),
        ("https://example.org/100%/", "has '%' not followed by two hex digits at character 24"),
        ("https://example.org/a[1]/", "has '[' or ']' in its path"),
        ("https://example.org:http/", "is not a URL: Port could not be cast to integer value as 'http'"),
        ("https://[example.org/", "is not a URL: Invalid IPv6 URL"),
    ],
)
def test_site_and_base_urls_are_plain_urls(tmp_path: Path, url: str, wrong: str) -> None:
    found = problems(tmp_path, f'[digest]\nsite_url = "{url}"\n\n[source]\nbase_url = "{url}"\n')
    assert [": ".join(p.split(": ")[:2]) for p in found] == [
        "digest.toml:2: digest.site_url",
        "digest.toml:5: source.base_url",
    ]
    assert all(wrong in p for p in found), found
    with pytest.raises(ConfigError) as caught:
        load_config(None, tmp_path, environ={"DIGEST_SITE_URL": tomllib.loads(f'u = "{url}"')["u"]})
    (problem,) = caught.value.problems
    assert str(problem).startswith("DIGEST_SITE_URL: digest.site_url: ") and wrong in str(problem)


def test_urls_with_percent_escapes_and_ipv6_hosts_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[digest]\nsite_url = "https://example.org/b%C3%BCcher/~me/"\n[source]\nbase_url = "http://[::1]:8080"\n'
    )
    config = load_config(path, tmp_path)
    assert (config.site_url, config.source.base_url) == ("https://example.org/b%C3%BCcher/~me/", "http://[::1]:8080")


def test_the_web_side_is_configured_in_its_own_table_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(
        '[web]\nlisten = "127.0.0.1:8080"\nbase_url = "https://digest.example.org/readers"\n'
        '[[profiles]]\nid = "a"\ndescription = "x"\nopen = true\nowner = "Ada@Example.org"\n',
        encoding="utf-8",
    )
    config = load_config(path, tmp_path)
    assert (config.web.listen, config.web.base_url) == ("127.0.0.1:8080", "https://digest.example.org/readers/")
    assert config.profiles[0].open and config.profiles[0].owner == "Ada@example.org"
    assert load_config(None, tmp_path).web.base_url is None  # no [web]: no web side, links to the site only
    text = (
        '[web]\nlisten = "8080"\nbase_url = "http://digest.example.org/"\nport = 1\n'
        '[smtp]\nhost = "x"\ndkim_selector = "bad selector"\n'
        '[[profiles]]\nid = "a"\ndescription = "x"\nopen = "yes"\nowner = "nobody"\n'
    )
    assert problems(tmp_path, text) == [
        "digest.toml:11: profiles[0].open: expected true or false, got a string 'yes'",
        "digest.toml:12: profiles[0].owner: 'nobody' is not an email address: An email address must have an @-sign.",
        "digest.toml:7: smtp.dkim_selector: 'bad selector' is not a DKIM selector like 'mail' or '2026a'",
        "digest.toml:4: web.port: unknown key (known keys: listen, base_url)",
        "digest.toml:2: web.listen: '8080' is not an address to listen on, like '127.0.0.1:8080'",
        "digest.toml:3: web.base_url: 'http://digest.example.org/' must be https: its links carry signed tokens "
        "(plain http only for this machine)",
    ]
    half = '[smtp]\nhost = "x"\ndkim_domain = "example.org"\n[web]\nlisten = "[::1]:8080"\n'
    assert problems(tmp_path, half) == [
        "digest.toml:3: smtp.dkim_domain: DKIM signing needs dkim_selector too",
        "digest.toml:5: web.listen: needs base_url too: the address readers reach the web side at",
    ]
    loopback = '[web]\nbase_url = "http://[::1]:8080"\n'
    path.write_text(loopback, encoding="utf-8")
    assert load_config(path, tmp_path).web.base_url == "http://[::1]:8080/"
