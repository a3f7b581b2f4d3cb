"""A seconds-long smoke run of `python -m bench.timeline`: the probes load into the gateway (a
renamed probed function fails here) and a request's marks come back in the order it runs."""

from __future__ import annotations

import argparse

from bench.timeline import START, run


def test_timeline_marks_each_stage_of_a_request_in_order() -> None:
    report = run(argparse.Namespace(rate=50.0, seconds=1.0))
    assert report["errors"] == 0 and report["requests_marked"] >= 40
    order = [row["mark"] for row in report["timeline"]]
    assert order[0] == START and order[-1] == "handler end"
    for earlier, later in (
        ("authenticate <", "routing plan >"),
        ("routing plan <", "upstream request >"),
        ("upstream request >", "upstream bytes >"),
        ("upstream call <", "send response headers >"),
        ("send response headers <", "send body <"),
    ):
        assert order.index(earlier) < order.index(later)
