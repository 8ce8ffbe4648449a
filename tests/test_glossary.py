"""The glossary parses, covers the course's terms in English and Chinese, and its linker links
each term's first use once, outside headings, code, math and links."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tlhelpers import glossary
from tlhelpers.glossary import Term, link_markdown, parse

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "notebooks" / "glossary.md"

SMALL = """# Glossary

<a id="fine-tuning"></a>
**Fine-tuning** · 微调 — Training a pretrained network further. First taught in [03a](03a_loss_transfer.ipynb).
<!-- aliases: fine-tune, fine-tuned -->

<a id="negative-transfer"></a>
**Negative transfer** · 负迁移 — Transfer that hurts.

<a id="batchnorm"></a>
**BatchNorm** · 批量归一化 — Normalises each channel.

<a id="seed"></a>
**Seed** · 随机种子 — Fixes the random numbers.
"""


def _terms() -> list[Term]:
    return parse(SMALL)


def test_parse_reads_names_chinese_and_aliases():
    terms = _terms()
    assert [t.slug for t in terms] == ["fine-tuning", "negative-transfer", "batchnorm", "seed"]
    assert terms[0].names == ("Fine-tuning", "fine-tune", "fine-tuned")
    assert terms[0].chinese == "微调" and terms[1].aliases == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<a id="x"></a>\nX is a thing\n', "entry line must follow"),
        ('<a id="x"></a>\n**X** · 甲 — a.\n\n<a id="x"></a>\n**Y** · 乙 — b.\n', "used twice"),
        ('<a id="x"></a>\n**X** · 甲 — a.\n\n<a id="y"></a>\n**x** · 乙 — b.\n', "also a name"),
    ],
)
def test_parse_refuses_malformed_entries(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        parse(text, "g.md")


def test_first_use_linked_once_with_its_own_case_and_plural():
    texts = [
        "# 03a · Fine-tuning and seeds\n\nWe fine-tune with three seeds.",
        "More fine-tuning, another seed.",
    ]
    new, linked = link_markdown(texts, _terms())
    assert new[0] == (
        "# 03a · Fine-tuning and seeds\n\n"
        "We [fine-tune](glossary.md#fine-tuning) with three [seeds](glossary.md#seed)."
    )
    assert new[1] == texts[1]
    assert sorted(linked) == ["fine-tuning", "seed"]
    again, linked_again = link_markdown(new, _terms())
    assert again == new and linked_again == []  # idempotent


def test_nothing_linked_in_headings_code_math_links_html_or_words_containing_a_name():
    text = (
        '## Seed and BatchNorm\n\n`seed = 0`, $seed$, [a seed](x.md), <a href="y.md">seed</a>, '
        "https://x.org/seed, seedless, re-seed, batchnorm\n\n```\nseed\n```\n"
    )
    new, linked = link_markdown([text], _terms())
    assert new == [text] and linked == []  # BatchNorm matches only with its case


def test_longer_term_is_linked_before_a_shorter_name_inside_it():
    terms = [*_terms(), *parse('<a id="transfer"></a>\n**Transfer** · 迁移 — Reuse.\n')]
    new, linked = link_markdown(["Negative transfer is a kind of transfer."], terms)
    assert new == [
        "[Negative transfer](glossary.md#negative-transfer) is a kind of "
        "[transfer](glossary.md#transfer)."
    ]


def test_a_name_inside_a_longer_term_is_not_a_use_of_the_shorter_one():
    terms = [*_terms(), *parse('<a id="transfer"></a>\n**Transfer** · 迁移 — Reuse.\n')]
    text = "[Negative transfer](glossary.md#negative-transfer), then negative transfer again."
    assert link_markdown([text], terms) == ([text], [])


def test_an_earlier_unlinked_use_is_linked_even_if_a_later_one_is():
    texts = ["The seed matters.", "A [seed](glossary.md#seed)."]
    new, linked = link_markdown(texts, _terms())
    assert linked == ["seed"] and new[0] == "The [seed](glossary.md#seed) matters."


def _notebook(path: Path, *markdown: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown]
    nb.cells.insert(1, nbformat.v4.new_code_cell("seed = 0  # seed"))
    nbformat.write(nb, path)
    return path


def test_cli_check_then_link_then_check(tmp_path: Path, capsys):
    (tmp_path / "glossary.md").write_text(SMALL)
    nb = _notebook(tmp_path / "03a_x.ipynb", "# 03a · X\n\nWe fine-tune.", "Seeds vary.")
    before = nb.read_text()
    assert glossary.main(["link", "--check", str(nb)]) == 1
    assert "fine-tuning, seed" in capsys.readouterr().out and nb.read_text() == before
    assert glossary.main(["link", str(nb)]) == 0
    cells = json.loads(nb.read_text())["cells"]
    assert "".join(cells[2]["source"]) == "[Seeds](glossary.md#seed) vary."
    assert "".join(cells[1]["source"]) == "seed = 0  # seed"  # code untouched
    assert glossary.main(["link", "--check", str(nb)]) == 0


# --- the course's glossary ----------------------------------------------------------------------

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_course_glossary_parses_and_is_complete():
    terms = glossary.read(GLOSSARY)
    assert 60 <= len(terms) <= 120
    for t in terms:
        assert CJK.search(t.chinese), f"{t.slug}: a Chinese term"
        assert t.slug == re.sub(r"[^a-z0-9]+", "-", t.slug).strip("-")
    slugs = {t.slug for t in terms}
    wanted = {
        "transfer-learning", "fine-tuning", "linear-probe", "batchnorm", "adabn", "l2-sp",
        "lwf", "delta", "bss", "knowledge-distillation", "mmd", "coral", "dann", "logme",
        "leep", "ece", "temperature-scaling", "tar-at-far", "triplet-loss", "arcface",
        "ledoit-wolf", "bootstrap", "bonferroni", "confidence-interval", "seed",
        "negative-transfer", "catastrophic-forgetting", "frobenius-norm", "sha256",
    }  # fmt: skip
    assert wanted <= slugs, sorted(wanted - slugs)


def test_course_glossary_links_point_at_existing_notebooks():
    text = GLOSSARY.read_text()
    for target in re.findall(r"\]\(([^)#]+\.ipynb)\)", text):
        assert (GLOSSARY.parent / target).is_file(), target
