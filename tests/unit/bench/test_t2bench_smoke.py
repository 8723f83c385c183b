"""`strata bench tier2` end to end on a tiny run: JSON, markdown and PNGs are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.tier2_bench import main
from bench.tier2_bench.picklatency import measure_pick_latency
from bench.tier2_bench.prompts import TextPool
from bench.tier2_bench.report import pick_result, write
from bench.tier2_bench.scenarios import SCENARIOS
from bench.tier2_bench.workloads import SharedPrefixCorpus, SharedPrefixSpec
from common import jsonutil

PNG = b"\x89PNG\r\n\x1a\n"


def test_quick_run_of_two_policies_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "--scenarios", "a",
            "--policies", "round-robin,gie-default",
            "--quick", "--scale", "0.05", "--pods", "2",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert rc == 0
    doc = jsonutil.loads((tmp_path / "results.json").read_bytes())
    a = doc["results"]["a"]
    assert {r["policy"] for r in a["runs"]} == {"round-robin", "gie-default"}
    assert a["knee_rate"] in {r["rate"] for r in a["runs"]}
    assert all(r["picks"] > 0 and r["ttft_p90_s"] is not None for r in a["runs"])
    md = (tmp_path / "summary.md").read_text()
    assert "| policy @ knee |" in md and "| gie-default |" in md
    assert (tmp_path / "scenario_a.png").read_bytes()[:8] == PNG
    err = capsys.readouterr().err
    assert "[a]" in err and "gie-default" in err and "done in" in err


def test_unknown_policy_and_scenario_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--policies", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--scenarios", "z", "--out", str(tmp_path)])


def test_pick_latency_rows_and_their_report(tmp_path: Path) -> None:
    spec = SharedPrefixSpec(groups=3, users=2, system_tokens=500, question_tokens=50)
    corpus = SharedPrefixCorpus(spec, TextPool(num_words=3000))
    rows = [
        measure_pick_latency(p, 16, corpus, warm_picks=150, timed_picks=50)
        for p in ("gie-default", "strata")
    ]
    for row in rows:
        assert row["endpoints"] == 16 and row["picks"] == 50
        assert 0 < row["pick_p50_us"] <= row["pick_p99_us"] <= row["pick_max_us"]
        assert row["pick_cpu_p99_us"] > 0 and row["build_request_p50_us"] > 0
    res = pick_result(SCENARIOS["g"], rows)
    (check,) = res["verdicts"]
    assert "16 endpoints" in check["check"]
    meta = {
        "command": "strata bench tier2 --scenarios g", "wall_s": 1.0, "profile": "p",
        "pods": 8, "seed": 0, "scale": 1.0, "quick": True, "policies": ["gie-default", "strata"],
    }  # fmt: skip
    write(tmp_path, meta, {"g": res})
    assert "| strata | 16 |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "scenario_g.png").read_bytes()[:8] == PNG
