"""Repository hygiene: data/ is documented with correct hashes; CI calls the README's test command."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_data_file_is_documented_with_its_sha256():
    readme = (ROOT / "data" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M))
    files = sorted(
        str(p.relative_to(ROOT / "data"))
        for p in (ROOT / "data").rglob("*")
        if p.is_file() and p.name != "README.md"
    )
    assert sorted(rows) == files
    for name, sha in rows.items():
        assert hashlib.sha256((ROOT / "data" / name).read_bytes()).hexdigest() == sha, name


def test_kit_hashes_match_data_readme():
    from tlhelpers.data import FASHION_MNIST_FILES
    from tlhelpers.models import WEIGHTS

    readme = (ROOT / "data" / "README.md").read_text()
    for sha in FASHION_MNIST_FILES.values():
        assert sha in readme
    for name, wf in WEIGHTS.items():
        if wf.data_path is not None:  # every checkpoint the kit ships itself
            assert wf.sha256 in readme, name
            assert wf.size == (ROOT / "data" / wf.data_path).stat().st_size, name


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and re.search(r"^make test$", ci, re.M)


def test_test_markers_are_cell_tags_not_comments():
    """nbval reads tags such as ``nbval-ignore-output``; ``# NBVAL_...`` comments show to students."""
    import nbformat

    found = [
        f"{path.name} cell {i}"
        for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if re.search(r"#\s*NBVAL_", cell.source, re.I)
    ]
    assert not found, f"use a cell tag (e.g. nbval-ignore-output) instead: {found}"


def test_lab_settings_keep_prompts_away_from_the_first_cell():
    """make setup installs lab/overrides.json where JupyterLab reads the venv's settings."""
    import json

    overrides = json.loads((ROOT / "lab" / "overrides.json").read_text())
    news = overrides["@jupyterlab/apputils-extension:notification"]
    assert news == {"fetchNews": "false", "checkForUpdates": False}
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    makefile = (ROOT / "Makefile").read_text()
    assert "LAB_OVERRIDES = $(VENV)/share/jupyter/lab/settings/overrides.json" in makefile
    assert re.search(r"^setup: .*\$\(LAB_OVERRIDES\)", makefile, re.M)
