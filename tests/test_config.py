"""digest.toml: defaults, path resolution, and every validation problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import ConfigError, SourceConfig, load_config
from digest.models import Keyword

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
        "retention_days)",
        "digest.toml:3: digest.feed_size: expected an integer, got a string 'many'",
        "digest.toml:9: profiles[0].colour: unknown key (known keys: id, title, description, keywords, exclude, "
        "liked, follow, max_items, min_score, subscribers, schedule, timezone, formats)",
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
        "backoff_max, max_retry_after)",
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
