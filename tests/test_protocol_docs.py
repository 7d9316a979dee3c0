"""docs/protocols/ is generated from the protocol YAMLs and must be current."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_ir.protocol import PAIRING_RULES, list_protocols
from bench_ir.protocol_docs import protocol_markdown, write_protocol_pages

DOCS = Path(__file__).resolve().parent.parent / "docs" / "protocols"


@pytest.mark.parametrize("name", list_protocols())
def test_committed_protocol_page_matches_its_yaml(name):
    assert (DOCS / f"{name}.md").read_text(encoding="utf-8") == protocol_markdown(name), (
        f"docs/protocols/{name}.md is stale: run `bench-ir docs`")


def test_protocol_page_states_counts_layout_pairing_synthesis_crop_metric_and_average():
    page = protocol_markdown("5deg")
    for fragment in ("1,111 images", "`deblur/gopro/input`", "pairing `sots`", "σ=25", "truncated (floor)",
                     "multiple of 16", "**M1**", "`denoise-25`", "table2_5deg.csv"):
        assert fragment in page, fragment


def test_write_protocol_pages_writes_one_page_per_protocol_and_an_index(tmp_path):
    paths = write_protocol_pages(tmp_path)
    assert {p.name for p in paths} == {f"{n}.md" for n in list_protocols()} | {"README.md"}


def test_protocol_page_explains_each_pairing_rule_it_uses_with_an_example():
    page = protocol_markdown("5deg")
    assert "## Pairing rules" in page
    assert "- `sots`: the target is the input's name up to the first '_'" in page
    assert "`0001_0.8_0.2.jpg` → `0001.png`" in page and "`rain-001.png` → `norain-001.png`" in page
    assert "- `raindrop`" not in page  # only the rules of this protocol


def test_the_committed_index_explains_every_pairing_rule(tmp_path):
    write_protocol_pages(tmp_path)
    assert (DOCS / "README.md").read_text(encoding="utf-8") == (tmp_path / "README.md").read_text(encoding="utf-8")
    assert all(f"- `{rule}`: " in (DOCS / "README.md").read_text(encoding="utf-8") for rule in PAIRING_RULES)
