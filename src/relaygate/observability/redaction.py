"""Redaction of secrets and personal data in log records (decision 0031).

`Redactor.redact(text)` replaces, in any text:

- secrets, always removed: provider keys (OpenAI `sk-...`, Anthropic `sk-ant-...`, Google
  `AIza...`, AWS `AKIA`/`ASIA` key ids, Stripe `sk_/rk_live_...`, GitHub `ghp_...`, Slack
  `xox?-...`), the secret part of Relaygate keys (`rg_live_`/`rg_test_`/`rg_admin_`; the key id
  stays), JWTs, webhook secrets (`whsec_...`), signature values (`v1=<hex>`, `sha256=<hex>`,
  `v1,<base64>`), PEM private keys, the password of a URL (`scheme://user:password@host`), and the
  value after any secret-bearing name (`Authorization:`, `api-key:`, `x-api-key=`, `token=`,
  `password:`, `x-relaygate-signature:`, `webhook-signature:`, `?key=`, `sig=`, ...), which is
  how an Azure key or an operator-chosen Relaygate key (no recognisable shape) is caught;
- personal data: e-mail addresses, phone numbers (international `+...` and North American
  forms) and payment card numbers (13 to 19 digits, a card's first digit, Luhn-valid). E-mail
  addresses and phone numbers become `[email:u_...]` / `[phone:u_...]`, the keyed pseudonym of
  `privacy.hash_pii` (the same pseudonym the usage records carry), when that is on, and
  `[redacted:email]` / `[redacted:phone]` otherwise; card numbers are always removed.

The patterns are compiled once per process; each text is scanned by at most three regular
expressions, each only when the text holds what it looks for (a known prefix or name, an `@`,
three digits in a row); short texts (names, ids) are remembered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

# Names whose value is a secret wherever they appear as `name: value` or `name=value`.
_SENSITIVE_NAMES = (
    r"proxy-authorization|authorization|x-api-key|api[-_]?key|x-goog-api-key|"
    r"client[-_]secret|secret[-_]?key|secret|passwd|password|pwd|"
    r"access[-_]token|refresh[-_]token|id[-_]token|token|"
    r"x-relaygate-signature|webhook-signature|x-hub-signature(?:-256)?|stripe-signature|"
    r"x-shopify-hmac-sha256|signature|sig|key"
)

# name: value / name=value / "name": "value" / ?key=value, and bearer tokens anywhere.
_LABELLED = re.compile(
    r"(?=[pPaAxXcCsStTrRiIwWkKbB])(?:"
    r"(?P<labelled>(?P<label>(?i:" + _SENSITIVE_NAMES + r")[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[redacted)(?:(?i:bearer|basic|digest|token)\s+|v1,)?[^\s\"',;&}\]]+)"
    r"|(?P<bearer>(?P<scheme>\b(?i:bearer)\s+)[A-Za-z0-9._~+/=\-]{8,}))"
)

# Secrets recognisable by their shape.
_SHAPED = re.compile(
    "|".join(
        (
            # PEM private keys (a whole block, whatever it spans).
            r"(?P<pem>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)",
            # scheme://user:password@host -> the password goes.
            r"(?P<url_password>(?P<url_user>://[^\s/:@]+:)[^\s/@]+(?=@))",
            # Relaygate keys: rg_live_<key id>_<secret><checksum>; the key id is not secret.
            r"(?P<relaygate>(?P<rg_keep>\brg_(?:live|test|admin)_[A-Za-z0-9]{1,16}_)[A-Za-z0-9]{8,})",
            r"(?P<relaygate_other>\brg_(?:live|test|admin)_[A-Za-z0-9_\-]{8,}+(?!\[))",
            r"(?P<anthropic_key>\bsk-ant-[A-Za-z0-9_\-]{8,})",
            r"(?P<openai_key>\bsk-[A-Za-z0-9_\-]{16,})",
            r"(?P<stripe_key>\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,})",
            r"(?P<google_key>\bAIza[0-9A-Za-z_\-]{30,})",
            r"(?P<aws_key_id>\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)",
            r"(?P<github_token>\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}))",
            r"(?P<slack_token>\bxox[abprs]-[A-Za-z0-9\-]{10,})",
            r"(?P<webhook_secret>\bwhsec_[A-Za-z0-9+/=_\-]{8,})",
            r"(?P<jwt>\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*)",
            r"(?P<signature>\b(?:v1=[0-9a-fA-F]{32,}|sha256=[0-9a-fA-F]{64}|v1,[A-Za-z0-9+/=]{20,}))",
        )
    )
)

# A text is scanned for secrets only if it holds one of these (most log lines hold none).
_TRIGGERS = (
    "sk-", "sk_", "rk_", "rg_", "AIza", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "xox", "whsec_", "eyJ", "v1=", "v1,", "sha256=", "-----BEGIN", "://",
)  # fmt: skip
# ... or, lower-cased, one of these (the secret-bearing names, and `bearer`).
_NAME_TRIGGERS = ("auth", "key", "secret", "pass", "pwd", "token", "sig", "bearer")
# Phone and card numbers hold three digits in a row, or start with `+`.
_NUMBER_TRIGGER = re.compile(r"\d{3}|\+\d")

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
    r"\.[A-Za-z]{2,}\b"
)

_NUMBERS = re.compile(
    # (the lookahead lets the engine skip, in C, every position that cannot start a number)
    r"(?=[\d+(])(?:"
    + "|".join(
        (
            # 13 to 19 digits, optionally grouped by spaces or dashes (checked by Luhn).
            r"(?P<card>(?<![\w\-+.])(?:\d[ \-]?){12,18}\d(?!\w|[.\-]\d))",
            # +<country><number>, with the usual separators (8 to 15 digits in all).
            r"(?P<intl>(?<![\w+])\+\d[\d \-.()]{6,22}\d(?!\w|[.\-]\d))",
            # (415) 555-0123, 415-555-0123, 415.555.0123, 415 555 0123
            r"(?P<nanp>(?<![\w.\-+])(?:\(\d{3}\)\s?|\d{3}[\-. ])\d{3}[\-. ]\d{4}(?!\w|[.\-]\d))",
        )
    )
    + ")"
)

STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_FIELD = re.compile(r"(?i)^(?:" + _SENSITIVE_NAMES + r")$")
# Repeated short values (tenant, route, model names) are looked up rather than scanned again.
_CACHE_LIMIT = 4096
_CACHEABLE_LENGTH = 64


def luhn_valid(digits: str) -> bool:
    """True if `digits` passes the Luhn check that every payment card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class Redactor:
    """Removes secrets and personal data from text; see the module's docstring for what."""

    def __init__(self, pseudonym: Callable[[str], str] | None = None) -> None:
        self._pseudonym = pseudonym
        self._cache: dict[str, str] = {}

    def redact(self, text: str) -> str:
        """`text` with every secret and every piece of personal data replaced."""
        short = len(text) <= _CACHEABLE_LENGTH
        if short:
            cached = self._cache.get(text)
            if cached is not None:
                return cached
        result = text
        lower = text.lower()
        if any(t in lower for t in _NAME_TRIGGERS):
            result = _LABELLED.sub(self._secret, result)
        if any(t in result for t in _TRIGGERS):
            result = _SHAPED.sub(self._secret, result)
        if "@" in result:
            result = _EMAIL.sub(self._email, result)
        if _NUMBER_TRIGGER.search(result):
            result = _NUMBERS.sub(self._number, result)
        if short:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = result
        return result

    def _personal(self, kind: str, value: str) -> str:
        if self._pseudonym is None:
            return f"[redacted:{kind}]"
        return f"[{kind}:{self._pseudonym(value)}]"

    @staticmethod
    def _secret(match: re.Match[str]) -> str:
        kind = match.lastgroup or "secret"
        if kind == "labelled":
            return match.group("label") + "[redacted]"
        if kind == "bearer":
            return match.group("scheme") + "[redacted]"
        if kind == "url_password":
            return match.group("url_user") + "[redacted]"
        if kind == "relaygate":
            return match.group("rg_keep") + "[redacted]"
        if kind == "relaygate_other":
            kind = "relaygate_key"
        return f"[redacted:{kind}]"

    def _email(self, match: re.Match[str]) -> str:
        return self._personal("email", match.group())

    def _number(self, match: re.Match[str]) -> str:
        text = match.group()
        digits = "".join(c for c in text if c.isdigit())
        kind = match.lastgroup
        if kind == "card":
            if digits[0] in "23456" and luhn_valid(digits):
                return "[redacted:card]"
            return text
        if kind == "intl" and not 8 <= len(digits) <= 15:
            return text
        return self._personal("phone", text)


class RedactingFilter(logging.Filter):
    """A handler filter: every record leaves with its message, exception text, stack and
    extra fields redacted. Installed on every handler, so it covers every logger (uvicorn's,
    libraries', the gateway's own)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._plain = logging.Formatter()
        self._secret_names: dict[str, bool] = {}  # field name -> holds a secret

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get("_redacted"):
            return True  # a second handler: already done
        redact = self.redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record (or its secret)
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = record.__dict__
        secret_names = self._secret_names
        for name, value in fields.items():
            if name in STANDARD_ATTRIBUTES:
                continue
            if isinstance(value, str):
                secret = secret_names.get(name)
                if secret is None:
                    secret = secret_names[name] = _SECRET_FIELD.match(name) is not None
                fields[name] = "[redacted]" if secret else redact(value)
            elif isinstance(value, (dict, list, tuple)):
                fields[name] = _redact_nested(value, redact)
        fields["_redacted"] = True
        return True


def _redact_nested(value: object, redact: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: (
                "[redacted]"
                if isinstance(key, str) and isinstance(item, str) and _SECRET_FIELD.match(key)
                else _redact_nested(item, redact)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_nested(item, redact) for item in value]
    return value
