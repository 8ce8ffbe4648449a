"""Repository hygiene: data/ is documented with correct hashes; CI calls the README's test command;
`make help` lists every target; the pre-commit hooks run the venv's tools (offline)."""

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


def _phony_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for t in line.split()}


def test_make_help_lists_every_phony_target():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^help:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no help target"
    listed = set(re.findall(r'@echo "make ([\w-]+)', recipe.group(1)))
    phony = _phony_targets()
    assert phony and phony <= listed, f"missing from make help: {sorted(phony - listed)}"
    assert listed <= phony, f"make help lists non-targets: {sorted(listed - phony)}"
    defined = set(re.findall(r"^([\w-]+):(?!=)", makefile, re.M))
    assert phony <= defined, f".PHONY names without a rule: {sorted(phony - defined)}"


def test_strip_and_lint_cover_the_same_notebooks():
    makefile = (ROOT / "Makefile").read_text()
    strip = re.search(r"^strip:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    verify = next(line for line in lint.splitlines() if "--verify" in line)
    globs = set(re.findall(r"\S+\.ipynb", verify))
    assert globs == {"notebooks/*.ipynb", "exercises/*/*.ipynb"}
    assert globs <= set(re.findall(r"\S+\.ipynb", strip))


def test_pre_commit_hooks_are_local_and_use_the_venv_tools():
    """No hook repository is downloaded: every hook is `repo: local` and runs .venv's tools."""
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert {r["repo"] for r in config["repos"]} == {"local"}
    assert {h["id"] for h in hooks} >= {"ruff-check", "ruff-format", "nbstripout"}
    for hook in hooks:
        assert hook["language"] == "system" and hook["entry"].startswith(".venv/bin/"), hook
    makefile = (ROOT / "Makefile").read_text()
    keys = re.search(r'--extra-keys "([^"]+)"', makefile).group(1)
    nbstripout = next(h for h in hooks if h["id"] == "nbstripout")
    assert f'--extra-keys "{keys}"' in nbstripout["entry"]
