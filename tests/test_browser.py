"""The JupyterLab experience in a real browser: what a student meets in ``make lab``.

JupyterLab from the venv on loopback (free port, token, its own runtime/config/settings
folders in tmp, ``TLHELPERS_WIDGETS=1``) and a headless system Chromium driven by
Playwright (tests/browser.py; nothing downloads a browser). Each widget notebook,
prepared with its smoke parameters (papermill ``prepare_only``), is opened and run
whole: every ``interact`` cell must render as controls (not ``interactive(children=...)``
text), changing one control must redraw its figure, a callback that raises must show its
message in the widget's output, no news prompt may cover the outputs, and the console
must stay free of errors. Screenshots go to build/browser/.

Skips, saying why, when Chromium or Playwright is missing (.ci/run installs Chromium).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser import ConsoleErrors, launch, skip_reason

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "browser"
SMOKE = json.loads((ROOT / "tests" / "smoke_params.json").read_text())

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]

#: Seconds for one notebook's Run All in Lab at smoke parameters (a loaded 2-core CPU).
RUN_TIMEOUT_S = 420

#: The raising case (notebook 01): 4 images, but the dropdown offers image 5.
RAISING_CELL = (
    "# browser test: a callback that raises must show its message in the widget\n"
    "interact(normalization_demo, images=Fixed(train.images[:4]), size=[32], index=[0, 5]);"
)
RAISING_MESSAGE = "index=5 but there are only 4 images."

#: Console messages that are not a student-visible fault. ``fit``'s tqdm bars (``leave=False``)
#: close their widget right after the last step; under load Lab renders the bar after that
#: and logs "widget model not found" (seen in 03a and 04 at load 12-16, not in 01/02). Every
#: ``interact`` widget is checked separately: rendered as controls, redrawn on a change.
BENIGN_CONSOLE = ("widget model not found",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(tmp: Path) -> Path:
    """Notebooks 01-04 with widgets, smoke parameters injected, in ``tmp/notebooks``."""
    import nbformat
    import papermill as pm

    nbdir = tmp / "notebooks"
    nbdir.mkdir()
    for path in sorted((ROOT / "notebooks").glob("0[1-4]*.ipynb")):
        if "interact(" not in path.read_text():
            continue
        params = {**SMOKE[path.stem], "out_dir": str(tmp / "results" / path.stem)}
        params["check_claims"] = False  # the papermill test checks the claims
        out = nbdir / path.name
        pm.execute_notebook(str(path), str(out), parameters=params, prepare_only=True,
                            progress_bar=False, log_output=False)  # fmt: skip
        if path.stem.startswith("01"):
            nb = nbformat.read(out, as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell(RAISING_CELL))
            nbformat.write(nb, out)
    return nbdir


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str, Path]]:
    """A JupyterLab server on loopback: ``(base_url, token, notebooks_dir)``."""
    tmp = tmp_path_factory.mktemp("lab")
    nbdir = _prepare(tmp)
    settings = tmp / "app-settings"
    settings.mkdir()
    shutil.copy(ROOT / "lab" / "overrides.json", settings / "overrides.json")  # = make setup's
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "TLHELPERS_WIDGETS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
        f"--LabApp.app_settings_dir={settings}", "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (tmp / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield base, token, nbdir
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser_context(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = launch(pw)
        yield context
        context.close()


def _cells(page):
    return page.locator(".jp-NotebookPanel:visible .jp-Cell.jp-CodeCell")


def _run_all(page, name: str) -> None:
    """Run > Run All Cells, then wait until every code cell has an execution count."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    panel = page.locator(".jp-NotebookPanel:visible")
    # the input area's own prompt: a collapsed (hidden) input also shows an empty placeholder prompt
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        texts = [t.strip() for t in prompts.all_text_contents()]
        if texts and all(re.fullmatch(r"\[\d+\]:", t) for t in texts):
            return
        if "[*]:" not in texts:  # nothing queued, some cell not run: Run All stopped at an error
            time.sleep(2)
            texts = [t.strip() for t in prompts.all_text_contents()]
            if "[*]:" not in texts and not all(re.fullmatch(r"\[\d+\]:", t) for t in texts):
                tracebacks = panel.locator(".jp-OutputArea-output").all_text_contents()
                raise AssertionError(
                    f"{name}: Run All stopped:\n"
                    + "\n".join(t for t in tracebacks if "Error" in t or "Traceback" in t)[-3000:]
                )
        assert time.monotonic() < deadline, f"{name}: Run All took over {RUN_TIMEOUT_S} s"
        time.sleep(1)


