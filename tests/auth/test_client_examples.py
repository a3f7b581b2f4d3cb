"""The client examples in examples/clients produce what the gateway verifies.

The Python examples are imported and their signing/minting functions checked against
verify_signed_request and verify_jwt; the PHP examples are run with `php` when it is installed.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from relaygate.auth.hmac_signing import HEADER_SIGNATURE, sign_request, verify_signed_request
from relaygate.auth.jwt_tokens import JwtIssuer, load_issuer_key, verify_jwt
from relaygate.auth.replay import MemoryReplayGuard
from tests.auth.material import EC_KEY, HS_SECRET, NOW, RSA_KEY, b64url, private_pem, public_pem

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "clients"
SIGNING_SECRET = "aW5kZXBlbmRlbnQtc2lnbmluZy1zZWNyZXQ"
KEY_ID = "Kid123abc"
# Multi-byte characters and a trailing newline: the exact bytes must be signed.
BODY = '{"model":"fast","messages":[{"role":"user","content":"h\u00e9llo \u2603"}]}\n'.encode()
ISSUER = "https://blog.example/wp"
PHP = shutil.which("php")
needs_php = pytest.mark.skipif(
    PHP is None, reason="php is not installed: the PHP client examples were NOT run"
)


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def secrets_for(key_id: str) -> Sequence[bytes]:
    return [SIGNING_SECRET.encode()] if key_id == KEY_ID else []


async def gateway_accepts(headers: dict[str, str], method: str, path: str, body: bytes) -> str:
    return await verify_signed_request(
        headers, method, path, body, secrets_for=secrets_for, replay=MemoryReplayGuard(), now=NOW
    )


def issuer(algorithm: str, material: bytes, kid: str | None = "k1") -> JwtIssuer:
    return JwtIssuer(
        issuer=ISSUER,
        audience="relaygate",
        algorithm=algorithm,  # type: ignore[arg-type]
        keys={kid or "only": load_issuer_key(algorithm, material)},
        tenant_id="acme-blog",
        environment="production",
        issuer_id="iss1",
    )


async def subject_of(token: str, who: JwtIssuer) -> str:
    verified = await verify_jwt(token, {who.issuer: who}, replay=MemoryReplayGuard(), now=NOW)
    return verified.subject


# --- Python ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/v1/chat/completions", BODY), ("GET", "/v1/models?limit=5&after=a%2Fb", b"")],
)
async def test_python_hmac_example_is_accepted(method: str, path: str, body: bytes) -> None:
    signed_headers = example("python_hmac").signed_headers
    headers = signed_headers(KEY_ID, SIGNING_SECRET, method, path, body, int(NOW))
    assert await gateway_accepts(headers, method, path, body) == KEY_ID


async def test_python_hs256_example_is_accepted() -> None:
    mint = example("python_jwt").mint_hs256
    token = mint(
        HS_SECRET, issuer=ISSUER, audience="relaygate", subject="42", kid="k1", now=int(NOW)
    )
    assert await subject_of(token, issuer("HS256", HS_SECRET)) == "42"


@pytest.mark.parametrize(("algorithm", "key"), [("RS256", RSA_KEY), ("ES256", EC_KEY)])
async def test_python_pyjwt_example_is_accepted(algorithm: str, key: object) -> None:
    mint = example("python_jwt").mint_with_pyjwt
    token = mint(
        private_pem(key),
        algorithm,
        issuer=ISSUER,
        audience="relaygate",
        subject="42",
        kid="k1",
        now=int(NOW),
    )
    assert await subject_of(token, issuer(algorithm, public_pem(key))) == "42"


# --- PHP ---------------------------------------------------------------------------------------


def php(script: str, args: list[str], env: dict[str, str], stdin: bytes = b"") -> str:
    assert PHP is not None
    done = subprocess.run(
        [PHP, str(EXAMPLES / script), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


@needs_php
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("post", "/v1/chat/completions", BODY), ("GET", "/v1/models?limit=5&after=a%2Fb", b"")],
)
async def test_php_hmac_example_is_accepted(method: str, path: str, body: bytes) -> None:
    printed = php(
        "php_hmac.php",
        ["headers", KEY_ID, method, path, str(int(NOW))],
        {"RELAYGATE_SIGNING_SECRET": SIGNING_SECRET},
        stdin=body,
    )
    headers = json.loads(printed)
    assert await gateway_accepts(headers, method.upper(), path, body) == KEY_ID


@needs_php
@pytest.mark.parametrize("kid", ["k1", None])
async def test_php_hs256_example_is_accepted(kid: str | None) -> None:
    token = php(
        "php_jwt.php",
        ["token", ISSUER, "relaygate", "wp-user-7", kid or "", str(int(NOW))],
        {"RELAYGATE_JWT_SECRET": b64url(HS_SECRET)},
    )
    assert await subject_of(token, issuer("HS256", HS_SECRET, kid)) == "wp-user-7"


@needs_php
async def test_php_tokens_are_different_each_time() -> None:
    args = ["token", ISSUER, "relaygate", "wp-user-7", "k1", str(int(NOW))]
    env = {"RELAYGATE_JWT_SECRET": b64url(HS_SECRET)}
    guard = MemoryReplayGuard()
    who = issuer("HS256", HS_SECRET)
    for _ in range(2):  # two page views, two tokens: both accepted once (fresh jti each)
        token = php("php_jwt.php", args, env)
        assert await verify_jwt(token, {ISSUER: who}, replay=guard, now=NOW)


# --- the documentation -------------------------------------------------------------------------


async def test_the_worked_example_in_the_documentation_is_right() -> None:
    doc = (EXAMPLES.parents[1] / "docs" / "authentication.md").read_text()
    secret, body = b"wordpress-site-signing-secret-0123456789", b'{"model":"fast","messages":[]}'
    assert secret.decode() in doc and body.decode() in doc
    body_sha = hashlib.sha256(body).hexdigest()
    canonical = f"POST\n/v1/chat/completions\n1800000000\n{body_sha}"
    expected = hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()
    assert canonical in doc
    assert f"x-relaygate-signature: v1={expected}" in doc
    headers = sign_request(secret, "POST", "/v1/chat/completions", body, 1_800_000_000)
    assert headers[HEADER_SIGNATURE] == f"v1={expected}"
