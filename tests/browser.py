"""Shared plumbing for the kit's browser tests: the system Chromium driven by Playwright.

Nothing here downloads a browser (no ``playwright install``): Playwright's Python
package drives Debian's ``chromium`` (``/usr/bin/chromium``, or ``$CHROMIUM``).
Used by tests/test_browser.py (JupyterLab) and the book's browser test; the copy in
the coordination folder must stay byte-identical to this file.

Typical use::

    from browser import ConsoleErrors, launch, require_browser  # tests/ is on sys.path under pytest

    def test_page(tmp_path):
        require_browser()  # pytest.skip with the reason when Chromium/Playwright is missing
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            errors = ConsoleErrors(page)
            page.goto(url)
            ...
            errors.check()  # AssertionError listing every console error and page error
            browser.close()
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

#: Environment variable naming the Chromium executable (default ``/usr/bin/chromium``).
CHROMIUM_ENV = "CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Headless flags. Without the background-networking ones Chromium keeps calling home, and
#: on a closed network those connections are refused (console noise, slow start).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` or ``/usr/bin/chromium``; None if not executable."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    resolved = shutil.which(path)
    return resolved if resolved and os.access(resolved, os.X_OK) else None


def skip_reason() -> str | None:
    """Why a browser test cannot run here (no Chromium, no Playwright), or None if it can."""
    if chromium_path() is None:
        where = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
        return (
            f"browser test skipped: no Chromium at {where} (install Debian's `chromium`, "
            f"e.g. `apt-get install -y chromium`, or set ${CHROMIUM_ENV}; .ci/run does this)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser test skipped: Playwright's Python package is missing (make setup)"
    return None


def require_browser() -> None:
    """``pytest.skip`` with a plain reason when no browser test can run here."""
    import pytest

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


def launch(playwright: Any, *, user_data_dir: str | None = None, **kwargs: Any) -> Any:
    """A headless system Chromium with a fresh profile: a ``BrowserContext``.

    ``playwright`` is the object from ``sync_playwright()``. A persistent context is
    used so the profile folder is ours (a fresh tmp dir unless ``user_data_dir`` is
    given) and nothing of a user's Chromium profile is read. ``kwargs`` go to
    ``launch_persistent_context`` (e.g. ``viewport``). Close it with ``.close()``;
    the tmp profile folder is removed then.
    """
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError(skip_reason())
    own_dir = user_data_dir is None
    profile = tempfile.mkdtemp(prefix="chromium-profile-") if own_dir else user_data_dir
    kwargs.setdefault("viewport", {"width": 1400, "height": 1000})
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=exe, headless=True, args=list(CHROMIUM_ARGS), **kwargs
    )
    if own_dir:
        close = context.close

        def close_and_remove_profile(*args: Any, **kw: Any) -> None:
            try:
                close(*args, **kw)
            finally:
                shutil.rmtree(profile, ignore_errors=True)

        context.close = close_and_remove_profile
    return context


@dataclass
class ConsoleErrors:
    """Collects a page's console errors and uncaught page errors.

    ``ignore``: substrings of messages that are not the page's fault (e.g. a favicon 404).
    """

    page: Any
    ignore: tuple[str, ...] = ()
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self._add(f"pageerror: {exc}"))

    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            self._add(
                f"console.error: {msg.text} ({loc.get('url', '?')}:{loc.get('lineNumber', '?')})"
            )

    def _add(self, text: str) -> None:
        if not any(s in text for s in self.ignore):
            self.messages.append(text)

    def check(self) -> None:
        """AssertionError listing every collected error, if any."""
        assert not self.messages, "browser console errors:\n" + "\n".join(self.messages)
