"""Protocol files, registry cards and plugin cards are read once per process while nothing changes: commands over many
runs look the same protocol and the same cards up once per run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench_ir import cards, yamlio
from bench_ir.cards import find_card, list_cards
from bench_ir.protocol import load_protocol

AN_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def tiny_protocol(sigma: int = 15, title: str = "Tiny", include: str | None = None) -> str:
    """A one-task protocol (Gaussian denoising at ``sigma``), or with ``include`` a file that only names itself."""
    if include is not None:
        return f"include: {include}\nname: tiny-child\ntitle: {title}\n"
    return (f"name: tiny\ntitle: {title}\nversion: 1\ntasks:\n  - name: denoise\n    label: Denoise\n"
            f"    dataset: bsd\n    layouts: [{{target: clean}}]\n    noise: {{sigma: {sigma}}}\n")


def write_settled(path: Path, text: str, mtime_ns: int = AN_HOUR_AGO_NS) -> Path:
    """Write ``text`` to ``path`` and date it ``mtime_ns`` (an hour ago: an edit long finished)."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def yaml_reads(monkeypatch) -> list[Path]:
    """The files the YAML reader parses from now on, in order."""
    reads: list[Path] = []
    real = yamlio.read_yaml

    def counting(path: Path) -> dict:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(yamlio, "read_yaml", counting)
    return reads


def test_a_second_load_of_an_unchanged_file_does_not_parse_it_again(tmp_path, yaml_reads):
    path = write_settled(tmp_path / "tiny.yaml", tiny_protocol())
    first = load_protocol(path)
    assert load_protocol(path) is first
    assert yaml_reads == [path]


def test_a_shipped_protocol_by_name_is_parsed_once(yaml_reads):
    first = load_protocol("5deg")
    del yaml_reads[:]
    assert load_protocol("5deg") is first
    assert yaml_reads == []


def test_an_edited_file_is_read_again(tmp_path, yaml_reads):
    path = write_settled(tmp_path / "tiny.yaml", tiny_protocol(sigma=15))
    assert load_protocol(path).tasks[0].noise.sigma == 15
    write_settled(path, tiny_protocol(sigma=25), AN_HOUR_AGO_NS + 10**9)  # same size, later mtime
    assert load_protocol(path).tasks[0].noise.sigma == 25


def test_an_edited_included_file_is_read_again(tmp_path, yaml_reads):
    base = write_settled(tmp_path / "base.yaml", tiny_protocol(title="Base"))
    child = write_settled(tmp_path / "child.yaml", tiny_protocol(include="base.yaml"))
    assert load_protocol(child).version == 1
    write_settled(base, tiny_protocol(title="Base").replace("version: 1", "version: 22"))  # same mtime, other size
    assert load_protocol(child).version == 22


def test_a_file_created_where_an_include_looked_first_is_read(tmp_path):
    child = write_settled(tmp_path / "child.yaml", tiny_protocol(include="3deg"))
    shipped = [task.name for task in load_protocol("3deg").tasks]
    assert [task.name for task in load_protocol(child).tasks] == shipped  # no file '3deg' next to it: the shipped one
    write_settled(tmp_path / "3deg", tiny_protocol())
    assert [task.name for task in load_protocol(child).tasks] == ["denoise"]


def test_a_file_changed_just_now_is_read_again_even_with_the_same_mtime_and_size(tmp_path):
    """Filesystem times are coarse: two edits within one clock tick can leave the same mtime."""
    now = time.time_ns()
    path = write_settled(tmp_path / "tiny.yaml", tiny_protocol(sigma=15), now)
    assert load_protocol(path).tasks[0].noise.sigma == 15
    write_settled(path, tiny_protocol(sigma=25), now)
    assert load_protocol(path).tasks[0].noise.sigma == 25


def registry_card(description: str) -> str:
    """A model card of the example tiny-unet's factory whose ``description`` tells versions of the file apart."""
    return ("name: tiny-unet\ndisplay_name: TinyUNet\nfactory: tiny_unet:TinyUNet\nargs:\n  width: 16\n"
            f"expected_params: 33379\ndescription: {description}\n")


def registry_description(folder: Path) -> str:
    """The description of the card 'tiny-unet' of the registry ``folder``, as list_cards reads it."""
    return next(card.description for card in list_cards(folder) if card.name == "tiny-unet")


def test_a_registry_card_changed_just_now_is_read_again_even_with_the_same_mtime_and_size(tmp_path):
    """Filesystem times are coarse: two edits within one clock tick can leave the same mtime."""
    now = time.time_ns()
    card = write_settled(tmp_path / "tiny-unet.yaml", registry_card("first"), now)
    assert registry_description(tmp_path) == "first"
    write_settled(card, registry_card("other"), now)
    assert registry_description(tmp_path) == "other"


def test_the_plugin_scan_runs_once_for_many_card_lookups(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # a search path not scanned before
    scans: list[str] = []
    real = cards.metadata.entry_points

    def counting(**selection):
        scans.append(selection.get("group", ""))
        return real(**selection)

    monkeypatch.setattr(cards.metadata, "entry_points", counting)
    for _ in range(3):
        assert list_cards()
        assert find_card("mirage-t") is not None
        assert find_card("no-such-model") is None
    assert scans == [cards.ENTRY_POINT_GROUP]
