"""`explain --html`: one self-contained page; headless Chromium renders its step table and a token's heads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.explain.programs import TINY_WAT
from wasmformer.cli import EXIT_OK, main
from wasmformer.explain.html import page_data, render_page
from wasmformer.explain.heads import explain_tokens

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
RENDER_SECONDS = 120


def chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def rendered_dom(page, fragment: str = "") -> str:
    browser = chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                             page.resolve().as_uri() + fragment],
                            capture_output=True, text=True, timeout=RENDER_SECONDS)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory, universal):
    directory = tmp_path_factory.mktemp("html")
    source = directory / "tiny.wat"
    source.write_text(TINY_WAT)
    path = directory / "tiny.html"
    assert main(["explain", str(source), "--html", str(path), "-q"]) == EXIT_OK
    return path


def test_the_page_needs_no_network(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script src" not in text and "<link" not in text


def test_the_page_carries_the_steps_source_and_heads(page, tiny_run):
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page.read_text(),
                                re.S).group(1))
    assert len(data["steps"]) == len(tiny_run.steps) and "(func $square" in data["source"]
    # every token of the listed steps (up to the HTML cap) has its heads
    assert set(map(int, data["explained"])) == {p for step in tiny_run.steps for p in range(step.start, step.stop)}


def test_chromium_renders_the_step_table(page, tiny_run):
    dom = rendered_dom(page)
    rows = re.findall(r'<tr data-step="(\d+)"[^>]*>(.*?)</tr>', dom, re.S)
    assert [int(number) for number, _ in rows] == [step.number for step in tiny_run.steps]
    cells = dict(rows)
    assert "i32.const 3" in cells["2"] and "call1 $square" in cells["6"] and "mem[0x10..0x13]=09000000" in cells["12"]
    assert "(func $square" in dom  # the source beside the table


def test_a_token_link_highlights_the_positions_its_heads_attended(page, tiny_run):
    get = next(s for s in tiny_run.steps if s.function == "square" and s.instruction == "local.get 0")
    setter_record = tiny_run.steps[get.number - 2].start + 3  # step 7's local.set 0: its 4th value byte
    dom = rendered_dom(page, f"#token={get.start}")
    variable = re.search(r'<tr data-head="variable.bank0">(.*?)</tr>', dom, re.S).group(1)
    assert f'<td class="num">{setter_record}</td>' in variable
    attended = {int(p) for p in re.findall(r'class="tok[a-z ]*attended"[^>]*data-pos="(\d+)"', dom)}
    assert setter_record in attended
    assert re.search(rf'class="tok[a-z ]*selected" data-pos="{get.start}"', dom)


def test_page_data_is_compact(universal, tiny_run, tiny_ids):
    positions = [step.start - 1 for step in tiny_run.steps[:3]]
    data = page_data(tiny_run, tiny_run.steps[:3], explain_tokens(universal, tiny_ids, positions), None, None)
    # each head is described once, and each token's rows point at those descriptions
    assert len(data["heads"]) == len(data["explained"][positions[0] + 1]["heads"])
    embedded = render_page({**data, "source": "</script><b>"}).split('id="data">')[1].split("</script>")[0]
    assert "<b>" in embedded  # the source's "</script>" is escaped, so the data ends where it should
