"""The course book (``make book``): a static site built from ``make run``'s executed notebooks.

A tiny course (three notebooks: one with a formula and a figure, one that fails, one with two
figures; students' and teachers' exercise copies) is run once per module by the real runner,
then built once by the real Sphinx; the tests read that site. The staging checks (missing
runs, a failed run without an executed copy, no exercises folder) need no Sphinx.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from tlhelpers import book
from tlhelpers.runner import run_all

# Kernels and Sphinx builds: tens of seconds, so out of `make test-fast`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PARAMS = 'x: int = 1  # the input\nout_dir: str = ""  # where results.json goes\n'
SAVE = (
    "import json, os\n"
    "doc = {'results': {'y': x * 2, 'gap': 0.125}, 'key_numbers': ['y', 'gap'],\n"
    "       'claims': [{'sentence': 'alpha vs beta: +0.125 (95% CI +0.05 to +0.2): better.',\n"
    "                   'holds': True}]}\n"
    "open(os.path.join(out_dir, 'results.json'), 'w').write(json.dumps(doc))\n"
)
FIGURE = (
    "import io\nimport matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
    "from IPython.display import Image, display\n"
    "for i in range({n}):  # PNG outputs whatever the kernel's matplotlib backend\n"
    "    fig, ax = plt.subplots(figsize=(2, 2))\n"
    "    ax.plot([0, 1], [0, i + 1])\n"
    "    buf = io.BytesIO()\n"
    "    fig.savefig(buf, format='png')\n"
    "    display(Image(buf.getvalue()))\n"
    "    plt.close(fig)\n"
)
VERDICT = "alpha vs beta (toy metric, 4 paired seeds): +0.125 (95% CI +0.050 to +0.200): better."
SECRET = "SECRET-SOLUTION-42"
ANSWER = "TEACHER-ANSWER-7"
GLOSSARY = """# Glossary · 术语表

<a id="seed"></a>
**Seed** · 随机种子 — Fixes the random numbers. First taught in [00](00_alpha.ipynb).

<a id="loss-function"></a>
**Loss function** · 损失函数 — What training minimises. First taught in [09](09_gone.ipynb).
"""
README = """# Tiny course

A test course. See [the guide](CONTRIBUTING.md).

## Two commands

Not on the front page: NOT-ON-FRONT-PAGE.

## Course map

| notebook | what it teaches |
|---|---|
| [00 alpha](notebooks/00_alpha.ipynb) | a formula and a figure |
| [01 beta](notebooks/01_beta.ipynb) | a failure, see [data](data/README.md) |
| [02 gamma](notebooks/02_gamma.ipynb) | two figures |

## Troubleshooting

