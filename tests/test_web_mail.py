"""The web side end to end with real mail: a real SMTP server (aiosmtpd), the real `digest build --send`,
the links inside the real messages followed over HTTP; DKIM signatures checked with dkimpy.

- subscribe -> the confirmation mail arrives -> its link is followed -> the next build mails
  the new subscriber;
- the one-click unsubscribe of a real digest email -> the next build does not mail them;
- a mail scanner fetching every link of a real digest email changes nothing;
- DKIM: signed over SMTP, verified against the public key, List-Unsubscribe and
  List-Unsubscribe-Post covered.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import dkim
import httpx
import pytest
from conftest import SEEDS, run_digest
from mailserver import MailServer
from webside import ENVIRON, NOW, Clock, database_rows, links_in, load, serving, web_config

from digest.app import App
from digest.config import load_config

PROFILES = """
[digest]
inbox = "seeds"
site_url = "https://example.org/paper-digest/"

[[profiles]]
id = "machine-learning"
title = "Machine learning"
description = "machine learning models, training and evaluation of neural networks and language models"
min_score = 0.0
max_items = 5
subscribers = ["ada@example.org"]
"""
BOB = "bob@example.org"
SEED_FILES = sorted(SEEDS.iterdir())


def inbox_with(folder: Path, count: int) -> Path:
    """An inbox holding the first `count` seed dumps (more are copied in later)."""
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    for seed in SEED_FILES[:count]:
        shutil.copy(seed, inbox / seed.name)
    return inbox


def build(folder: Path, clock: Clock, env: dict[str, str] | None = None) -> str:
    done = run_digest("build", "--send", cwd=folder, env=env or ENVIRON, clock=clock)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def digest_mails(server: MailServer, address: str) -> list[EmailMessage]:
    return [r.message for r in server.by_recipient().get(address, []) if "new paper" in str(r.message["Subject"])]


def test_subscribe_confirm_then_the_next_build_mails_the_new_subscriber_and_unsubscribe_stops_it(
    tmp_path: Path,
) -> None:
    inbox = inbox_with(tmp_path, 4)
    clock = Clock()
    with MailServer() as server:
        config = load(
            web_config(
                tmp_path,
                smtp_port=server.port,
                inbox=inbox,
                profiles=PROFILES.replace('id = "machine-learning"', 'id = "continual-learning"'),
            )
        )
        with serving(config, clock) as (app, base):
            asked = httpx.post(base + "subscribe", data={"address": BOB, "profile": "continual-learning"})
            assert asked.status_code == 200
            server.wait_for(1)
            (confirmation,) = server.by_recipient()[BOB]
            (link,) = [url for url in links_in(confirmation.message) if "/c/" in url]
            assert httpx.get(link).status_code == 200 and app.store.web_subscriptions() == []
            assert httpx.post(link).status_code == 200

            build(tmp_path, clock)
            (first,) = digest_mails(server, BOB)
            assert len(digest_mails(server, "ada@example.org")) == 1
            unsubscribe = re.match(r"<(http://[^>]+/u/[^>]+)>", str(first["List-Unsubscribe"]))
            assert unsubscribe is not None and first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            # What a mail client does for RFC 8058: POST the body, follow no redirect.
            answer = httpx.post(unsubscribe[1], data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
            assert answer.status_code == 200

            clock.advance(days=1)
            shutil.copy(SEED_FILES[4], inbox / SEED_FILES[4].name)
            build(tmp_path, clock)
    assert len(digest_mails(server, "ada@example.org")) == 2  # the next digest went out...
    assert len(digest_mails(server, BOB)) == 1  # ...but not to bob
    rows = {(r.day, r.subscriber): r.state for r in app.store.deliveries()}
    assert rows == {
        (NOW.date(), "ada@example.org"): "sent",
        (NOW.date(), BOB): "sent",
        (NOW.date() + timedelta(days=1), "ada@example.org"): "sent",
    }


def test_the_answer_to_subscribe_never_waits_on_the_mail_server(tmp_path: Path) -> None:
    # An answer that waited on SMTP told a new address (an exchange) from one already reading
    # the digest (nothing to send). The mail server holds every RCPT until the answers are in.
    inbox = inbox_with(tmp_path, 4)
    release = threading.Event()
    with MailServer() as server:
        server.faults.on_rcpt = lambda address, count: release.wait(20)
        profiles = PROFILES.replace('id = "machine-learning"', 'id = "continual-learning"')  # open to all
        config = load(web_config(tmp_path, smtp_port=server.port, inbox=inbox, profiles=profiles))
        with serving(config, Clock()) as (_, base):
            form = {"profile": "continual-learning"}
            new = httpx.post(base + "subscribe", data={**form, "address": BOB}, timeout=10)
            reading = httpx.post(base + "subscribe", data={**form, "address": "ada@example.org"}, timeout=10)
            assert server.messages == [] and not release.is_set()  # answered while the server held the mail
            assert (new.status_code, reading.status_code) == (200, 200)
            assert new.text.replace(BOB, "ADDRESS") == reading.text.replace("ada@example.org", "ADDRESS")
            release.set()
            server.wait_for(1)
    assert [r.rcpt_tos for r in server.messages] == [(BOB,)]


def test_a_mail_scanner_fetching_every_link_of_a_real_digest_email_changes_nothing(tmp_path: Path) -> None:
    inbox = inbox_with(tmp_path, 5)
    clock = Clock()
    with MailServer() as server:
        config = load(web_config(tmp_path, smtp_port=server.port, inbox=inbox, profiles=PROFILES))
        build(tmp_path, clock)
        (message,) = digest_mails(server, "ada@example.org")
        before = database_rows(config.db)
        with serving(config, clock) as (_, base):
            on_the_web_side = [url for url in links_in(message) if url.startswith(base)]
            for url in on_the_web_side:
                for response in (httpx.get(url), httpx.head(url)):
                    assert response.status_code == 200, url
        after = database_rows(config.db)
    kinds = {url.removeprefix(base).split("/", 1)[0] for url in on_the_web_side}
    assert kinds == {"u", "p", "v"} and len(on_the_web_side) >= 2 + 2 * 5  # unsubscribe, preferences, votes
    assert after == before


# -- DKIM ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """A throwaway RSA key made with openssl: (the private key as PEM, the DNS TXT record)."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return private.read_text(encoding="ascii"), record


