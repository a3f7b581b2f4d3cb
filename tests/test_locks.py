"""The hashed lock files (decision 0007) install the same way on every machine."""

from __future__ import annotations

import re
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {pkg.lower(): version for pkg, version in PIN.findall((REQUIREMENTS / name).read_text())}


def test_no_lock_carries_the_generating_machines_package_sources() -> None:
    # pip-compile copies a local pip configuration's index URLs and wheel folders into its
    # output unless told not to; another machine would then look for them.
    for lock in sorted(REQUIREMENTS.glob("*.lock")):
        lines = lock.read_text().splitlines()
        assert not [line for line in lines if line.startswith("--")], lock.name


def test_every_pin_has_a_hash() -> None:
    for lock in sorted(REQUIREMENTS.glob("*.lock")):
        blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.read_text())
        unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
        assert unhashed == [], lock.name


def test_the_bench_lock_keeps_the_test_locks_versions() -> None:
    # `make bench` installs bench.lock over the test environment: a package both pin must not
    # change version under the tests.
    bench, test = _pins("bench.lock"), _pins("test.lock")
    assert "matplotlib" in bench
    assert {name: v for name, v in bench.items() if test.get(name, v) != v} == {}