nothing
"""


def _notebook(path: Path, title: str, *code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(title),
        params,
        *[nbformat.v4.new_code_cell(c) for c in code],
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _course(root: Path) -> list[Path]:
    """A repository in miniature: README, three notebooks, the real book/ config, exercises."""
    shutil.copytree(ROOT / "book", root / "book")
    (root / "README.md").write_text(README)
    nbs = root / "notebooks"
    alpha = _notebook(
        nbs / "00_alpha.ipynb",
        "# 00 · Alpha\n\nThe loss $\\mathcal{L}(\\theta) = \\theta^2$ has the gradient\n\n"
        "$$\\nabla_\\theta \\mathcal{L} = 2\\,\\theta$$\n\n"
        "Each [seed](glossary.md#seed) is a run, stored in "
        "`data/layer_transfer/a_file_name_too_long_for_the_width_of_a_phone_screen.json`. "
        "*Checked: [notes/00_alpha.md](notes/00_alpha.md); [notes/02_gamma.md](notes/02_gamma.md).*",
        FIGURE.format(n=1),
        f"print({VERDICT!r})",
        "import os\nprint('wrote', os.path.join(out_dir, 'results.json'))\n"
        "long_name_for_a_value = [x for x in range(3)]  # a comment long enough to be wider than a phone's screen",
        SAVE,
    )
    beta = _notebook(
        nbs / "01_beta.ipynb",
        "# 01 · Beta\n\nThis one fails.",
        "raise RuntimeError('deliberate failure for the book test')",
        SAVE,
    )
    gamma = _notebook(nbs / "02_gamma.ipynb", "# 02 · Gamma", FIGURE.format(n=2), SAVE)
    (nbs / "glossary.md").write_text(GLOSSARY)
    (nbs / "notes").mkdir()
    (nbs / "notes" / "00_alpha.md").write_text(
        "# 00 notes\n\nSeeds tried: 0, 100. See [alpha](../00_alpha.ipynb) and [t](../../tests/x.py).\n"
    )
    (nbs / "answers").mkdir()
    (nbs / "answers" / "00_alpha.md").write_text(
        f"# 00 · Alpha: answers\n\n1. {ANSWER}: y is {{{{y}}}}, the gap {{{{gap:.2f}}}}.\n"
    )
    ex = root / "exercises"
    _notebook(ex / "student" / "e1_first.ipynb", "# Exercise 1\n\nSTUDENT-COPY: fill in.")
    _notebook(ex / "solutions" / "e1_first.ipynb", f"# Exercise 1\n\n{SECRET}")
    _notebook(ex / "source" / "e1_first.ipynb", f"# Exercise 1\n\n{SECRET}")
    return [alpha, beta, gamma]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """(root, build, notebooks): the tiny course, run once by the real runner."""
    root = tmp_path_factory.mktemp("course")
    notebooks = _course(root)
    records = run_all(notebooks, root / "build", {"00_alpha": {"x": 4}}, timeout=300)
    assert [r.status for r in records] == ["ok", "failed", "ok"], records
    return root, root / "build", notebooks


@pytest.fixture(scope="module")
def site(course) -> Path:
    root, build, _ = course
    return book.build_book(build, build / "book", root=root)


class _Page(HTMLParser):
    """Links (href/src) and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append((tag, name, value))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def _text(path: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text()))


def _site_bytes(site: Path) -> int:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file())


def test_front_page_is_the_course_map_with_links_to_every_chapter(site):
    index = site / "index.html"
    text = _text(index)
    assert "Tiny course" in text and "Course map" in text and "a formula and a figure" in text
    assert "NOT-ON-FRONT-PAGE" not in text  # other README sections stay in the README
    hrefs = {v for _, _, v in _parse(index).links}
    for stem in ("00_alpha", "01_beta", "02_gamma"):
        assert f"notebooks/{stem}.html" in hrefs
    assert "CONTRIBUTING.md" not in index.read_text()  # a repository file: link dropped


def test_every_reference_page_is_staged_and_listed_on_the_front_page(site):
    """The README's long sections live in book/reference/; each is a page the index links to."""
    pages = sorted((ROOT / "book" / "reference").glob("*.md"))
    assert {p.stem for p in pages} >= {"teacher", "setup", "sweeps", "data"}
    hrefs = {v for _, _, v in _parse(site / "index.html").links}
    for page in pages:
        assert (site / "reference" / f"{page.stem}.html").is_file(), page.name
        assert f"reference/{page.stem}.html" in hrefs, page.name
    teacher = _text(site / "reference" / "teacher.html")
    assert "make grade" in teacher and "nbgrader" in teacher
    from tlhelpers.classroom import exercise_rows  # the generated table, every exercise notebook

    assert all(r.notebook in teacher for r in exercise_rows())


