"""Secrets never reach an artifact: what ponder records of a command line, a URL or a
message goes through here first.

* `url`: credentials in a URL (`http://user:password@host`) and secret query parameters
  (`?api_key=...`, `token`, `sig`...) are masked; a malformed URL is masked whole rather
  than recorded half-parsed.
* `text`: every URL in a free text (an error message) as `url` does it.
* `command`: a command line with the value of every secret-bearing option (`--api-key`,
  `--upstream-key`, any option naming a key, token, secret or password, `NAME.api_key=`
  scorer options) masked, and every URL in it as `url` does it.

The mask is `***`: an artifact says a secret was there, never what it was.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "credentials", "auth", "sig",
     "signature"}
)  # fmt: skip
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def secret_name(name: str) -> bool:
    """Whether an option or parameter name holds a secret: its last word is key, token...
    (`--api-key`, `access_token`, `reward-http.api_key`; not `--max-tokens`,
    `--token-budget`)."""
    last = re.split(r"[-_.]", name.strip("-").lower())[-1]
    return last in _SECRET_WORDS


def url(value: str) -> str:
    """`value` with the credentials and secret query parameters of its URL masked."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if secret_name(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def text(value: str) -> str:
    """Every URL in `value` masked as `url` does it."""
    return _URL.sub(lambda m: url(m.group(0)), value)


def command(argv: Sequence[str]) -> str:
    """A shell-quoted command line with its secrets masked."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        if arg.startswith("--") and secret_name(arg.split("=", 1)[0]):
            name, eq, _ = arg.partition("=")
            if eq:
                out.append(f"{name}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        key, eq, _ = arg.partition("=")
        if eq and secret_name(key) and not arg.startswith("-") and not _URL.search(key):
            out.append(f"{key}={MASK}")  # NAME.api_key=... (a scorer option)
            continue
        out.append(text(arg))
    return shlex.join(out)
