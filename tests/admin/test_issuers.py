"""JWT issuers through the admin API: key checks per algorithm, sealed HS256 secrets."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from relaygate.store.tables import JwtIssuerRecord
from tests.admin.conftest import AdminHarness
from tests.admin.material import b64url, ec_public_pem, hs_secret, rsa_private_pem, rsa_public_pem


def _issuer(algorithm: str, keys: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {
        "issuer": "https://site",
        "audience": "rg",
        "algorithm": algorithm,
        "keys": keys,
        **fields,
    }


async def test_hs256_secrets_are_sealed_and_never_returned(admin: AdminHarness) -> None:
    await admin.tenant("site")
    raw1, text1 = hs_secret()
    raw2, text2 = hs_secret(64)
    created = await admin.ok(
        "POST", "/tenants/site/jwt-issuers", _issuer("HS256", {"k1": text1, "k2": text2})
    )
    assert created["kids"] == ["k1", "k2"] and created["public_keys"] == {}
    assert created["environment"] == "production" and created["tenant_id"] == "site"
    for response in (
        await admin.call("GET", "/tenants/site/jwt-issuers"),
        await admin.call("GET", f"/tenants/site/jwt-issuers/{created['id']}"),
    ):
        assert response.status_code == 200
        assert text1 not in response.text and text2 not in response.text
    async with admin.context.sessions() as session:
        row = await session.get(JwtIssuerRecord, created["id"])
    assert row is not None
    for kid, raw, text in (("k1", raw1, text1), ("k2", raw2, text2)):
        sealed = row.keys[kid]
        assert text not in sealed
        place = f"jwt_issuers/{created['id']}/{kid}"
        assert admin.context.sealer.open(sealed, place) == raw


async def test_public_keys_are_checked_against_the_algorithm(admin: AdminHarness) -> None:
    await admin.tenant("site")
    rsa_pem, ec_pem = rsa_public_pem(), ec_public_pem()
    rs = await admin.ok("POST", "/tenants/site/jwt-issuers", _issuer("RS256", {"r": rsa_pem}))
    assert rs["public_keys"] == {"r": rsa_pem}
    es = await admin.ok(
        "POST",
        "/tenants/site/jwt-issuers",
        _issuer("ES256", {"e": ec_pem}, issuer="https://site/es"),
    )
    assert es["public_keys"] == {"e": ec_pem}
    _, short_secret = hs_secret(16)
    refused = [
        _issuer("RS256", {"k": rsa_public_pem(1024)}),
        _issuer("RS256", {"k": ec_pem}),
        _issuer("RS256", {"k": rsa_private_pem()}),
        _issuer("RS256", {"k": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"}),
        _issuer("ES256", {"k": ec_public_pem(ec.SECP384R1())}),
        _issuer("ES256", {"k": rsa_pem}),
        _issuer("HS256", {"k": short_secret}),
        _issuer("HS256", {"k": "not base64url!"}),
        _issuer("HS256", {"k": b64url(rsa_pem.encode())}),
    ]
    for body in refused:
        body["issuer"] = "https://refused"
        error = await admin.error(400, "POST", "/tenants/site/jwt-issuers", body)
        assert error["param"] == "keys.k", error
    listed = (await admin.ok("GET", "/tenants/site/jwt-issuers"))["data"]
    assert [i["issuer"] for i in listed] == ["https://site", "https://site/es"]


async def test_issuer_validation(admin: AdminHarness) -> None:
    await admin.tenant("site")
    pem = rsa_public_pem()
    for body, param in [
        (_issuer("RS256", {}), "keys"),
        (_issuer("PS256", {"k": pem}), "algorithm"),
        (_issuer("none", {"k": pem}), "algorithm"),
        (_issuer("RS256", {"k": pem}, environment="nope"), "environment"),
        (_issuer("RS256", {"k": pem}, audience=""), "audience"),
        (_issuer("RS256", {"k": pem}, jwks_uri="https://x"), "jwks_uri"),
        (_issuer("RS256", {"": pem}), "keys"),
    ]:
        error = await admin.error(400, "POST", "/tenants/site/jwt-issuers", body)
        assert error["param"] is not None and error["param"].startswith(param), (body, error)


async def test_an_issuer_is_unique_across_tenants_and_can_be_deleted(admin: AdminHarness) -> None:
    await admin.tenant("site")
    await admin.tenant("other")
    pem = rsa_public_pem()
    created = await admin.ok("POST", "/tenants/site/jwt-issuers", _issuer("RS256", {"k": pem}))
    for tenant in ("site", "other"):
        error = await admin.error(
            409, "POST", f"/tenants/{tenant}/jwt-issuers", _issuer("RS256", {"k": pem})
        )
        assert error["type"] == "conflict_error"
    path = f"/tenants/site/jwt-issuers/{created['id']}"
    assert await admin.ok("GET", path) == created
    assert await admin.ok("DELETE", path) is None
    await admin.error(404, "GET", path)
    await admin.error(404, "DELETE", path)
    # Once deleted, another tenant may register the issuer.
    await admin.ok("POST", "/tenants/other/jwt-issuers", _issuer("RS256", {"k": pem}))
