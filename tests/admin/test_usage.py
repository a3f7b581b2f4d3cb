"""GET /usage and budget events: filters, grouping (also by UTC day), paging, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.store.tables import BudgetEvent
from tests.admin.conftest import AdminHarness
from tests.admin.material import usage_row

DAY1 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)


async def _ledger(h: AdminHarness) -> None:
    rows = [
        usage_row("r0", DAY1, key="k1", user="u1", model="sim-small", cost=0.5),
        usage_row("r1", DAY2, key="k1", user="u2", model="sim-small", cost=0.25, cached=3),
        usage_row("r2", DAY2, key="k2", user="u1", model="sim-big", cost=1.0, status=502),
        usage_row("r3", DAY2, key="k2", user=None, model="sim-big", route="smart", cost=2.0),
        usage_row("r4", DAY2, tenant="other", key="k9", environment="staging", cost=9.0),
    ]
    async with h.context.sessions.begin() as session:
        for row in rows:
            session.add(row)


async def _ids(h: AdminHarness, query: str) -> list[str]:
    body = await h.ok("GET", f"/usage?{query}")
    return [r["request_id"] for r in body["data"]]


async def test_records_are_filtered_newest_first(admin: AdminHarness) -> None:
    h = admin
    await _ledger(h)
    everything = await h.ok("GET", "/usage")
    assert [r["request_id"] for r in everything["data"]] == ["r4", "r3", "r2", "r1", "r0"]
    assert everything["has_more"] is False and everything["next_before"] is None
    first = everything["data"][-1]
    assert (
        first["tenant_id"] == "acme" and first["cost_usd"] == 0.5 and first["prompt_tokens"] == 10
    )
    assert datetime.fromisoformat(first["created_at"]) == DAY1
    assert await _ids(h, "tenant=acme&user=u1") == ["r2", "r0"]
    assert await _ids(h, "key=k2") == ["r3", "r2"]
    assert await _ids(h, "model=sim-big&tenant=acme") == ["r3", "r2"]
    assert await _ids(h, "route=smart") == ["r3"]
    assert await _ids(h, "environment=staging") == ["r4"]
    assert await _ids(h, "provider=nobody") == []
    assert await _ids(h, "tenant=nobody") == []
    assert h.flushes, "usage queries flush the recorder first"


async def test_time_filters_take_dates_and_offsets(admin: AdminHarness) -> None:
    h = admin
    await _ledger(h)
    assert await _ids(h, "tenant=acme&since=2026-03-02") == ["r3", "r2", "r1"]
    assert await _ids(h, "tenant=acme&until=2026-03-01") == ["r0"]
    assert await _ids(h, "since=2026-03-01&until=2026-03-01") == ["r0"]
    # 01:45 at +02:00 is 23:45 UTC the day before: after r0 (23:30), before r1 (00:30).
    assert await _ids(h, "tenant=acme&until=2026-03-02T01:45:00%2B02:00") == ["r0"]
    assert await _ids(h, "tenant=acme&since=2026-03-02T01:45:00%2B02:00") == ["r3", "r2", "r1"]
    assert await _ids(h, "tenant=acme&since=2026-03-01T23:30:00Z&until=2026-03-01T23:30:00Z") == [
        "r0"
    ]
    error = await h.error(400, "GET", "/usage?since=yesterday")
    assert error["param"] == "since"
    error = await h.error(400, "GET", "/usage?until=2026-13-01")
    assert error["param"] == "until"


async def test_records_page_with_a_cursor(admin: AdminHarness) -> None:
    h = admin
    await _ledger(h)
    seen: list[str] = []
    query = "/usage?limit=2"
    while True:
        page = await h.ok("GET", query)
        seen += [r["request_id"] for r in page["data"]]
        if not page["has_more"]:
            assert page["next_before"] is None
            break
        assert page["next_before"] == page["data"][-1]["id"]
        query = f"/usage?limit=2&before={page['next_before']}"
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    assert (await h.error(400, "GET", "/usage?limit=0"))["param"] == "limit"
    assert (await h.error(400, "GET", "/usage?limit=10001"))["param"] == "limit"


async def test_totals_per_group(admin: AdminHarness) -> None:
    h = admin
    await _ledger(h)
    by_model = (await h.ok("GET", "/usage?tenant=acme&group_by=model"))["data"]
    assert by_model == [
        {
            "model": "sim-big",
            "requests": 2,
            "prompt_tokens": 20,
            "completion_tokens": 10,
            "cached_tokens": 0,
            "cost_usd": 3.0,
            "errors": 1,
        },
        {
            "model": "sim-small",
            "requests": 2,
            "prompt_tokens": 20,
            "completion_tokens": 10,
            "cached_tokens": 3,
            "cost_usd": 0.75,
            "errors": 0,
        },
    ]
    by_day = (await h.ok("GET", "/usage?tenant=acme&group_by=day"))["data"]
    assert [(d["day"], d["requests"], d["cost_usd"]) for d in by_day] == [
        ("2026-03-01", 1, 0.5),
        ("2026-03-02", 3, 3.25),
    ]
    by_user = (await h.ok("GET", "/usage?tenant=acme&group_by=user"))["data"]
    assert [(u["user"], u["requests"]) for u in by_user] == [(None, 1), ("u1", 2), ("u2", 1)]
    pairs = (await h.ok("GET", "/usage?group_by=tenant,environment,day&since=2026-03-02"))["data"]
    assert [(p["tenant"], p["environment"], p["day"], p["requests"]) for p in pairs] == [
        ("acme", "production", "2026-03-02", 3),
        ("other", "staging", "2026-03-02", 1),
    ]
    limited = (await h.ok("GET", "/usage?group_by=key&limit=2"))["data"]
    assert [g["key"] for g in limited] == ["k1", "k2"]
    error = await h.error(400, "GET", "/usage?group_by=model,colour")
    assert error["param"] == "group_by" and "colour" in error["message"]


async def test_csv_has_a_header_and_survives_awkward_values(admin: AdminHarness) -> None:
    h = admin
    await _ledger(h)
    awkward = 'O\'Brien, "the" user\nline 2'
    async with h.context.sessions.begin() as session:
        session.add(usage_row("r5", DAY2, key="k3", user=awkward, cost=0.125))
        session.add(usage_row("r6", DAY2, key="k3", user="=HYPERLINK(1)", cost=0.0))
    response = await h.client.get(
        "/usage?tenant=acme&group_by=key,user&format=csv", headers=h.as_(h.operator_key)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text, newline="")))
    assert table[0] == [
        "key",
        "user",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cost_usd",
        "errors",
    ]
    rows = {(r[0], r[1]): r for r in table[1:]}
    assert rows[("k3", awkward)][2] == "1" and rows[("k3", awkward)][6] == "0.125"
    # A value a spreadsheet would run as a formula is neutralised.
    assert ("k3", "'=HYPERLINK(1)") in rows
    assert rows[("k2", "")][2] == "1"
    # Records as CSV, chosen by the Accept header.
    accepted = await h.client.get(
        "/usage?tenant=other", headers={**h.as_(h.operator_key), "Accept": "text/csv"}
    )
    records = list(csv.DictReader(io.StringIO(accepted.text, newline="")))
    assert [(r["request_id"], r["tenant_id"], r["cost_usd"]) for r in records] == [
        ("r4", "other", "9.0")
    ]
    assert datetime.fromisoformat(records[0]["created_at"]) == DAY2
    # format=json wins over the Accept header.
    as_json = await h.client.get(
        "/usage?tenant=other&format=json", headers={**h.as_(h.operator_key), "Accept": "text/csv"}
    )
    assert as_json.json()["data"][0]["request_id"] == "r4"
    assert (await h.error(400, "GET", "/usage?format=xml"))["param"] == "format"


async def test_budget_events_newest_first(admin: AdminHarness) -> None:
    h = admin
    await h.tenant("acme")
    await h.tenant("other")
    now = datetime.now(UTC)
    async with h.context.sessions.begin() as session:
        for i, (tenant, kind) in enumerate(
            [
                ("acme", "soft_cap"),
                ("acme", "hard_cap"),
                ("other", "soft_cap"),
                ("acme", "downgrade"),
            ]
        ):
            session.add(
                BudgetEvent(
                    tenant_id=tenant,
                    budget_id=f"b{i}",
                    subject_id="*",
                    period_key="2026-03",
                    kind=kind,
                    spent_usd=float(i),
                    limit_usd=1.0,
                    created_at=now + timedelta(seconds=i),
                )
            )
    events: list[dict[str, Any]] = (await h.ok("GET", "/tenants/acme/events"))["data"]
    assert [e["kind"] for e in events] == ["downgrade", "hard_cap", "soft_cap"]
    assert events[0]["budget_id"] == "b3" and events[0]["spent_usd"] == 3.0
    newest = (await h.ok("GET", "/tenants/acme/events?limit=1"))["data"]
    assert [e["kind"] for e in newest] == ["downgrade"]
    older = (await h.ok("GET", f"/tenants/acme/events?before={newest[0]['id']}"))["data"]
    assert [e["kind"] for e in older] == ["hard_cap", "soft_cap"]
    await h.error(404, "GET", "/tenants/nobody/events")


async def test_one_request_is_looked_up_by_its_id(admin: AdminHarness) -> None:
    """ "What happened to my request?" without SQL: every record of one request id (a refused
    request has one too), tenant-isolated like the rest of the API."""
    h = admin
    await _ledger(h)
    await h.tenant("acme")
    await h.tenant("other")
    async with h.context.sessions.begin() as session:
        session.add(usage_row("req_refused", DAY2, key="k1", status=429, cost=0.0))
        # A client may choose its own ids, so two tenants can share one.
        session.add(usage_row("shared-id", DAY1, tenant="acme", cost=0.5))
        session.add(usage_row("shared-id", DAY2, tenant="other", cost=0.25))
    found = await h.ok("GET", "/usage/requests/req_refused")
    assert [(r["request_id"], r["status"], r["outcome"]) for r in found["data"]] == [
        ("req_refused", 429, "error")
    ]
    assert found["has_more"] is False
    shared = await h.ok("GET", "/usage/requests/shared-id")
    assert [r["tenant_id"] for r in shared["data"]] == ["other", "acme"]  # newest first
    # The same lookup as a filter of GET /usage, combinable with the others.
    assert await _ids(h, "request_id=shared-id&tenant=acme") == ["shared-id"]
    assert await _ids(h, "request_id=r2") == ["r2"]

    acme_admin = await h.tenant_admin("acme")
    mine = await h.ok("GET", "/usage/requests/shared-id", key=acme_admin)
    assert [r["tenant_id"] for r in mine["data"]] == ["acme"]
    # Another tenant's request looks exactly like one that does not exist.
    theirs = await h.error(404, "GET", "/usage/requests/r4", key=acme_admin)
    nobody = await h.error(404, "GET", "/usage/requests/req_nobody", key=acme_admin)
    assert (
        theirs
        == nobody
        == {
            "message": "request not found",
            "type": "not_found_error",
            "param": None,
            "code": "not_found",
        }
    )
    assert await _ids(h, "request_id=r4") == ["r4"]
    filtered = await h.ok("GET", "/usage?request_id=r4", key=acme_admin)
    assert filtered["data"] == []
    # Not the shape of any id the gateway records: 404 without a query.
    await h.error(404, "GET", "/usage/requests/no%20such%20id")
    await h.error(404, "GET", "/usage/requests/" + "x" * 129)


async def test_costs_have_no_float_noise_in_json_or_csv(admin: AdminHarness) -> None:
    """Records written before costs were rounded at the source (1.3499999999999998e-06 is 1
    prompt and 2 completion tokens at 0.15 and 0.60 per million), and sums that SQL adds up
    in binary floating point (0.1 + 0.2), are reported at 1e-10 USD."""
    h = admin
    noisy = (1 * 0.15 + 2 * 0.6) / 1_000_000
    assert repr(noisy) == "1.3499999999999998e-06"  # the noise this test is about
    async with h.context.sessions.begin() as session:
        session.add(usage_row("n1", DAY1, tenant="t", model="m", cost=noisy))
        session.add(usage_row("n2", DAY2, tenant="t", model="m", cost=0.1))
        session.add(usage_row("n3", DAY2, tenant="t", model="m", cost=0.2))
    records = (await h.ok("GET", "/usage?tenant=t"))["data"]
    assert [r["cost_usd"] for r in records] == [0.2, 0.1, 1.35e-06]
    raw = (await h.call("GET", "/usage?tenant=t&group_by=day")).text
    assert '"cost_usd":0.3' in raw.replace(" ", "") and "0.30000000000000004" not in raw
    assert "1.3499999999999998" not in (await h.call("GET", "/usage?tenant=t")).text
    as_csv = await h.client.get("/usage?tenant=t&format=csv", headers=h.as_(h.operator_key))
    costs = [r["cost_usd"] for r in csv.DictReader(io.StringIO(as_csv.text, newline=""))]
    assert costs == ["0.2", "0.1", "0.00000135"]
    totals = await h.client.get(
        "/usage?tenant=t&group_by=model&format=csv", headers=h.as_(h.operator_key)
    )
    row = next(csv.DictReader(io.StringIO(totals.text, newline="")))
    assert row["cost_usd"] == "0.30000135"