def test_readme_links_every_reference_page_and_each_exists():
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((book/reference/[^)#\s]+)\)", readme))
    pages = {f"book/reference/{p.name}" for p in (ROOT / "book" / "reference").glob("*.md")}
    assert linked == pages, linked ^ pages
    assert "teacher's walkthrough" in readme


def test_links_are_pointed_at_staged_pages_or_dropped():
    text = (
        "[a](../../notebooks/00_alpha.ipynb) [b](../../notebooks/09_gone.ipynb) "
        "[c](setup.md) [d](missing.md) [e](../../lab/overrides.json) [f](https://example.org/x)"
    )
    got = book._book_links(text, "book/reference/x.md", {"00_alpha.ipynb"}, {"setup.md"})
    assert got == (
        "[a](../notebooks/00_alpha.ipynb) b [c](../reference/setup.md) d e [f](https://example.org/x)"
    )
    readme = "[m](notebooks/00_alpha.ipynb) [t](book/reference/setup.md) [g](ARCHITECTURE.md)"
    got = book._book_links(readme, "README.md", {"00_alpha.ipynb"}, {"setup.md"})
    assert got == "[m](notebooks/00_alpha.ipynb) [t](reference/setup.md) g"


def test_every_chapter_shows_its_figures_verdicts_and_parameters(site, course):
    _, build, _ = course
    for stem, figures in (("00_alpha", 1), ("02_gamma", 2)):
        executed = json.loads((build / stem / f"{stem}.ipynb").read_text())
        pngs = [
            o
            for c in executed["cells"]
            for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})
        ]
        assert len(pngs) == figures
        page = site / "notebooks" / f"{stem}.html"
        imgs = [v for t, a, v in _parse(page).links if t == "img" and "_images/" in v]
        assert len(imgs) == figures, imgs
        for src in imgs:
            assert (page.parent / src).resolve().stat().st_size > 500
        text = _text(page)
        assert "This run" in text and "Parameters" in text and "the input" in text
    alpha = _text(site / "notebooks" / "00_alpha.html")
    assert VERDICT in alpha  # the printed verdict, as printed
    assert "y = 8" in alpha and "gap = 0.125" in alpha  # key numbers of the run with x=4
    assert re.search(r"`?x`? 4 \(default 1\) the input", alpha.replace("| ", "")), alpha[:3000]
    assert "(holds)" in alpha  # the checked claim


def test_chapter_links_download_its_notebooks(site, course):
    _, build, _ = course
    page = site / "notebooks" / "00_alpha.html"
    downloads = [v for t, a, v in _parse(page).links if "_downloads/" in v]
    targets = {Path(unquote(v)).name for v in downloads}
    assert targets == {"00_alpha.ipynb"} and len(downloads) == 2
    files = [(page.parent / unquote(v)).resolve() for v in downloads]
    executed = [json.loads(f.read_text()) for f in files]
    with_outputs = [nb for nb in executed if any(c.get("outputs") for c in nb["cells"])]
    assert len(with_outputs) == 1  # one executed copy, one without outputs
    assert "localhost:8888" not in page.read_text()


def test_glossary_is_a_page_and_chapters_link_its_entries(site):
    glossary = site / "notebooks" / "glossary.html"
    assert "随机种子" in _text(glossary) and "glossary-seed" in _parse(glossary).ids
    links = {v for _, _, v in _parse(site / "notebooks" / "00_alpha.html").links}
    assert "glossary.html#glossary-seed" in links
    assert "09_gone" not in glossary.read_text()  # a chapter not in the book: link dropped


def test_notes_are_pages_and_links_to_missing_notes_are_dropped(site):
    notes = site / "notebooks" / "notes" / "00_alpha.html"
    assert "Seeds tried: 0, 100" in _text(notes)
    assert "../00_alpha.html" in {v for _, _, v in _parse(notes).links}
    alpha = site / "notebooks" / "00_alpha.html"
    hrefs = {v for _, _, v in _parse(alpha).links}
    assert "notes/00_alpha.html" in hrefs
    assert not any("02_gamma" in h for h in hrefs if "notes" in h)
    assert "notes/02_gamma.md" in _text(alpha)  # as plain text


def test_students_site_has_no_answers(site):
    assert not (site / "answers").exists() and not (site / "notebooks" / "answers").exists()
    assert all(ANSWER not in p.read_text(errors="replace") for p in site.rglob("*") if p.is_file())


