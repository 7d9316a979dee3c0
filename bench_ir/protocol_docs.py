"""One Markdown page per protocol, generated from its YAML: what a number of that protocol means.

The same text backs `bench-ir list protocols --details` and the committed pages in docs/protocols/
(`bench-ir docs` regenerates them; a test checks they are current). `bench-ir docs FILE|FOLDER --out FOLDER` writes
the pages of a researcher's own protocol files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench_ir.atomic import write_text_atomic
from bench_ir.protocol import (
    PAIRING_EXPLAINED,
    PAIRING_RULES,
    Protocol,
    TaskSpec,
    check_distinct_protocol_names,
    list_protocols,
    load_protocol,
)
from bench_ir.resources import protocols_dir

__all__ = ["protocol_markdown", "write_protocol_pages", "shipped_protocol_pages", "NOISE_ORDER_TEXT"]

NOISE_ORDER_TEXT = (
    "The official test loops (MIRAGE, PromptIR, AdaIR, AirNet) draw the same stream in the order `os.listdir` "
    "returns, which depends on the file system, so the noise each image gets differs between machines; bench-ir "
    "sorts the names (`--noise-order sorted`, the default), which gives the same noisy inputs everywhere. "
    "`--noise-order listdir` (a `run` and suite option, recorded as `noise_order` in the run manifest) draws in "
    "this machine's `os.listdir` order instead and so gives what the official script prints here: with the same "
    "order the noisy inputs are byte-identical and PSNR agrees with the unmodified official loop to 1e-7 dB, while "
    "between the two orders single images differ by up to 0.053 dB PSNR and 0.004 SSIM and a task mean by about "
    "0.02 dB (0.018 dB measured on a small set). Published denoising numbers carry that uncertainty, since the "
    "authors' directory order is unknown."
)


def _crop_text(protocol: Protocol, task: TaskSpec | None = None) -> str:
    crop = protocol.crop_for(task) if task else protocol.crop
    if crop.rule == "center_multiple":
        return (f"centre crop of input and target to the largest multiple of {crop.base} in each dimension "
                "(the odd remainder pixel at the bottom/right; the reference `crop_img`)")
    if crop.rule == "pad_multiple":
        return (f"input padded at the bottom/right to a multiple of {crop.base} ({crop.pad_mode}), output cropped "
                "back; target untouched")
    return "none: full resolution (the model's own size rule applies)"


def _synthesis_text(task: TaskSpec) -> str:
    if not task.noise:
        return "none (degraded images are read from the input folder)"
    noise = task.noise
    rounding = "truncated (floor) to uint8" if noise.truncate else "rounded to uint8"
    if noise.stream == "reference":
        stream = (f"one NumPy `RandomState({noise.seed})` stream drawn image by image in sorted file order, sigma "
                  f"{', '.join(f'{s:g}' for s in noise.stream_sigmas)} in turn (the reference test loop; "
                  "`--noise-order listdir` draws in `os.listdir` order instead, see *Noise order* below)")
    else:
        stream = f"an independent generator per (image, task, seed {noise.seed})"
    return (f"Gaussian noise σ={noise.sigma:g} added to the cropped uint8 clean image in float64, clipped to "
            f"[0, 255], {rounding}; {stream}")


def _generated_from(protocol: Protocol) -> str:
    """The page's first line: the YAML file it was made from and how to make it again."""
    source = Path(protocol.source)
    if source.resolve().parent == protocols_dir().resolve():
        return (f"*Generated from `protocols/{source.name}` (version {protocol.version}); "
                "do not edit by hand — run `bench-ir docs`.*")
    return (f"*Generated from `{source.name}` (version {protocol.version}); do not edit by hand — run "
            f"`bench-ir docs {source.name} --out FOLDER`.*")


