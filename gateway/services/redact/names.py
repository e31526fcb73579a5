"""Which field, label and key names say that their value is a secret, and what a key found in a
line reads as once decoded (JSON `\\uXXXX`, `%XX`, NFKC folding of fullwidth letters,
zero-width characters dropped)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import pairwise
from urllib.parse import unquote

MASK = "[REDACTED]"
MASK_BYTES = MASK.encode()

_SENSITIVE_FIELDS = (
    r"password|passwd|pwd|pass|passphrase|secret|client[_-]?secret|secret[_-]?key|api[_-]?key|apikey"
    r"|access[_-]?key|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|auth[_-]?token"
    r"|access[_-]?token|refresh[_-]?token|token|credentials?|x-api-key|authorization|cookie"
)

# Text that a key holding a secret contains (in some case); escapes and non-ASCII text too, as the
# key is only decoded after it was found.
KEY_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "credential", "auth", "cookie")

MAX_KEY_CHARS = 256  # a key's trailing words decide; a 60 KB key is not read whole
# invisible but not format characters (those go by category): combining grapheme joiner, Hangul
# and Khmer fillers
_INVISIBLE: dict[int, None] = dict.fromkeys((0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0))
_JSON_ESCAPE_RE = re.compile(r"\\+u([0-9a-fA-F]{4})")


def plain_key(raw: str) -> str:
    """A key as a reader would see it: escapes decoded, compatibility forms folded (fullwidth,
    long s, Kelvin sign), invisible characters dropped, quotes and dashes around it stripped."""
    key = _JSON_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), raw[-MAX_KEY_CHARS:])
    key = unicodedata.normalize("NFKC", unquote(key))
    key = "".join(c for c in key if unicodedata.category(c) != "Cf").translate(_INVISIBLE)
    return key.strip("\"'-_. ")


@lru_cache(maxsize=4096)  # keys repeat from line to line
def sensitive_key(key: bytes) -> bool:
    text = key.decode(errors="replace")
    if key.isascii() and b"\\" not in key and b"%" not in key:
        return sensitive_name(text.strip("-_."))
    return sensitive_name(plain_key(text))


_SENSITIVE_NAME_RE = re.compile(rf"(?i)(?:{_SENSITIVE_FIELDS})")
# the words of a name: db_password -> db, password; githubToken -> github, Token; PGPASSWORD -> PGPASSWORD
_NAME_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
_SECRET_WORD_ENDINGS = ("password", "passwd", "passphrase", "secret")  # long enough to match inside
# a last word that makes the name about the secret, not the secret: token_count, secret_name, key_id
_ABOUT_WORDS = frozenset({"count", "counts", "len", "length", "limit", "size", "type", "name", "id", "ttl",
                          "expiry", "expires", "used", "hint", "set", "ok", "valid"})


def sensitive_name(name: str) -> bool:
    """A field or label name that says its value is a secret: the name, a word of it, two words of
    it together (api_key in db_api_key) or a word ending in password/secret (PGPASSWORD). Counts
    such as prompt_tokens are not secrets (`tokens` is not `token`), nor is token_count."""
    name = name[-MAX_KEY_CHARS:]
    if _SENSITIVE_NAME_RE.fullmatch(name):
        return True
    words = [word.lower() for word in _NAME_WORD_RE.findall(name)]
    if words and words[-1] in _ABOUT_WORDS:
        return False
    pairs = [first + "_" + second for first, second in pairwise(words)]
    return any(
        _SENSITIVE_NAME_RE.fullmatch(word) or word.endswith(_SECRET_WORD_ENDINGS) for word in (*words, *pairs)
    )


# Loki's parsers write `_` for each character a label name cannot hold: `| json` turns a field
# named `password` in fullwidth letters into `________`, a name nobody can judge any more (Loki's
# own names, __error__ and __error_details__, have no run of three)
_UNREADABLE_NAME_RE = re.compile(r"___")


def field_needs_mask(name: str) -> bool:
    """A label or field name whose value is masked whole: it names a secret, or it was made
    unreadable by Loki's label-name sanitising."""
    return sensitive_name(plain_key(name)) or _UNREADABLE_NAME_RE.search(name) is not None