def test_pages_hold_no_machine_paths_or_papermill_cells_and_the_run_box_comes_last(site, course):
    root, _, _ = course
    html = (site / "notebooks" / "00_alpha.html").read_text()
    assert "wrote results.json" in _text(site / "notebooks" / "00_alpha.html")
    assert ".attempt-" not in html and str(root) not in html
    assert "injected-parameters" not in html
    assert html.index(VERDICT) < html.index("This run")  # the teaching first, the run box after


def test_teacher_guide_fills_placeholders_from_the_run(course, tmp_path):
    root, build, notebooks = course
    html = book.build_teacher_guide(build, tmp_path / "teacher", root=root, notebooks=notebooks)
    text = _text(html / "answers" / "00_alpha.html")
    assert f"{ANSWER}: y is 8, the gap 0.12" in text  # the run with x=4
    assert "Teacher’s guide" in _text(html / "index.html")  # Sphinx's typographic apostrophe


def test_placeholders():
    res = {"means": {"adam": 0.91234, "sgd": [0.5, 0.6]}, "n": 3}
    text = "{{means.adam:.2f}} {{ n }} {{means.sgd.1:+.1f}} {{means.adam}}"
    assert book.fill_placeholders(text, res, "a.md") == "0.91 3 +0.6 0.912"
    with pytest.raises(ValueError, match=r"a\.md.*means\.adm.*'adm'.*means.*\['adam', 'sgd'\]"):
        book.fill_placeholders("{{means.adm}}", res, "a.md")
    with pytest.raises(ValueError, match="a.md.*no(ne)?"):
        book.fill_placeholders("{{n}}", None, "a.md")
    assert book.fill_placeholders("no placeholders", None, "a.md") == "no placeholders"


def test_failed_run_gets_a_page_with_the_error(site):
    page = site / "notebooks" / "01_beta.html"
    text = _text(page)
    html = page.read_text()
    assert html.index("<h1") < html.index("run failed")  # the banner is under the title
    assert "#papermill-error-cell" in {v for _, _, v in _parse(page).links}
    assert "RuntimeError: deliberate failure for the book test" in text
    assert "tlhelpers.runner run notebooks/01_beta.ipynb" in text
    run = _text(site / "run.html")
    assert "failed" in run and "deliberate failure" in run


def test_run_page_has_the_summary_table_date_and_machine(site, course):
    _, build, _ = course
    info = json.loads((build / "run_info.json").read_text())
    text = _text(site / "run.html")
    assert info["started"] in text and info["machine"]["cpu"] in text
    for stem in ("00_alpha", "01_beta", "02_gamma"):
        assert f"{stem}.ipynb" in text
    assert "y=8" in text and "gap=0.125" in text
    summary = {r["notebook"]: r for r in json.loads((build / "summary.json").read_text())}
    assert str(summary["00_alpha.ipynb"]["wall_time_s"]) in text


def test_students_exercises_only(site):
    assert (site / "exercises" / "e1_first.html").is_file()
    assert "STUDENT-COPY" in _text(site / "exercises" / "e1_first.html")
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".ipynb", ".js", ".txt", ".json"):
            assert SECRET not in path.read_text(errors="replace"), path
    assert not any("solution" in str(p.relative_to(site)).lower() for p in site.rglob("*"))


def test_no_broken_internal_links(site):
    pages = {p.resolve(): _parse(p) for p in site.rglob("*.html")}
    checked = 0
    for path, page in pages.items():
        if "_static" in path.relative_to(site.resolve()).parts:
            continue  # the theme's template fragments (webpack-macros.html), never linked
        for _, _, value in page.links:
            url = urlsplit(value)
            if url.scheme or value.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            assert target.is_file() or (target / "index.html").is_file(), (path, value)
            if url.fragment and target.suffix == ".html":
                assert url.fragment in pages[target].ids, (path, value)
            checked += 1
    assert checked > 100  # the navigation alone links every page


