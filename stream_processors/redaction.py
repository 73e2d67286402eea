"""Secrets kept out of output: URLs with their password masked, known secrets scrubbed from text.

Every log line, error, ``--help`` default, ``status`` and metric that names a
service goes through :func:`redact_url`; text that came from a library (an
exception message may quote a URL or a setting) goes through :func:`scrub`
with the secrets the process knows.

>>> redact_url("redis://driftline:s3cret@cache:6379/0")
'redis://driftline:***@cache:6379/0'
>>> redact_url("rediss://:s3cret@cache:6380/0")
'rediss://:***@cache:6380/0'
>>> redact_url("redis://cache:6379/0")
'redis://cache:6379/0'
>>> scrub("AUTH failed for s3cret at redis://u:s3cret@h", ["s3cret"])
'AUTH failed for *** at redis://u:***@h'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "redact_url", "scrub"]

MASK = "***"

# scheme://[user][:password]@host...: the password is everything between the first ':' after '//' and the last '@'
# of the URL (a password may itself hold '@', ':', '/', '?', '#' or spaces, written unencoded by mistake: it is
# masked all the same, at the price of masking more than the password when the path or query holds an '@').
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>\S*?(?:\s\S*?)*)@"
                       r"(?=[^@]*(?:\s|$))")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (user names are kept: they say which account failed)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL passwords masked and every known secret (of 4 characters or more) replaced."""
    text = redact_url(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
