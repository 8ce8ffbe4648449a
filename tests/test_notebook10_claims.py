"""Notebook 10's asserted claims at seed offsets not used while writing it.

The notebook asserts two claims (LogME's top source beats an average source; halving
spends fewer CPU seconds than exhaustive search). Each must hold at any seed, not only at
the default, so the notebook is run here, unchanged, at two other seed offsets with
``check_claims=True``: a claim that fails makes the run fail. The step counts are fixed by
the schedule and checked exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlhelpers.runner import run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "10_adaptive_transfer.ipynb"


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("seed", [2300, 6100])
def test_claims_hold_at_unused_seed_offsets(seed: int, tmp_path: Path):
    rec = run_notebook(NOTEBOOK, tmp_path, {"seed": seed, "check_claims": True}, timeout=600)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert rec.status == "ok", rec.error
    assert doc["status"] == "ok" and all(c["holds"] for c in doc["claims"]), doc["claims"]
    assert len(doc["claims"]) == 2
    res = doc["results"]
    assert res["steps_ratio"] == 120 / 384  # the default schedule: 5/16, the same in every pair
    for search in res["searches"].values():
        assert (search["halving"]["total_steps"], search["exhaustive"]["total_steps"]) == (120, 384)
