"""nbval runs the solution copies (pyproject testpaths): every check must pass, so checks raise.

Kernels inherit the environment: ``TLHELPERS_EXERCISES_STRICT=1`` turns a check that does
not pass into an ``AssertionError`` (a failing cell); widgets stay headless.
"""

import os

os.environ["TLHELPERS_EXERCISES_STRICT"] = "1"
os.environ.setdefault("TLHELPERS_WIDGETS", "0")