def test_mail_sent_over_smtp_is_dkim_signed_over_the_unsubscribe_headers(
    tmp_path: Path, dkim_keys: tuple[str, bytes]
) -> None:
    pem, record = dkim_keys
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record if name == b"digest2026._domainkey.example.org." else None

    inbox = inbox_with(tmp_path, 5)
    env = ENVIRON | {"DIGEST_DKIM_KEY": pem.replace("\n", "\\n")}  # one line, as some environments want
    with MailServer() as server:
        config_path = web_config(
            tmp_path,
            smtp_port=server.port,
            inbox=inbox,
            profiles=PROFILES.replace("machine-learning", "continual-learning"),
        )
        text = config_path.read_text().replace(
            'security = "none"', 'security = "none"\ndkim_selector = "digest2026"\ndkim_domain = "example.org"'
        )
        config_path.write_text(text)
        build(tmp_path, Clock(), env)
        config = load_config(config_path, tmp_path, environ=env)
        with App(config, environ=env, clock=Clock()) as app:
            assert app.request_subscription("continual-learning", BOB, client="192.0.2.9") == "sent"
        received = server.messages
    assert len(received) == 2 and all(r.data.startswith(b"DKIM-Signature: ") for r in received)
    for copy in received:
        assert dkim.verify(copy.data, dnsfunc=dns)
    signature = received[0].data.split(b"\r\n\r\n", 1)[0].decode()
    signed = re.search(r"h=([^;]+);", signature.replace("\r\n", "").replace(" ", ""))
    assert signed is not None
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(signed[1].lower().split(":"))
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in received[0].data
    tampered = re.sub(rb"(List-Unsubscribe: <http://[^/]+/u/)", rb"\1x", received[0].data)
    assert tampered != received[0].data and not dkim.verify(tampered, dnsfunc=dns)
    assert set(asked) == {b"digest2026._domainkey.example.org."}  # the key was looked up where DNS has it


def test_a_dkim_selector_without_a_usable_key_stops_before_anything_is_sent(tmp_path: Path) -> None:
    inbox = inbox_with(tmp_path, 1)
    with MailServer() as server:
        config_path = web_config(tmp_path, smtp_port=server.port, inbox=inbox, profiles=PROFILES)
        text = config_path.read_text().replace(
            'security = "none"', 'security = "none"\ndkim_selector = "s1"\ndkim_domain = "example.org"'
        )
        config_path.write_text(text)
        missing = run_digest("build", "--send", cwd=tmp_path, env=ENVIRON, clock=Clock())
        garbage = run_digest(
            "build", "--send", cwd=tmp_path, env=ENVIRON | {"DIGEST_DKIM_KEY": "not a key"}, clock=Clock()
        )
    assert missing.returncode == 2 and "DIGEST_DKIM_KEY" in missing.stderr and len(missing.stderr.splitlines()) == 1
    assert garbage.returncode == 2 and "not a PEM private key" in garbage.stderr
    assert server.messages == [] and not (tmp_path / "site").exists()