def _image_src(box) -> str:
    img = box.locator(".jp-OutputArea img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src") or ""


def _change_dropdown(box) -> None:
    select = box.locator("select:not([multiple])").first
    options = select.locator("option").all_inner_texts()
    current = select.input_value()
    select.select_option(label=next(o for o in options if o != current))


def _change_slider(box) -> None:
    handle = box.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")


def _change_multiselect(box) -> None:
    select = box.locator("select[multiple]").first
    options = select.locator("option").all_inner_texts()
    select.select_option(label=options[:2])  # two of them: a Ctrl-click in a real session


#: Per notebook: how to change its first widget (a real control of each kind is exercised).
CHANGES: dict[str, Callable] = {
    "01_preprocessing": _change_dropdown,
    "02_model_choice": _change_dropdown,
    "03a_loss_transfer": _change_slider,
    "04_same_type_transfer": _change_multiselect,
}


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(CHANGES))
def test_widget_notebook_in_lab(lab, browser_context, stem: str):
    base, token, nbdir = lab
    assert (nbdir / f"{stem}.ipynb").exists(), f"{stem} has no interact cell any more"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser_context.new_page()
    errors = ConsoleErrors(page, ignore=BENIGN_CONSOLE)
    try:
        # a workspace per notebook: the default one would reopen (and start kernels for) the
        # notebooks of the earlier tests
        page.goto(f"{base}/lab/workspaces/{stem}/tree/{stem}.ipynb?token={token}")
        page.locator(".jp-NotebookPanel:visible").wait_for(timeout=120_000)
        # the kernel from the notebook's metadata starts without a picker dialog
        page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(
            timeout=120_000
        )
        assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").inner_text()
        _run_all(page, stem)
        page.screenshot(path=str(SHOTS / f"{stem}.png"))

        n_interact = sum(
            1
            for c in json.loads((nbdir / f"{stem}.ipynb").read_text())["cells"]
            if c["cell_type"] == "code" and re.search(r"^interact\(", "".join(c["source"]), re.M)
        )
        boxes = page.locator(".jp-NotebookPanel:visible .widget-interact")
        assert boxes.count() == n_interact, (
            f"{stem}: {boxes.count()} widgets for {n_interact} cells"
        )
        text = page.locator(".jp-NotebookPanel:visible .jp-Notebook").text_content()
        assert "interactive(children=" not in text, f"{stem}: a widget rendered as text"
        for i in range(n_interact):
            box = boxes.nth(i)
            assert box.locator(".jupyter-widgets.widget-inline-hbox, select").count() >= 1

        box = boxes.first
        box.scroll_into_view_if_needed()
        before = _image_src(box)
        box.screenshot(path=str(SHOTS / f"{stem}-widget-before.png"))
        CHANGES[stem](box)
        deadline = time.monotonic() + 180
        while _image_src(box) == before:
            assert time.monotonic() < deadline, f"{stem}: the figure did not redraw"
            time.sleep(0.5)
        box.screenshot(path=str(SHOTS / f"{stem}-widget-after.png"))
        assert "Error:" not in box.locator(".jp-OutputArea").inner_text()

        if stem.startswith("01"):  # the raising case: its message, in its own output
            bad = boxes.last
            bad.scroll_into_view_if_needed()
            bad.locator("select").last.select_option(label="5")
            out = bad.locator(".jp-OutputArea")
            out.get_by_text(RAISING_MESSAGE, exact=False).wait_for(timeout=60_000)
            assert out.locator("img").count() == 0, "a blank figure beside the error"
            bad.screenshot(path=str(SHOTS / f"{stem}-raising-callback.png"))

        # nothing covers the outputs: no news prompt, no other notification toast
        toasts = page.locator(".Toastify__toast")
        assert toasts.count() == 0, toasts.all_inner_texts()
        errors.check()
    finally:
        page.screenshot(path=str(SHOTS / f"{stem}-last.png"))
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}") as r:
            sessions = json.load(r)
        for s in sessions:  # free the kernel's memory before the next notebook
            req = urllib.request.Request(
                f"{base}/api/sessions/{s['id']}?token={token}", method="DELETE"
            )
            urllib.request.urlopen(req).close()
        page.close()
