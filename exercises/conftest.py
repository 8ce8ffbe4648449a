"""``pytest exercises/solutions`` runs the solution copies under nbval, every check strict.

``make test`` does not collect them: ``tests/test_nbgrader.py`` executes each solution copy once,
under ``nbgrader autograde`` (full points and no cell raising). This file is for a contributor
who debugs one exercise: ``pytest exercises/solutions/ex03_loss_transfer.ipynb``.

Kernels inherit the environment: ``TLHELPERS_EXERCISES_STRICT=1`` turns a check that does
not pass into an ``AssertionError`` (a failing cell); widgets stay headless.
"""

import os

os.environ["TLHELPERS_EXERCISES_STRICT"] = "1"
os.environ.setdefault("TLHELPERS_WIDGETS", "0")
