"""Protocol files: every shipped protocol validates; includes, task subsets and errors behave as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_ir.protocol import list_protocols, load_protocol
from bench_ir.yamlio import SpecError


@pytest.mark.parametrize("name", list_protocols())
def test_every_shipped_protocol_loads_and_its_average_names_real_tasks(name):
    protocol = load_protocol(name)
    task_names = {t.name for t in protocol.tasks}
    assert protocol.tasks
    assert set(protocol.average) <= task_names
    assert len(protocol.sha256) == 64


def test_all_issue_protocols_are_shipped():
    assert {"3deg", "5deg", "dehaze", "derain", "denoise", "cdd11", "allweather", "uieb", "udc"} <= set(
        list_protocols())


def test_5deg_average_uses_sigma_25_only_but_scores_all_three_sigmas():
    protocol = load_protocol("5deg")
    assert protocol.average == ["dehaze", "derain", "denoise-25", "deblur", "lowlight"]
    assert [t.noise.sigma for t in protocol.tasks if t.noise] == [15, 25, 50]


def test_3deg_crops_to_a_multiple_of_16_and_uses_the_skimage_uniform_convention():
    protocol = load_protocol("3deg")
    assert (protocol.crop.rule, protocol.crop.base, protocol.convention) == ("center_multiple", 16, "M1")


def test_cdd11_has_eleven_subsets_scored_at_full_resolution():
    protocol = load_protocol("cdd11")
    assert len(protocol.tasks) == 11 and protocol.crop.rule == "none"
    assert protocol.average == [t.name for t in protocol.tasks]


def test_single_task_protocol_inherits_the_task_and_conventions_from_its_include():
    dehaze, three = load_protocol("dehaze"), load_protocol("3deg")
    assert [t.name for t in dehaze.tasks] == ["dehaze"]
    assert dehaze.tasks[0] == three.tasks[0]
    assert dehaze.crop == three.crop and dehaze.convention == three.convention


def test_protocol_hash_changes_when_content_changes(tmp_path):
    base = load_protocol("derain")
    path = tmp_path / "derain-copy.yaml"
    path.write_text(open(base.source).read().replace("include: 3deg.yaml", f"include: {load_protocol('3deg').source}"))
    assert load_protocol(path).sha256 == base.sha256
    path.write_text(path.read_text().replace("name: derain", "name: mine"))  # a shipped name keeps its content
    renamed = load_protocol(path).sha256
    path.write_text(path.read_text().replace("version: 1", "version: 2"))
    assert load_protocol(path).sha256 not in (base.sha256, renamed)


def test_average_naming_an_unknown_task_is_rejected(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntitle: P\nversion: 1\naverage: [ghost]\n"
                    "tasks:\n  - {name: a, label: A, dataset: d, layouts: [{target: t}]}\n")
    with pytest.raises(SpecError, match="field 'average': unknown task"):
        load_protocol(path)


def test_unknown_pairing_rule_is_rejected_with_the_allowed_values(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntitle: P\nversion: 1\n"
                    "tasks:\n  - {name: a, label: A, dataset: d, layouts: [{target: t, input: i, pairing: fuzzy}]}\n")
    with pytest.raises(SpecError, match="'fuzzy' is not one of"):
        load_protocol(path)


@pytest.mark.parametrize(("head", "task_extra", "message"), [
    ("crop: {rule: center_multiple, base: 0}\n", "", r"crop: 'base' must be >= 1"),
    ("", ", crop: {rule: pad_multiple, base: 0}", r"task 'a': crop: 'base' must be >= 1"),
    ("convention: M9\n", "", r"field 'convention': unknown metric convention 'M9'"),
], ids=["protocol crop", "task crop", "convention"])
def test_a_crop_base_below_one_or_an_unknown_convention_is_rejected_when_read(tmp_path, head, task_extra, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\ntitle: P\nversion: 1\n{head}"
                    f"tasks:\n  - {{name: a, label: A, dataset: d, layouts: [{{target: t}}]{task_extra}}}\n")
    with pytest.raises(SpecError, match=message):
        load_protocol(path)


def test_a_protocol_without_tasks_is_rejected(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntitle: P\nversion: 1\ntasks: []\n")
    with pytest.raises(SpecError, match="field 'tasks' must list at least one task"):
        load_protocol(path)


def test_unknown_protocol_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean: 5deg"):
        load_protocol("5degs")


def test_a_protocol_name_is_found_in_any_letter_case_as_model_names_are():
    assert load_protocol("5DEG").name == "5deg"
    assert load_protocol("AllWeather").sha256 == load_protocol("allweather").sha256


def test_a_protocol_keeping_some_tasks_of_another_needs_its_own_name(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text(f"include: {load_protocol('5deg').source}\nonly_tasks: [dehaze, derain, deblur, lowlight]\n")
    with pytest.raises(SpecError, match=r"four\.yaml: a protocol that keeps some tasks of .*5deg\.yaml "
                                        r"\(only_tasks\) needs a 'name' of its own: it would go by '5deg'"):
        load_protocol(path)


def test_a_protocol_keeping_some_tasks_drops_the_published_table_whose_average_is_over_all_of_them(tmp_path):
    path = tmp_path / "four.yaml"
    path.write_text(f"name: four\ninclude: {load_protocol('5deg').source}\n"
                    "only_tasks: [dehaze, derain, deblur, lowlight]\n")
    four = load_protocol(path)
    assert (four.name, four.leaderboard_table, four.paper_table) == ("four", None, "")
    assert four.average == ["dehaze", "derain", "deblur", "lowlight"]
    assert load_protocol("dehaze").leaderboard_table == "tableB_single_degradation.csv"  # named by the file itself


NOISY_TASK = """name: mine
title: mine
version: 1
convention: M1
tasks:
  - name: t
    label: T
    dataset: d
    noise: {noise}
    layouts: [{layout}]
