"""Three gateways sharing PostgreSQL and Redis enforce one limit, one budget, one revocation."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.replicas import prove

from tests.support.services import postgres_database


@pytest.mark.slow
def test_limits_budgets_and_revocation_hold_across_three_replicas(
    tmp_path: Path, redis_url: str
) -> None:
    with postgres_database() as database_url:
        result = prove(database_url, redis_url, tmp_path)
    print(result.report())
    assert result.problems() == []
    assert result.refused == 180 - result.admitted
    assert result.budget_admitted >= 19