def test_offline_no_remote_scripts_styles_or_fonts(site):
    remote = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)=["'](?:https?:)?//""")
    css_remote = re.compile(r"""(?:@import|url\()\s*["']?(?:https?:)?//""")
    for html in site.rglob("*.html"):
        found = remote.findall(html.read_text())
        assert not found, (html, found)
    for css in site.rglob("*.css"):
        assert not css_remote.search(css.read_text(errors="replace")), css
    assert (site / "_static" / "mathjax" / "MathJax.js").is_file()
    assert (
        'src="../_static/mathjax/MathJax.js' in (site / "notebooks" / "00_alpha.html").read_text()
    )


def test_site_under_50_mb(site):
    assert _site_bytes(site) < 50e6


def test_missing_runs_are_named_with_the_command_and_nothing_is_built(course, tmp_path, capsys):
    root, build, notebooks = course
    partial = tmp_path / "build"
    shutil.copytree(build / "00_alpha", partial / "00_alpha")
    out = tmp_path / "book"
    with pytest.raises(book.MissingRunsError) as err:
        book.build_book(partial, out, root=root)
    msg = str(err.value)
    assert "02_gamma.ipynb" in msg and "01_beta.ipynb" in msg and "00_alpha.ipynb" not in msg
    assert "make run" in msg and "tlhelpers.runner run notebooks/01_beta.ipynb" in msg
    assert not out.exists()
    assert book.main(["--build", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "No executed copy" in capsys.readouterr().err
    assert not out.exists()


def test_failed_run_without_executed_copy_shows_error_and_log(course, tmp_path):
    root, build, notebooks = course
    copy = tmp_path / "build"
    shutil.copytree(build, copy, ignore=shutil.ignore_patterns("book"))
    (copy / "01_beta" / "01_beta.ipynb").unlink()
    (copy / "01_beta" / "run.log").write_text("kernel died: LOG-TAIL-MARKER\n")
    chapters = book.find_chapters(copy, notebooks)
    assert [c.status for c in chapters] == ["ok", "failed", "ok"]
    site = book.build_book(copy, tmp_path / "book", root=root)
    text = _text(site / "notebooks" / "01_beta.html")
    assert "01 · Beta" in text and "run failed" in text
    assert "deliberate failure" in text and "LOG-TAIL-MARKER" in text
    downloads = [
        v for _, _, v in _parse(site / "notebooks" / "01_beta.html").links if "_downloads/" in v
    ]
    assert len(downloads) == 1  # the notebook without outputs: there is no executed copy


def test_a_notebook_edited_after_its_run_is_flagged(course, tmp_path):
    _, build, notebooks = course
    edited = tmp_path / "02_gamma.ipynb"
    nb = nbformat.read(notebooks[2], as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A new paragraph."))
    nbformat.write(nb, edited)
    same, changed = book.find_chapters(build, [notebooks[2], edited])
    assert (same.source_changed, changed.source_changed) == (False, True)
    assert "differs from the copy that was run" in book._header(changed, {}, "")


def test_status_without_summary_comes_from_the_executed_copy(course, tmp_path):
    _, build, notebooks = course
    copy = tmp_path / "build"
    shutil.copytree(build, copy, ignore=shutil.ignore_patterns("book"))
    (copy / "summary.json").unlink()  # e.g. a later run of one notebook rewrote it
    chapters = book.find_chapters(copy, notebooks)
    assert [c.status for c in chapters] == ["ok", "failed", "ok"]
    assert "deliberate failure" in chapters[1].error
    assert chapters[0].key_numbers == {"y": 8, "gap": 0.125}


def test_no_exercises_folder_means_no_exercises_section(course, tmp_path):
    root, build, notebooks = course
    assert book.student_exercises(tmp_path / "exercises" / "student") == []
    chapters = book.find_chapters(build, notebooks)
    page = book.front_page(README, chapters, [], {})
    assert "Exercises" not in page and "notebooks/00_alpha" in page
    assert "[data]" not in page and "data/README.md" not in page


def _serve(site: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_browser_renders_formulas_and_images_without_console_errors(site):
    from browser import ConsoleErrors, launch, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    requests: list[str] = []
    rendered = "document.querySelectorAll('.MathJax, .MathJax_Display').length"
    try:
        with sync_playwright() as pw:
            context = launch(pw)
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            errors = ConsoleErrors(page)
            page.goto(f"{base}/index.html")
            page.wait_for_function(f"{rendered} >= 2", timeout=60_000)  # the front formula
            assert page.locator("table a[href='notebooks/00_alpha.html']").count() == 1
            page.goto(f"{base}/notebooks/00_alpha.html")
            page.wait_for_function(f"{rendered} >= 2", timeout=60_000)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.querySelectorAll('.MathJax_Error, merror').length") == 0
            images = page.evaluate(
                "Array.from(document.images).filter(i => i.src.includes('_images/'))"
                ".map(i => i.complete && i.naturalWidth > 0)"
            )
            assert images == [True], images
            errors.check()
            context.close()
    finally:
        server.shutdown()
    assert requests and all(u.startswith(base) for u in requests), [
        u for u in requests if not u.startswith(base)
    ]


LAYOUT = """() => {
  const col = document.querySelector('.bd-article').getBoundingClientRect().width;
  const imgs = Array.from(document.images).filter(i => i.src.includes('_images/'))
    .map(i => ({shown: i.getBoundingClientRect().width, natural: i.naturalWidth}));
  const top = s => { const e = Array.from(document.querySelectorAll(s)).pop();
                     return e ? e.getBoundingClientRect().top + window.scrollY : null; };
  return {scroll: document.documentElement.scrollWidth, view: window.innerWidth, col, imgs,
          box: top('.admonition.book-run'), verdict: top('.cell_output')};
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_chapter_reads_on_a_phone_and_a_desktop(site, width):
    """No sideways scrolling of the page, figures at >= 80% of their size or of the column,
    the run box after the lesson."""
    from browser import launch, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    server = _serve(site)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as pw:
            context = launch(pw, viewport={"width": width, "height": 844})
            page = context.new_page()
            page.goto(f"{base}/notebooks/00_alpha.html")
            page.wait_for_load_state("networkidle")
            got = page.evaluate(LAYOUT)
            context.close()
    finally:
        server.shutdown()
    assert got["scroll"] <= got["view"], got
    assert got["imgs"], got
    for img in got["imgs"]:
        assert img["shown"] >= 0.8 * min(img["natural"], got["col"]), got
    assert got["box"] is not None and got["box"] > got["verdict"] > 0, got


@pytest.mark.notebooks
def test_real_course_chapter(tmp_path):
    """The real README and notebook 00 (smoke parameters): every figure is on its page."""
    smoke = json.loads((ROOT / "tests" / "smoke_params.json").read_text())
    nb = ROOT / "notebooks" / "00_welcome.ipynb"
    build = tmp_path / "build"
    (record,) = run_all([nb], build, {"00_welcome": smoke["00_welcome"]})
    assert record.status == "ok", record.error
    site = book.build_book(build, tmp_path / "book", notebooks=[nb], exercises=tmp_path / "none")
    executed = json.loads((build / "00_welcome" / nb.name).read_text())
    pngs = sum(
        "image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", [])
    )
    page = site / "notebooks" / "00_welcome.html"
    imgs = [v for t, _, v in _parse(page).links if t == "img" and "_images/" in v]
    assert pngs >= 1 and len(imgs) == pngs
    assert "Course map" in _text(site / "index.html")
    assert 'class="math' in page.read_text()


def test_a_finding_is_listed_as_a_finding_with_its_chance():
    from tlhelpers.book import _claim_status

    assert _claim_status({"holds": True}) == "holds"  # results.json written before chances existed
    assert _claim_status({"holds": False, "asserted": True, "chance": 0.99}) == "DOES NOT HOLD"
    assert _claim_status({"holds": True, "asserted": True, "chance": 0.99}) == "holds"
    found = _claim_status({"holds": True, "asserted": False, "chance": 0.598})
    assert found == "finding, not asserted: holds here; chance to hold at a fresh seed offset 0.60"
    assert "does not hold here" in _claim_status({"holds": False, "asserted": False, "chance": 0.2})