"""


@pytest.mark.parametrize(("noise", "layout", "message"), [
    ("{sigma: 50}", "{input: d/in, target: d/gt}",
     r"task 't': 'noise' synthesises the input from the target, but its layouts name input folder\(s\) \['d/in'\]"),
    ("{sigma: 30}", "{target: d/gt}", r"task 't': noise sigma 30.0 is not in 'stream_sigmas' \[15.0, 25.0, 50.0\]"),
    ("{sigma: 30, stream_sigmas: [30, 30]}", "{target: d/gt}", r"noise 'stream_sigmas' lists a sigma twice"),
    ("{sigma: -5, stream: per_image}", "{target: d/gt}", r"noise 'sigma' must be above 0, got -5"),
])
def test_a_noise_spec_a_run_could_not_draw_as_written_is_refused_when_read(tmp_path, noise, layout, message):
    path = tmp_path / "mine.yaml"
    path.write_text(NOISY_TASK.format(noise=noise, layout=layout))
    with pytest.raises(SpecError, match=message):
        load_protocol(path)


@pytest.mark.parametrize("written", ["3deg", "3deg.yaml"])
def test_a_users_protocol_includes_a_shipped_one_by_its_name(tmp_path, written):
    path = tmp_path / "mine.yaml"
    path.write_text(f"name: mine\ninclude: {written}\nonly_tasks: [derain]\n")
    mine = load_protocol(path)
    assert [task.name for task in mine.tasks] == ["derain"]
    assert mine.tasks[0].layouts == load_protocol("3deg").task("derain").layouts


def test_a_protocol_file_taking_a_shipped_name_with_other_content_is_refused(tmp_path):
    shipped = Path(load_protocol("3deg").source).read_text()
    (tmp_path / "3deg.yaml").write_text(shipped.replace("convention: M1", "convention: M2"))
    with pytest.raises(SpecError, match=r"3deg\.yaml: name '3deg' is a shipped protocol's, but this file defines "
                                        r"other test sets, metric or synthesis; give it a name of its own"):
        load_protocol(tmp_path / "3deg.yaml")
    (tmp_path / "copy.yaml").write_text(shipped)  # an exact copy is the shipped protocol
    assert load_protocol(tmp_path / "copy.yaml").sha256 == load_protocol("3deg").sha256
