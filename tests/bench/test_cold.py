"""A smoke run of `python -m bench.cold`: every alternative it compares is timed (the figures
come from full runs, never from this test)."""

from __future__ import annotations

from bench.cold import run


def test_cold_times_each_alternative() -> None:
    figures = run(calls=3)
    assert len(figures) == 9
    assert all(micros > 0 for micros in figures.values())