def protocol_markdown(protocol: Protocol | str) -> str:
    """The documentation page of ``protocol`` as Markdown."""
    from bench_ir.metrics.conventions import get_convention

    protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    convention = get_convention(protocol.convention)
    lines = [
        f"# `{protocol.name}` — {protocol.title}",
        "",
        _generated_from(protocol),
        "",
        protocol.description.strip(),
        "",
        "| | |",
        "|---|---|",
        f"| paper table | {protocol.paper_table or '—'} |",
        f"| reference | {protocol.reference.strip() or '—'} |",
        f"| test-time geometry | {_crop_text(protocol)} |",
        f"| metric convention | **{convention.id}** ({convention.name}): {convention.describe()} |",
        f"| other conventions (`--convention`) | {', '.join(protocol.alternative_conventions) or '—'} |",
        f"| Average column | {', '.join(f'`{t}`' for t in protocol.average) or '— (no Average column)'} |",
        f"| leaderboard | `registry/leaderboard/{protocol.leaderboard_table}` |" if protocol.leaderboard_table
        else "| leaderboard | — |",
        "",
        "## Tasks",
        "",
    ]
    for task in protocol.tasks:
        count = f"{task.expected_count:,} images" if task.expected_count else "count not fixed by the sources"
        lines += [f"### `{task.name}` — {task.label}", "",
                  f"- dataset: `{task.dataset}` ({count})",
                  f"- synthesis: {_synthesis_text(task)}"]
        if task.crop:
            lines.append(f"- geometry (task override): {_crop_text(protocol, task)}")
        if task.leaderboard:
            subset = task.leaderboard.get("subset")
            lines.append(f"- leaderboard column: {task.leaderboard.get('dataset')}{f' / {subset}' if subset else ''}")
        lines.append("- accepted layouts under `--data-root` (first found wins):")
        for layout in task.layouts:
            source = f"`{layout.input}`, " if layout.input else ""
            example = PAIRING_EXPLAINED[layout.pairing]
            pairing = (f"pairing `{layout.pairing}` (`{example.example_input}` → `{example.example_target}`)"
                       if layout.input else "input synthesised, no pairing")
            lines.append(f"  - {source}target `{layout.target}`, {pairing} — {layout.source}")
        sample = " + ".join(task.sample.degradations) if task.sample.degradations else "the task's own noise"
        lines += [f"- `--sample` variant: built-in photos degraded by {sample}", ""]
    rules = sorted({layout.pairing for task in protocol.tasks for layout in task.layouts if layout.input},
                   key=PAIRING_RULES.index)
    if rules:
        lines += ["## Pairing rules", "", "How an input file finds its target in a layout with an input folder:", ""]
        lines += [f"- `{rule}`: {PAIRING_EXPLAINED[rule].explanation} Example: "
                  f"`{PAIRING_EXPLAINED[rule].example_input}` → `{PAIRING_EXPLAINED[rule].example_target}`."
                  for rule in rules]
        lines.append("")
    if any(t.noise and t.noise.stream == "reference" for t in protocol.tasks):
        lines += ["## Noise order", "", NOISE_ORDER_TEXT, ""]
    if protocol.notes.strip():
        lines += ["## Notes", "", protocol.notes.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _protocols_to_document(files: Sequence[str | Path] | None) -> list[Protocol]:
    """The protocols in ``files`` (protocol YAML files, or folders: the YAML files directly in them; a file given
    twice counts once), or every shipped protocol for None; two files of one name are a SpecError naming both, since
    a page is ``<name>.md``."""
    from bench_ir.validation import spec_files

    if files is None:
        return [load_protocol(name) for name in list_protocols()]
    given: dict[Path, Path] = {}  # each file once, as it was given
    for path in spec_files(list(files)):
        given.setdefault(path.resolve(), path)
    protocols = [load_protocol(path) for path in given.values()]
    check_distinct_protocol_names(protocols, "each page is <name>.md, so one would overwrite the other")
    return protocols


def write_protocol_pages(out_dir: str | Path, files: Sequence[str | Path] | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>.md`` for every protocol in ``files`` (protocol YAML files or folders of them;
    default: every shipped protocol) and an index ``README.md``; returns the paths."""
    protocols = _protocols_to_document(files)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, index = [], ["# Protocols", "", "| protocol | title | tasks |", "|---|---|---|"]
    for protocol in protocols:
        name = protocol.name
        path = out_dir / f"{name}.md"
        write_text_atomic(path, protocol_markdown(protocol))
        written.append(path)
        index.append(f"| [{name}]({name}.md) | {protocol.title} | {', '.join(t.name for t in protocol.tasks)} |")
    index += ["", "## Pairing rules", "", "How an input file finds its target (a layout's `pairing`, or `bench-ir run "
              "--input-dir ... --target-dir ... --pairing RULE`):", ""]
    index += [f"- `{rule}`: {PAIRING_EXPLAINED[rule].explanation} Example: `{PAIRING_EXPLAINED[rule].example_input}` → "
              f"`{PAIRING_EXPLAINED[rule].example_target}`." for rule in PAIRING_RULES]
    write_text_atomic(out_dir / "README.md", "\n".join(index) + "\n")
    return [*written, out_dir / "README.md"]


def shipped_protocol_pages() -> Path:
    """docs/protocols of the checkout this bench_ir package is in (the folder beside the package), where `bench-ir
    docs` writes the shipped protocols' pages; a FileNotFoundError when there is none (an installed wheel)."""
    folder = Path(__file__).resolve().parent.parent / "docs" / "protocols"
    if not folder.is_dir():
        raise FileNotFoundError(f"this bench-ir has no docs/protocols folder beside its package ({folder} does not "
                                "exist: an installed package, not a checkout); give --out FOLDER for the pages")
    return folder
