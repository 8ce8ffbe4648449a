"""nbval runs every notebook here at its defaults (``make test``). As the cells run, their
printed words are added up per notebook (:func:`tlhelpers.lessons.printed_words`: stream text
and the plain text of displayed values), and the cell that takes a notebook over the lesson's
limit (:data:`tlhelpers.lessons.MAX_PRINTED_WORDS`) fails, naming the count: a lesson shows a
results table, not a wall of printed sentences."""

from __future__ import annotations

import pytest

from tlhelpers.lessons import MAX_PRINTED_WORDS, printed_words

#: notebook path -> words printed by the cells run so far (one notebook runs on one worker).
_PRINTED: dict[str, int] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)
    if call.when != "call" or outputs is None or not report.passed:
        return
    key = str(item.path)
    words = printed_words({"cells": [{"cell_type": "code", "outputs": list(outputs)}]})
    before = _PRINTED.get(key, 0)
    _PRINTED[key] = before + words
    if before <= MAX_PRINTED_WORDS < _PRINTED[key]:  # only the cell that crosses the limit
        report.outcome = "failed"
        report.longrepr = (
            f"{item.path.name} has printed {_PRINTED[key]} words by this cell; a lesson prints "
            f"at most {MAX_PRINTED_WORDS} (show a results table, print verdict sentences only "
            "where the text discusses them)"
        )
