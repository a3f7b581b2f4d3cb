"""Rate limits and budgets through the admin API: subjects, validation, duplicates, ceilings."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import AdminHarness


async def test_limit_lifecycle(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    key = await admin.ok("POST", "/tenants/acme/keys", {})
    tenant_limit = await admin.ok("POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 600})
    assert tenant_limit["subject"] == "acme" and tenant_limit["tpm"] is None
    key_limit = await admin.ok(
        "POST",
        "/tenants/acme/limits",
        {"scope": "key", "subject": key["id"], "rpm": 5, "concurrency": 2},
    )
    everyone = await admin.ok(
        "POST", "/tenants/acme/limits", {"scope": "user", "subject": "*", "tpm": 10000}
    )
    listed = (await admin.ok("GET", "/tenants/acme/limits"))["data"]
    assert [x["id"] for x in listed] == [tenant_limit["id"], key_limit["id"], everyone["id"]]
    path = f"/tenants/acme/limits/{key_limit['id']}"
    patched = await admin.ok("PATCH", path, {"tpm": 1000, "concurrency": None})
    assert (patched["rpm"], patched["tpm"], patched["concurrency"]) == (5, 1000, None)
    assert await admin.ok("GET", path) == patched
    # Lifting the last remaining limit is refused: delete the limit instead.
    await admin.error(400, "PATCH", path, {"rpm": None, "tpm": None})
    assert await admin.ok("DELETE", path) is None
    await admin.error(404, "GET", path)


async def test_limit_subjects_and_values_are_checked(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    await admin.tenant("other")
    foreign = await admin.ok("POST", "/tenants/other/keys", {})
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"scope": "tenant", "subject": "other", "rpm": 1}, "subject"),
        ({"scope": "key", "subject": "nokey", "rpm": 1}, "subject"),
        ({"scope": "key", "subject": foreign["id"], "rpm": 1}, "subject"),
        ({"scope": "key", "rpm": 1}, "subject"),
        ({"scope": "user", "rpm": 1}, "subject"),
        ({"scope": "user", "subject": "*"}, None),
        ({"scope": "team", "subject": "*", "rpm": 1}, "scope"),
        ({"scope": "user", "subject": "*", "rpm": 0}, "rpm"),
        ({"scope": "user", "subject": "*", "tpm": -5}, "tpm"),
        ({"scope": "user", "subject": "*", "concurrency": 2**31}, "concurrency"),
        ({"scope": "user", "subject": "*", "rpm": "many"}, "rpm"),
        ({"scope": "user", "subject": "x" * 257, "rpm": 1}, "subject"),
        ({"scope": "user", "subject": "*", "rpm": 1, "burst": 3}, "burst"),
    ]
    for body, param in cases:
        error = await admin.error(400, "POST", "/tenants/acme/limits", body)
        assert error["param"] == param, (body, error)
    assert (await admin.ok("GET", "/tenants/acme/limits"))["data"] == []


async def test_one_limit_per_subject(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    await admin.ok("POST", "/tenants/acme/limits", {"scope": "user", "subject": "42", "rpm": 1})
    duplicate = await admin.error(
        409, "POST", "/tenants/acme/limits", {"scope": "user", "subject": "42", "rpm": 2}
    )
    assert duplicate["code"] == "conflict"
    await admin.ok("POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 1})
    await admin.error(
        409, "POST", "/tenants/acme/limits", {"scope": "tenant", "subject": "acme", "tpm": 9}
    )
    # The same subject in another tenant is another limit.
    await admin.tenant("other")
    await admin.ok("POST", "/tenants/other/limits", {"scope": "user", "subject": "42", "rpm": 1})


async def test_budget_lifecycle(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    key = await admin.ok("POST", "/tenants/acme/keys", {})
    hard = await admin.ok(
        "POST", "/tenants/acme/budgets", {"scope": "tenant", "period": "month", "limit_usd": 50}
    )
    assert hard["hard"] is True and hard["subject"] == "acme" and hard["alert"] is False
    soft = await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {
            "scope": "user",
            "subject": "*",
            "period": "day",
            "limit_usd": 0.5,
            "hard": False,
            "downgrade_to": "fast",
            "alert": True,
        },
    )
    assert soft["downgrade_to"] == "fast" and soft["limit_usd"] == 0.5
    # Several budgets may share a subject (e.g. a soft alert at $40 below a hard cap at $50).
    await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {"scope": "key", "subject": key["id"], "period": "month", "limit_usd": 40, "hard": False},
    )
    await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {"scope": "key", "subject": key["id"], "period": "month", "limit_usd": 50},
    )
    assert len((await admin.ok("GET", "/tenants/acme/budgets"))["data"]) == 4
    path = f"/tenants/acme/budgets/{soft['id']}"
    raised = await admin.ok("PATCH", path, {"limit_usd": 2.5, "downgrade_to": "smart"})
    assert raised["limit_usd"] == 2.5 and raised["downgrade_to"] == "smart" and raised["alert"]
    # Hardening a budget that downgrades must also drop the downgrade.
    error = await admin.error(400, "PATCH", path, {"hard": True})
    assert error["param"] == "downgrade_to"
    hardened = await admin.ok("PATCH", path, {"hard": True, "downgrade_to": None})
    assert hardened["hard"] is True and hardened["downgrade_to"] is None
    assert await admin.ok("GET", path) == hardened
    assert await admin.ok("DELETE", path) is None
    await admin.error(404, "PATCH", path, {"limit_usd": 1})


async def test_budget_validation(admin: AdminHarness) -> None:
    await admin.tenant("acme")
    base: dict[str, Any] = {"scope": "tenant", "period": "day", "limit_usd": 1}
    changes: list[tuple[dict[str, Any], str]] = [
        ({"period": "week"}, "period"),
        ({"limit_usd": 0}, "limit_usd"),
        ({"limit_usd": -1}, "limit_usd"),
        ({"limit_usd": "Infinity"}, "limit_usd"),
        ({"limit_usd": 1e300}, "limit_usd"),
        ({"downgrade_to": "fast"}, "downgrade_to"),  # hard by default
        ({"hard": False, "downgrade_to": "gpt-unknown"}, "downgrade_to"),
        ({"scope": "key", "subject": "nokey"}, "subject"),
        ({"currency": "EUR"}, "currency"),
    ]
    for change, param in changes:
        error = await admin.error(400, "POST", "/tenants/acme/budgets", {**base, **change})
        assert error["param"] == param, (change, error)
    assert (await admin.ok("GET", "/tenants/acme/budgets"))["data"] == []


async def test_a_budget_is_paced_only_when_asked_and_the_flag_can_change(
    admin: AdminHarness,
) -> None:
    await admin.tenant("acme")
    plain = await admin.ok(
        "POST", "/tenants/acme/budgets", {"scope": "tenant", "period": "day", "limit_usd": 5}
    )
    assert plain["pace"] is False
    paced = await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {"scope": "tenant", "period": "month", "limit_usd": 100, "pace": True},
    )
    assert paced["pace"] is True
    path = f"/tenants/acme/budgets/{paced['id']}"
    assert (await admin.ok("GET", path))["pace"] is True
    listed = (await admin.ok("GET", "/tenants/acme/budgets"))["data"]
    assert [b["pace"] for b in listed] == [False, True]
    # Other fields leave the flag alone; the flag alone changes it.
    assert (await admin.ok("PATCH", path, {"limit_usd": 80}))["pace"] is True
    unpaced = await admin.ok("PATCH", path, {"pace": False})
    assert unpaced["pace"] is False and unpaced["limit_usd"] == 80
    assert await admin.ok("GET", path) == unpaced
    base = {"scope": "tenant", "period": "day", "limit_usd": 1}
    for value in ("yes", 1, "true"):
        error = await admin.error(400, "POST", "/tenants/acme/budgets", {**base, "pace": value})
        assert error["param"] == "pace", (value, error)
        error = await admin.error(400, "PATCH", path, {"pace": value})
        assert error["param"] == "pace", (value, error)
    assert (await admin.ok("GET", path))["pace"] is False
    assert len((await admin.ok("GET", "/tenants/acme/budgets"))["data"]) == 2


async def test_tenant_admins_manage_key_and_user_policies_but_not_the_ceiling(
    admin: AdminHarness,
) -> None:
    await admin.tenant("acme")
    mine = await admin.tenant_admin("acme")
    ceiling = await admin.ok("POST", "/tenants/acme/limits", {"scope": "tenant", "rpm": 100})
    cap = await admin.ok(
        "POST", "/tenants/acme/budgets", {"scope": "tenant", "period": "month", "limit_usd": 50}
    )
    # Readable, not changeable.
    assert (await admin.ok("GET", f"/tenants/acme/limits/{ceiling['id']}", key=mine)) == ceiling
    for method, path, body in [
        ("POST", "/tenants/acme/limits", {"scope": "tenant", "tpm": 1}),
        ("PATCH", f"/tenants/acme/limits/{ceiling['id']}", {"rpm": 100000}),
        ("DELETE", f"/tenants/acme/limits/{ceiling['id']}", None),
        ("POST", "/tenants/acme/budgets", {"scope": "tenant", "period": "day", "limit_usd": 9}),
        ("PATCH", f"/tenants/acme/budgets/{cap['id']}", {"limit_usd": 1e6}),
        ("DELETE", f"/tenants/acme/budgets/{cap['id']}", None),
        ("PATCH", "/tenants/acme", {"allowed_models": None}),
    ]:
        error = await admin.error(403, method, path, body, key=mine)
        assert error["type"] == "permission_error"
    assert (await admin.ok("GET", f"/tenants/acme/budgets/{cap['id']}"))["limit_usd"] == 50
    key = await admin.ok("POST", "/tenants/acme/keys", {}, key=mine)
    limit = await admin.ok(
        "POST", "/tenants/acme/limits", {"scope": "key", "subject": key["id"], "rpm": 5}, key=mine
    )
    await admin.ok("PATCH", f"/tenants/acme/limits/{limit['id']}", {"rpm": 6}, key=mine)
    budget = await admin.ok(
        "POST",
        "/tenants/acme/budgets",
        {"scope": "user", "subject": "*", "period": "day", "limit_usd": 1},
        key=mine,
    )
    await admin.ok("DELETE", f"/tenants/acme/budgets/{budget['id']}", key=mine)
    renamed = await admin.ok("PATCH", "/tenants/acme", {"name": "ACME"}, key=mine)
    assert renamed["name"] == "ACME"
