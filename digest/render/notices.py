"""The confirmation email a reader gets after asking to subscribe on the web side.

Pure: the profile, the address, the signed link and the time come in; an
`email.message.EmailMessage` comes out, plain text from `templates/web/confirm_email.txt`.
Nothing is sent here (`deliver.notices` sends it).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from jinja2 import Environment

from digest.models import Profile
from digest.profiles import mail_address
from digest.render.email import POLICY
from digest.render.templates import template_environment
from digest.render.text import clip, is_http_url, one_line


def render_confirmation(
    profile: Profile,
    *,
    address: str,
    confirm_url: str,
    expires: datetime,
    sender: str,
    site_title: str,
    message_id: str,
    date: datetime,
    env: Environment | None = None,
) -> EmailMessage:
    """The message asking `address` to confirm its subscription to `profile` by following `confirm_url`."""
    if not is_http_url(confirm_url):
        raise ValueError(f"refusing a link that is not http(s): {confirm_url!r}")
    env = env or template_environment()
    title = clip(one_line(profile.title), 80)
    text = env.get_template("web/confirm_email.txt").render(
        profile_title=title,
        site_title=one_line(site_title),
        address=address,
        confirm_url=confirm_url,
        expires=expires.strftime("%a %d %b %Y, %H:%M UTC"),
    )
    message = EmailMessage(policy=POLICY.clone(max_line_length=76))  # quoted-printable lines (RFC 2045)
    message["Subject"] = f"Confirm your subscription to {title}"
    message["From"] = sender
    message["To"] = mail_address(address)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: vacation responders stay quiet
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.policy = POLICY  # headers on one line up to 998 characters, as the digest emails
    return message
