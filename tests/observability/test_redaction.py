"""The redaction filter over a table of vectors: every secret and piece of personal data goes,
and the values a log line needs (ids, times, model names, numbers) stay as they were."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from relaygate.auth.keys import generate_key
from relaygate.observability.redaction import RedactingFilter, Redactor, luhn_valid
from relaygate.observability.setup import install, resolve_format
from relaygate.privacy.pseudonym import Pseudonymizer
from relaygate.webhooks.signing import new_secret

RELAYGATE_KEY, RELAYGATE_KEY_ID = generate_key()
WEBHOOK_SECRET = new_secret()
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3cDEyMyIsImV4cCI6MTcwMDAwMDAwMH0."
    "dGhpc2lzbm90YXJlYWxzaWduYXR1cmVidXRsb29rc2xpa2VvbmU"
)

# (text, the secret or personal value that must be gone)
SECRETS = [
    ("upstream said: Incorrect API key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", "sk-proj-Ab3dEf6h"),
    ("key sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jj1Hh0Gg in body", "sk-ant-api03-Zx9Yw8"),
    ("gemini ?key=AIzaSyFAKE-notarealkey-0123456789abcdef&alt=sse", "AIzaSyFAKE-notar"),
    ("AIzaSyFAKE-notarealkey-0123456789abcdef alone", "AIzaSyFAKE-notar"),
    ("aws AKIA" + "FAKE0EXAMPLE0KEY used", "AKIA" + "FAKE0EXAMPLE0KEY"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("azure api-key: 0f4e1c2b3a5d4e6f8a9b0c1d2e3f4a5b", "0f4e1c2b3a5d4e6f8a9b"),
    ('{"api-key": "0f4e1c2b3a5d4e6f8a9b0c1d2e3f4a5b"}', "0f4e1c2b3a5d4e6f8a9b"),
    (f"wrong key {RELAYGATE_KEY}", RELAYGATE_KEY.rsplit("_", 1)[1][:20]),
    ("operator key rg_admin_chosen-by-hand-0123456789", "chosen-by-hand"),
    ("Authorization: Bearer test-tenant-key-for-the-suite-0123", "test-tenant-key"),
    ("headers {'authorization': 'Basic dXNlcjpwYXNzd29yZA=='}", "dXNlcjpwYXNzd29yZA"),
    ("proxy-authorization=Digest abcdef0123456789", "abcdef0123456789"),
    ("got bearer abcdefghijklmnop0123 from the client", "abcdefghijklmnop0123"),
    (f"issuer token {JWT}", "eyJzdWIiOiJ3cDEyMyIs"),
    (f"endpoint secret {WEBHOOK_SECRET}", WEBHOOK_SECRET[6:30]),
    ("x-relaygate-signature: v1=" + "9f" * 32, "9f9f9f9f9f9f9f9f"),
    ("signature mismatch v1=" + "a0" * 32 + " offered", "a0a0a0a0a0a0a0a0"),
    ("webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=", "K5oZfzN95Z9U"),
    ("x-hub-signature-256=sha256=" + "4e" * 32, "4e4e4e4e4e4e4e4e"),
    ("stripe sk_live_51HqLyjWDarjtT1zdp7dc", "51HqLyjWDarjtT1zdp7dc"),
    ("github ghp_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E77"),
    ("slack xoxb-123456789012-abcdefghijkl", "xoxb-123456789012"),
    ("database postgresql://relay:s3cr3t-pw@db.internal:5432/relaygate", "s3cr3t-pw"),
    ("password=hunter2hunter2 set", "hunter2hunter2"),
    ("client_secret: 'Zm9vYmFyYmF6cXV4'", "Zm9vYmFyYmF6cXV4"),
    (
        "-----BEGIN "
        + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE "
        + "KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    ),
]

PERSONAL = [
    ("contact alice.liddell+ai@example.co.uk please", "alice.liddell+ai@example.co.uk"),
    ("<bob@example.org>", "bob@example.org"),
    ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
    ("call +1 (415) 555-0123", "(415) 555-0123"),
    ("cell +33612345678", "+33612345678"),
    ("us 415-555-0199 office", "415-555-0199"),
    ("us (415) 555-0199 office", "555-0199"),
    ("us 415.555.0199 office", "415.555.0199"),
    ("card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
    ("card 4111111111111111.", "4111111111111111"),
    ("amex 3782-822463-10005", "3782-822463-10005"),
    ("mc 5555555555554444", "5555555555554444"),
]

# Values that must come out exactly as they went in.
KEPT = [
    "req_06b4b19104e717c10000000000000002",
    "2026-12-07T19:54:21.123Z",
    "2026-12-07 19:54:21,123",
    "gpt-4o-mini-2024-07-18",
    "claude-3-5-sonnet-20241022",
    "models/gemini-1.5-pro-002",
    "fakeoai/gpt-echo",
    "latency 812.4 ms, 1234567 bytes",
    "1765137261123",  # a timestamp in milliseconds
    "4111111111111112",  # fails the Luhn check
    "order 1234567890123456",  # a first digit no card has
    "127.0.0.1:8080",
    "10.0.12.254",
    "version 1.2.3.4",
    "u_0123456789abcdef0123456789abcdef",  # a pseudonym
    "job_Zx3kP9qL2mN8vB4cX7dF1gH5",
    "chatcmpl-sima1c04bde98864d5fbec1",
    "msg_2Rq3s4T5u6V7w8X9y0Z1a2B3c4D",
    "task-0123456789abcdef0123",
    "POST /v1/chat/completions 200",
    "input_tokens=12 output_tokens=48",
    "token usage 12",
    "the signing secret of key abc123 does not open",
    "max_tokens: 4096",
    "webhook endpoint ep_abc123: attempt 2 of message msg_x failed: HTTP 500",
    "circuit of openai/gpt-4o open for 30.0 s",
    "Started server process [9234]",
    "rg_live_",
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secrets_are_removed(text: str, secret: str) -> None:
    redacted = Redactor().redact(text)
    assert secret not in redacted
    assert "[redacted" in redacted


@pytest.mark.parametrize(("text", "value"), PERSONAL)
def test_personal_data_is_removed(text: str, value: str) -> None:
    redacted = Redactor().redact(text)
    assert value not in redacted
    assert "[redacted:" in redacted


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_values_are_kept(text: str) -> None:
    assert Redactor().redact(text) == text


def test_a_relaygate_key_keeps_its_key_id() -> None:
    redacted = Redactor().redact(f"key {RELAYGATE_KEY} refused")
    assert redacted == f"key rg_live_{RELAYGATE_KEY_ID}_[redacted] refused"


def test_personal_data_becomes_the_hash_pii_pseudonym_when_that_is_on() -> None:
    pseudonym = Pseudonymizer(b"a-salt-of-sixteen-bytes-or-more")
    redactor = Redactor(pseudonym)
    email, phone = "alice@example.com", "+44 20 7946 0958"
    redacted = redactor.redact(f"from {email}, {phone}; card 4111111111111111")
    # The same pseudonym as the usage records carry, so an operator can correlate them.
    assert redacted == (
        f"from [email:{pseudonym(email)}], [phone:{pseudonym(phone)}]; card [redacted:card]"
    )


def test_redaction_is_idempotent() -> None:
    redactor = Redactor(Pseudonymizer(b"a-salt-of-sixteen-bytes-or-more"))
    text = " ".join(t for t, _ in SECRETS + PERSONAL)
    once = redactor.redact(text)
    assert redactor.redact(once) == once


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def _record(logger: str, message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(logger, logging.WARNING, __file__, 1, message, args or None, None)
    record.__dict__.update(extra)
    return record


def test_the_filter_redacts_arguments_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_filter = RedactingFilter(Redactor())
    handler.addFilter(install_filter)
    from relaygate.observability.log_format import JsonFormatter

    handler.setFormatter(JsonFormatter())
    try:
        raise ValueError("upstream echoed sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv for bob@example.org")
    except ValueError:
        import sys

        record = _record(
            "relaygate.providers",
            "provider %r answered: %s",
            "openai",
            "Authorization: Bearer sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
            tenant="acme",
            user_email="carol@example.net",
            api_key="0f4e1c2b3a5d4e6f",
            details={"token": "abc", "note": "call +1 415 555 0100"},
        )
        record.exc_info = sys.exc_info()
    handler.handle(record)
    line = stream.getvalue()
    entry = orjson.loads(line)
    for leaked in ("sk-proj-Ab3dEf6h", "bob@example.org", "carol@example.net", "0f4e1c2b3a5d4e6f"):
        assert leaked not in line
    assert "555 0100" not in line and '"abc"' not in line
    assert entry["message"] == "provider 'openai' answered: Authorization: [redacted]"
    assert entry["tenant"] == "acme"
    assert entry["api_key"] == "[redacted]"
    assert entry["details"]["token"] == "[redacted]"
    assert "ValueError: upstream echoed [redacted:openai_key]" in entry["exception"]


def test_install_sends_every_logger_through_one_redacting_json_handler() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        install("json", "info", Redactor(), stream)
        logging.getLogger("uvicorn.error").info("Started with key %s", "sk-ant-api03-abcdefghijk")
        logging.getLogger("some.library").warning("mail dave@example.com")
        logging.getLogger("uvicorn.access").info("127.0.0.1 - GET / 200")  # replaced by ours
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["level"], e["message"]) for e in lines] == [
        ("uvicorn.error", "info", "Started with key [redacted:anthropic_key]"),
        ("some.library", "warning", "mail [redacted:email]"),
    ]
    assert all(e["time"].endswith("Z") and "T" in e["time"] for e in lines)


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"
    assert resolve_format("json", Terminal()) == "json"
