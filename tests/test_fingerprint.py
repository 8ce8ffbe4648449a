"""The platform fingerprint and the code version stored with numbers that are checked later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tlhelpers import fingerprint as fp

ROOT = Path(__file__).resolve().parent.parent


def test_fingerprint_names_cpu_kernels_versions_and_threads():
    f = fp.platform_fingerprint(threads=1)
    assert set(f) == set(fp.FINGERPRINT_FIELDS)
    assert f["threads"] == 1 and f["torch"] == torch.__version__
    assert f["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability()) and f["cpu"]
    assert fp.same_platform(f, dict(f))
    other = {**f, "cpu_capability": "DEFAULT" if f["cpu_capability"] != "DEFAULT" else "AVX2"}
    (line,) = fp.fingerprint_differences(other, f)
    assert line.startswith("cpu_capability: ") and "(stored) vs" in line and "(here)" in line
    assert fp.fingerprint_differences(None, f) == ["no platform fingerprint was stored"]


def test_the_kernel_set_follows_aten_cpu_capability():
    code = (
        "from tlhelpers.fingerprint import platform_fingerprint as f; print(f()['cpu_capability'])"
    )
    env = {"PYTHONPATH": str(ROOT), "ATEN_CPU_CAPABILITY": "default", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "DEFAULT"


def test_code_version_follows_imports_and_ignores_docstrings(tmp_path, monkeypatch):
    pkg = tmp_path / "tlhelpers"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "top.py").write_text(
        '"""Top."""\nfrom .low import f\n\n\ndef g():\n    from .sub import h\n    return f() + h()\n'
    )
    (pkg / "low.py").write_text('"""Low."""\n\n\ndef f():\n    """One."""\n    return 1\n')
    (pkg / "sub" / "__init__.py").write_text("def h():\n    return 2\n")
    (pkg / "other.py").write_text("X = 1\n")
    monkeypatch.setattr(fp, "_PACKAGE", pkg)
    v = fp.code_version(["tlhelpers.top"])
    assert v["modules"] == ["tlhelpers.low", "tlhelpers.sub", "tlhelpers.top"]
    (pkg / "low.py").write_text(
        '"""Low, reworded."""\n\n\ndef f():  # a comment\n    """Uno."""\n    return 1\n'
    )
    assert fp.code_version(["tlhelpers.top"])["sha256"] == v["sha256"]  # words only
    (pkg / "sub" / "__init__.py").write_text("def h():\n    return 3\n")
    assert fp.code_version(["tlhelpers.top"])["sha256"] != v["sha256"]  # code, even lazily imported
    assert (
        "tlhelpers.sub"
        not in fp.code_version(["tlhelpers.top"], exclude=["tlhelpers.sub"])["modules"]
    )
