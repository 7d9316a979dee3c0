"""Training recipes: YAML files in registry/recipes/ (or user files) validated into frozen dataclasses.

A recipe states what the official training scripts do: the degradation mix (one :class:`DataSpec` per training
set, with its folder layout under --data-root and its repeat factor), patch and batch size, augmentation,
optimizer, learning-rate schedule, epochs, loss weights, validation and checkpoint intervals. ``include:`` inherits
another recipe file's training (top-level keys of the including file replace the inherited ones), not its words about
itself: ``description``, ``reference`` and ``notes`` (:data:`DESCRIPTIVE_FIELDS`) are the including file's own or
empty, and a file without a ``title`` of its own is titled as the included recipe changed by that file.

Values that differ between the paper and the official code are :class:`Choice` objects: ``code`` (what produced
the released checkpoints, the default) and ``paper``. A choice may name a model-card option (``card_option``);
when the card defines it (e.g. MIRAGE's ``spd_weight: {default: 0.01, paper: 0.05}``), the card's value wins: it
holds the official value for that model. Where it replaces another value of the recipe (an edited copy of a shipped
recipe), the plan's notices say so; removing ``card_option`` keeps the recipe's value.
:func:`resolve_plan` turns a recipe, a card and the two selectors into the concrete numbers of a run.

``official_for`` names the model cards whose official training the recipe reproduces (MIRAGE-T and -S for the
MIRAGE recipes, NDR-Restore for ``ndr``; empty for bench-ir's own recipes, such as the sample ones). Any other card
trains with the recipe's loss, schedule and data, not its own published training: the plan's notices say so, with
the training its card records in its options (:data:`OWN_TRAINING_OPTIONS`). ``include:`` inherits it, as it
inherits the training it is about; it is not part of the recipe's sha256 (:data:`UNHASHED_FIELDS`), so naming the
models changes no run's identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench_ir.cards import ModelCard
from bench_ir.resources import registry_dir
from bench_ir.shortlist import shortlist
from bench_ir.yamlio import SpecError, build_dataclass, read_yaml_with_includes, resolve_spec_path

__all__ = [
    "LAYOUTS",
    "BrightnessSpec",
    "ContrastSpec",
    "DataSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "Choice",
    "LossSpec",
    "ValidationSpec",
    "CheckpointSpec",
    "Recipe",
    "TrainPlan",
    "recipes_dir",
    "list_recipes",
    "load_recipe",
    "is_shipped",
    "resolve_plan",
    "LAYOUT_FIELDS",
    "DESCRIPTIVE_FIELDS",
    "UNHASHED_FIELDS",
    "OWN_TRAINING_OPTIONS",
    "not_own_training_notices",
]

Layout = Literal["denoise", "derain", "dehaze_ots", "paired", "cdd11", "sample"]
LAYOUTS: tuple[str, ...] = ("denoise", "derain", "dehaze_ots", "paired", "cdd11", "sample")
ValueSource = Literal["code", "paper"]


@dataclass(frozen=True)
class BrightnessSpec:
    """Photometric darkening of training pairs, so that a dark photo alone does not mean "low light".

    With ``probability``, an item is darkened by the tone curve x -> factor * x^gamma (x in [0, 1]; the factor
    log-uniform in [``min_factor``, ``max_factor``], the gamma log-uniform in [``min_gamma``, ``max_gamma``],
    1 by default; then rounded to uint8). A factor below 1 scales the whole exposure, highlights included; a
    gamma above 1 darkens the shadows and mid-tones but keeps white white, as in a night or sky photo with a few
    bright stars, which an under-exposed (low-light) input, whose brightest pixel is the factor, is not.
    Darkened are, for synthetic data, the clean image, before the degradation or the noise, which keep their
    full strength (as the sample test data degrades a dark photo such as ``hubble_deep_field``; scaling a noisy
    pair would also scale its noise, and a dark pair with weak noise is what a low-light input looks like): a
    correct (degraded, clean) pair of a darker scene. For stored pairs, the input and the target (for a
    gamma or a non-linear degradation an approximation of that darker scene). Items of the degradations in
    ``skip`` (the low-light pairs, whose clean image is the bright one) are never darkened; ``noise`` in
    ``skip`` leaves every noise item as it is."""

    probability: float = 0.0
    min_factor: float = 0.1
    max_factor: float = 1.0
    min_gamma: float = 1.0
    max_gamma: float = 1.0
    skip: list[str] = field(default_factory=lambda: ["low_light"])


@dataclass(frozen=True)
class ContrastSpec:
    """Photometric contrast reduction of training pairs: the input and the target through one line.

    With ``probability``, an item's input and target both go through x -> offset + scale * x (x in [0, 1]; the
    scale uniform in [``min_scale``, ``max_scale``], then the offset uniform in [``min_offset``, min(``max_offset``,
    1 - scale)], so white never clips; then rounded to uint8): a flatter, lifted-black version of the same pair.
    Applied after the degradation, on the patch: exact for a normalised blur kernel (motion blur commutes with the
    line) and for haze (its atmospheric light moves with the line), up to the uint8 rounding; it would weaken noise
    by the scale, so ``noise`` is in ``skip`` by default, as are the low-light pairs. ``only`` (names of the
    variants: a degradation, ``noise`` or ``pair`` for stored pairs) restricts it to those variants; empty means
    every variant not in ``skip``. It draws from its own stream, so every other draw of an item is the same with
    and without it. Teaches a restorer that the overall tone of a photo is not a degradation to undo (the sample
    recipes' deblurring otherwise darkened a flat, bright test photo; docs/sample-checkpoint.md)."""

    probability: float = 0.0
    min_scale: float = 0.5
    max_scale: float = 0.85
    min_offset: float = 0.05
    max_offset: float = 0.35
    only: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=lambda: ["low_light", "noise"])


@dataclass(frozen=True)
class DataSpec:
    """One training set of the degradation mix.

    layout (how pairs are found under ``root``, relative to --data-root unless absolute; a list gives
    alternatives, the first existing one is used):
      ``denoise``: clean images in ``root``; one item per image and sigma of ``sigmas`` (``sigma_draw: each``)
      or one item per image whose sigma is drawn uniformly from ``sigmas`` at every draw (``sigma_draw:
      random``, NDR-Restore); Gaussian noise N(0,1)·sigma is drawn on the augmented patch, clipped and either
      quantised to uint8 (``noise: uint8``, clip(x + n, 0, 255) -> uint8, PromptIR/MIRAGE) or kept as float
      (``noise: float``, clip(x/255 + n/255, 0, 1), NDR-Restore).
      ``derain``: ``root``/rainy/rain-N.png <-> ``root``/gt/norain-N.png.
      ``dehaze_ots``: RESIDE-OTS, ``root``/synthetic/**/<id>_<A>_<beta>.jpg <-> ``root``/original/<id>.<ext>.
      ``paired``: ``root``/``input`` <-> ``root``/``target`` by ``pairing`` (a protocol pairing rule).
      ``cdd11``: ``root``/<subset>/X.png <-> ``root``/clear/X.png for the folders in ``subsets`` (all when empty).
      ``sample``: the built-in SAMPLE_TRAIN_IMAGES photos (long side ``max_side``), one item per photo and
      synthetic degradation of ``degradations`` / noise sigma of ``sigmas`` (``sigma_draw`` and ``noise`` as
      for ``denoise``).
    list_file: optional list of files (paths relative to the layout's image root, as the official
    ``data_dir/*.txt``); used when it exists, otherwise every image is used and a notice says so.
    brightness: optional darkening of the pairs (:class:`BrightnessSpec`; none by default).
    contrast: optional contrast reduction of the pairs (:class:`ContrastSpec`; none by default).
    expected_count: images (pairs) of the official list, for a notice when the data differs.
    crop_multiple: images are centre-cropped to this multiple before the random patch (16 as the official
    ``crop_img``; 1 = no crop, as the official CDD-11 loader).
    """

    task: str
    layout: Layout
    root: str | list[str] = ""
    repeat: int = 1
    input: str | None = None
    target: str | None = None
    pairing: str = "same_name"
    sigmas: list[float] = field(default_factory=list)
    degradations: list[str] = field(default_factory=list)
    subsets: list[str] = field(default_factory=list)
    list_file: str | None = None
    expected_count: int | None = None
    crop_multiple: int = 16
    max_side: int = 192
    sigma_draw: Literal["each", "random"] = "each"
    noise: Literal["uint8", "float"] = "uint8"
    brightness: BrightnessSpec | None = None
    contrast: ContrastSpec | None = None

    @property
    def roots(self) -> list[str]:
        return [self.root] if isinstance(self.root, str) else list(self.root)


@dataclass(frozen=True)
class OptimizerSpec:
    """``adamw`` / ``adam`` with torch's meaning of every field (weight decay decoupled for AdamW, added to the
    gradient for Adam). ``factory: module:function`` names a function ``function(model) -> Optimizer`` used
    instead (the other fields are then ignored)."""

    name: Literal["adamw", "adam"] = "adamw"
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    factory: str | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """Learning rate = each parameter group's initial lr x a factor (see bench_ir.train.schedule).

    ``warmup_cosine``: linear from ``start_factor`` at position 0 to 1 at position ``warmup - 1``, then cosine
    from 1 at ``warmup`` to ``end_factor`` at ``max`` (the official LinearWarmupCosineAnnealingLR closed form).
    ``multistep``: x ``gamma`` at each of ``milestones``. ``constant``: 1.
    unit: the position counts epochs (``epoch``: lr set once per epoch) or iterations (``step``: lr set before
    every optimizer step, e.g. NDR-Restore's MultiStep at 200k/400k/600k/800k iterations).
    delay: positions lag the epoch/step index by this much (never below 0). The official Lightning loop calls
    ``scheduler.step(current_epoch)`` at the end of each epoch, so epoch e trains at the closed form of e - 1
    (epochs 0 and 1 both at the start lr): ``delay: 1``.
    """

    name: Literal["warmup_cosine", "multistep", "constant"] = "warmup_cosine"
    unit: Literal["epoch", "step"] = "epoch"
    warmup: int = 15
    max: int = 150
    start_factor: float = 0.0
    end_factor: float = 0.0
    delay: int = 0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5


@dataclass(frozen=True)
class Choice:
    """A value that differs between the official code (``code``) and the paper (``paper``; None = not stated).
    ``card_option``: a model-card option holding ``{default: <code value>, paper: <paper value>}`` that
    overrides these when the card defines it."""

    code: float
    paper: float | None = None
    card_option: str | None = None
    note: str = ""


@dataclass(frozen=True)
class LossSpec:
    """``total = L1 + fft_weight·Fourier + spd_weight·SPD`` (SPD only for models returning SPD projections in
    train mode). ``objective: module:Class`` replaces this with a custom objective (``objective_args`` are its
    keyword arguments); ``grad_clip``: clip the global gradient norm to this value."""

    fft_weight: Choice = field(default_factory=lambda: Choice(code=0.1, paper=0.1, card_option="fft_weight"))
    spd_weight: Choice = field(default_factory=lambda: Choice(code=0.01, paper=0.05, card_option="spd_weight"))
    objective: str | None = None
    objective_args: dict[str, Any] = field(default_factory=dict)
    grad_clip: float | None = None


@dataclass(frozen=True)
class ValidationSpec:
    """Periodic validation through `bench-ir run` machinery on ``protocol`` (``sample``: its built-in sample
    variant), at most ``limit`` images per task, every ``every_epochs`` epochs and/or ``every_steps`` steps (a recipe
    file giving ``every_steps`` alone validates at that interval only; ``every_epochs`` is 1 when it gives neither).
    ``protocol``: a shipped protocol's name or a protocol file; a relative path is read from the folder of the
    recipe file, when the file is there, and recorded as an absolute path."""

    protocol: str | None = None
    sample: bool = False
    limit: int | None = 10
    tasks: list[str] = field(default_factory=list)
    every_epochs: int | None = 1
    every_steps: int | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    """Resumable checkpoints (<run_dir>/checkpoints/last.pt), every ``every_epochs`` epochs and/or
    ``every_steps`` steps (``every_steps`` alone in a recipe file: that interval only), and always at the end."""

    every_epochs: int | None = 1
    every_steps: int | None = None


@dataclass(frozen=True)
class Recipe:
    """A training recipe; see the module docstring. ``epochs`` counts passes over the (repeated) training
    mix; ``steps`` (when set) bounds training by optimizer steps instead (iteration-based recipes)."""

    name: str
    title: str
    data: list[DataSpec]
    version: int = 1
    description: str = ""
    reference: str = ""
    notes: str = ""
    official_for: list[str] = field(default_factory=list)
    patch_size: int = 128
    batch_size: int = 32
    augmentation: Literal["dihedral_nonidentity", "dihedral", "none"] = "dihedral_nonidentity"
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    epochs: Choice = field(default_factory=lambda: Choice(code=150))
    steps: int | None = None
    loss: LossSpec = field(default_factory=LossSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    log_every_steps: int = 10
    num_workers: int = 8
    ddp_find_unused_parameters: bool = False
    source: str = ""
    sha256: str = ""

    @property
    def needs_data_root(self) -> bool:
        return any(spec.layout != "sample" for spec in self.data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recipes_dir() -> Path:
    """registry/recipes/ of this installation."""
    return registry_dir() / "recipes"


def list_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def is_shipped(recipe: Recipe) -> bool:
    """Whether ``recipe`` was read from bench-ir's own recipes folder (registry/recipes/): an official recipe, not a
    researcher's file (an edited copy, one that includes a shipped recipe, a run's train_manifest.json)."""
    source = Path(recipe.source) if recipe.source else None
    return source is not None and source.resolve().parent == recipes_dir().resolve()


def _resolve_path(name_or_path: str | Path) -> Path:
    return resolve_spec_path(name_or_path, recipes_dir(), "recipe")


def _check(recipe: Recipe, where: str) -> None:
    from bench_ir.data.synthesis import DEGRADATIONS
    from bench_ir.protocol import PAIRING_RULES

    if not recipe.data:
        raise SpecError(f"{where}: field 'data' must list at least one training set")
    for i, spec in enumerate(recipe.data):
        at = f"{where}: data[{i}] (task '{spec.task}')"
        unknown = [d for d in spec.degradations if d not in DEGRADATIONS]
        if unknown:
            raise SpecError(f"{at}: unknown degradation(s) {unknown}; known: {', '.join(sorted(DEGRADATIONS))}")
        _check_layout_fields(spec, at)
        if spec.layout in ("denoise",) and not spec.sigmas:
            raise SpecError(f"{at}: layout 'denoise' needs 'sigmas' (noise levels on the 0-255 scale)")
        if spec.layout == "sample" and not (spec.sigmas or spec.degradations):
            raise SpecError(f"{at}: layout 'sample' needs 'degradations' and/or 'sigmas'")
        if spec.pairing not in PAIRING_RULES:
            raise SpecError(f"{at}: unknown pairing rule '{spec.pairing}'; choose one of {', '.join(PAIRING_RULES)}")
        if spec.layout == "paired" and not (spec.input and spec.target):
            raise SpecError(f"{at}: layout 'paired' needs 'input' and 'target' sub-folders")
        if spec.layout != "sample" and not spec.roots[0] and len(spec.roots) == 1:
            raise SpecError(f"{at}: field 'root' (folder relative to --data-root) is required")
        if any(s <= 0 for s in spec.sigmas):
            raise SpecError(f"{at}: noise sigmas must be positive, got {spec.sigmas}")
        if not spec.sigmas and (spec.sigma_draw != "each" or spec.noise != "uint8"):
            raise SpecError(f"{at}: 'sigma_draw' and 'noise' apply to noise sigmas; this entry has no 'sigmas'")
        if spec.repeat < 1 or spec.crop_multiple < 1:
            raise SpecError(f"{at}: 'repeat' and 'crop_multiple' must be >= 1")
        _check_below(spec, at)
        _check_photometric(spec, at)
    if recipe.patch_size < 8 or recipe.batch_size < 1:
        raise SpecError(f"{where}: patch_size must be >= 8 and batch_size >= 1")
    schedule = recipe.schedule
    if schedule.name == "warmup_cosine" and not 0 <= schedule.warmup < schedule.max:
        raise SpecError(f"{where}: schedule needs 0 <= warmup < max, got warmup {schedule.warmup}, max {schedule.max}")
    if recipe.steps is not None and recipe.steps < 1:
        raise SpecError(f"{where}: 'steps' must be >= 1")
    for field_name, value in (("loss.objective", recipe.loss.objective), ("optimizer.factory",
                                                                         recipe.optimizer.factory)):
        if value is not None and ":" not in value:
            raise SpecError(f"{where}: {field_name} must be 'module:name', got {value!r}")
    if recipe.loss.grad_clip is not None and recipe.loss.grad_clip <= 0:
        raise SpecError(f"{where}: loss.grad_clip must be > 0 (a max gradient norm), got {recipe.loss.grad_clip}")
    if schedule.name == "multistep" and list(schedule.milestones) != sorted(set(schedule.milestones)):
        raise SpecError(f"{where}: schedule milestones must be increasing, got {schedule.milestones}")
    _check_loop(recipe, where)


# The data-entry fields that only some layouts read (every layout reads task, layout, repeat, crop_multiple,
# brightness and contrast); a field set to other than its default in an entry of another layout is refused.
_NOT_SAMPLE = tuple(layout for layout in LAYOUTS if layout != "sample")
LAYOUT_FIELDS: dict[str, tuple[str, ...]] = {
    "root": _NOT_SAMPLE, "list_file": _NOT_SAMPLE, "expected_count": _NOT_SAMPLE,
    "input": ("paired",), "target": ("paired",), "pairing": ("paired",),
    "sigmas": ("denoise", "sample"), "sigma_draw": ("denoise", "sample"), "noise": ("denoise", "sample"),
    "degradations": ("sample",), "max_side": ("sample",), "subsets": ("cdd11",),
}


def _check_layout_fields(spec: DataSpec, at: str) -> None:
    """A field the entry's layout does not read must keep its default: it would be accepted and have no effect
    (e.g. ``sigmas`` of a ``paired`` entry: no noise is added)."""
    defaults = DataSpec(task="", layout=spec.layout)
    for name, layouts in LAYOUT_FIELDS.items():
        if spec.layout not in layouts and getattr(spec, name) != getattr(defaults, name):
            users = ", ".join(f"'{layout}'" for layout in layouts)
            which = f"layouts {users} read it" if len(layouts) > 1 else f"layout {users} reads it"
            raise SpecError(f"{at}: field '{name}' has no effect in layout '{spec.layout}' (only {which}); remove "
                            "it, or choose a layout that reads it")


def _check_below(spec: DataSpec, at: str) -> None:
    """A relative ``root`` stays inside --data-root and a relative ``list_file`` inside its root (absolute paths
    are the recipe author's own choice)."""
    from bench_ir.safety import UnsafePathError, stays_below

    for field_name, path in [*(("root", root) for root in spec.roots), ("list_file", spec.list_file)]:
        if path and not Path(path).expanduser().is_absolute():
            try:
                stays_below(path, f"{at}: {field_name}")
            except UnsafePathError as err:
                raise SpecError(str(err)) from None


def _check_loop(recipe: Recipe, where: str) -> None:
    """Counts of the training loop, and the validation protocol and tasks: checked when the recipe is read, not
    after the first epoch has been trained."""
    for name, value in (("epochs.code", recipe.epochs.code), ("epochs.paper", recipe.epochs.paper)):
        if value is not None and value < 1:
            raise SpecError(f"{where}: {name} must be >= 1 (passes over the training data), got {value:g}")
    for name, value in (("log_every_steps", recipe.log_every_steps), ("checkpoint.every_epochs",
                        recipe.checkpoint.every_epochs), ("checkpoint.every_steps", recipe.checkpoint.every_steps),
                        ("validation.every_epochs", recipe.validation.every_epochs),
                        ("validation.every_steps", recipe.validation.every_steps), ("validation.limit",
                        recipe.validation.limit)):
        if value is not None and value < 1:
            raise SpecError(f"{where}: {name} must be >= 1 (or left out), got {value}")
    if recipe.num_workers < 0:
        raise SpecError(f"{where}: num_workers must be >= 0 (0: load in the training process), got "
                        f"{recipe.num_workers}")
    validation = recipe.validation
    if validation.protocol is not None:
        from bench_ir.protocol import load_protocol

        try:
            protocol = load_protocol(validation.protocol)
        except (KeyError, OSError, ValueError) as err:
            raise SpecError(f"{where}: validation.protocol {validation.protocol!r}: {err}") from None
        unknown = [task for task in validation.tasks if task not in [t.name for t in protocol.tasks]]
        if unknown:
            raise SpecError(f"{where}: validation.tasks {unknown} are not tasks of protocol '{protocol.name}' "
                            f"({', '.join(t.name for t in protocol.tasks)})")


def _check_photometric(spec: DataSpec, at: str) -> None:
    """The brightness and contrast options of one data entry: ranges that can be drawn from, known names."""
    from bench_ir.data.synthesis import DEGRADATIONS

    light = spec.brightness or BrightnessSpec()
    if not (0 <= light.probability <= 1 and 0 < light.min_factor <= light.max_factor <= 1):
        raise SpecError(f"{at}: brightness needs 0 <= probability <= 1 and 0 < min_factor <= max_factor <= 1")
    if not 1 <= light.min_gamma <= light.max_gamma:
        raise SpecError(f"{at}: brightness needs 1 <= min_gamma <= max_gamma (a gamma above 1 darkens)")
    contrast = spec.contrast or ContrastSpec()
    if not (0 <= contrast.probability <= 1 and 0 < contrast.min_scale <= contrast.max_scale <= 1):
        raise SpecError(f"{at}: contrast needs 0 <= probability <= 1 and 0 < min_scale <= max_scale <= 1")
    if not 0 <= contrast.min_offset <= contrast.max_offset or contrast.min_offset + contrast.max_scale > 1:
        raise SpecError(f"{at}: contrast needs 0 <= min_offset <= max_offset and min_offset + max_scale <= 1 "
                        "(offset + scale * x must stay in [0, 1])")
    known = ("noise", "pair", *sorted(DEGRADATIONS))
    for option, names in (("brightness skip", light.skip), ("contrast skip", contrast.skip),
                          ("contrast only", contrast.only)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise SpecError(f"{at}: {option} {unknown} names no degradation; known: {', '.join(known)}")


# Data options added after recipes were in use: left out of the hash while unset, so that a run started
# before an option existed keeps its identity and still resumes.
_HASHED_ONLY_WHEN_SET = ("contrast",)


UNHASHED_FIELDS: tuple[str, ...] = ("official_for",)
"""Fields left out of a recipe's sha256: whose official training a recipe is changes nothing in the training, so
stating or correcting it keeps every run's identity (a fine-tune's manifest still reloads as the recipe it ran).
Unlike :data:`DESCRIPTIVE_FIELDS`, they are inherited through ``include:``."""


def recipe_sha256(data: dict[str, Any]) -> str:
    """Hash of the fully resolved recipe content (includes expanded), stable across key order."""
    content = {k: v for k, v in data.items() if k not in ("source", "sha256", *UNHASHED_FIELDS)}
    if isinstance(content.get("data"), list):
        content["data"] = [{k: v for k, v in entry.items() if not (k in _HASHED_ONLY_WHEN_SET and v is None)}
                           if isinstance(entry, dict) else entry for entry in content["data"]]
    payload = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


DESCRIPTIVE_FIELDS: tuple[str, ...] = ("description", "reference", "notes")
"""What a recipe says about itself (what it trains, where it comes from, its assumptions): a recipe that includes
another one does not inherit them (its training fields it does inherit)."""


def _include_recipe(base: dict[str, Any] | None, data: dict[str, Any], path: Path,
                    parent: str | None) -> dict[str, Any]:
    """Include rule of recipes: the including file's keys win over the included recipe's, whose
    :data:`DESCRIPTIVE_FIELDS` are left out (they describe that recipe, not this one); without a ``title`` of its own
    the file is titled '<included title>, as changed by <file name>'."""
    if base is None:
        return data
    merged = {key: value for key, value in base.items() if key not in DESCRIPTIVE_FIELDS}
    if "title" not in data and "title" in base:
        merged["title"] = f"{base['title']}, as changed by {path.name}"
    return {**merged, **data}


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe by name (registry/recipes/<name>.yaml) or from a YAML path; validated, includes resolved.

    A training run's ``train_manifest.json`` is read as the recipe that run resolved (its ``recipe.resolved``),
    so a run can be repeated, or a chain of fine-tunes rebuilt, from its manifests alone; the sha256 is then the
    one the run recorded, unless the recipe format has changed since."""
    path = _resolve_path(name_or_path)
    if path.suffix == ".json":  # read as JSON, not YAML, so that 1e-08 stays a number
        from bench_ir.results import read_manifest_file

        data = read_manifest_file(path)
    else:
        data = read_yaml_with_includes(path, _include_recipe, builtin=recipes_dir())
        _protocol_beside_the_recipe(data, path)
        _step_intervals_alone(data)
    if data.get("kind") == "training" and isinstance(data.get("recipe"), dict):
        resolved = data["recipe"].get("resolved")
        if not isinstance(resolved, dict):
            raise SpecError(f"{path}: a training manifest without the resolved recipe (recipe.resolved)")
        data = {k: v for k, v in resolved.items() if k not in ("source", "sha256")}
    data["source"] = str(path)
    recipe = build_dataclass(Recipe, data, str(path))
    _check(recipe, str(path))
    return replace(recipe, sha256=recipe_sha256(recipe.to_dict()))


def _protocol_beside_the_recipe(data: dict[str, Any], path: Path) -> None:
    """Read ``validation.protocol`` as ``include:`` is read: relative to the folder of the recipe file that sets
    ``validation``, when it names a file there; it is then recorded as an absolute path, so that the resolved recipe
    (a run's train_manifest.json) finds it from anywhere. A shipped protocol's name (``5deg``), an absolute path and
    a path naming no file there are kept as written."""
    validation = data.get("validation")
    protocol = validation.get("protocol") if isinstance(validation, dict) else None
    if not isinstance(protocol, str) or not protocol or Path(protocol).expanduser().is_absolute():
        return
    chain = getattr(data, "origins", {}).get("validation")  # the files through which `validation` came
    beside = Path(chain[-1] if chain else path).parent / protocol
    if beside.is_file():
        data["validation"] = {**validation, "protocol": str(beside.resolve())}


def _step_intervals_alone(data: dict[str, Any]) -> None:
    """A ``validation`` or ``checkpoint`` that gives ``every_steps`` and not ``every_epochs`` runs at that step
    interval alone: ``every_epochs`` defaults to 1 only when neither is given."""
    for section in ("validation", "checkpoint"):
        spec = data.get(section)
        if isinstance(spec, dict) and spec.get("every_steps") is not None and "every_epochs" not in spec:
            data[section] = {**spec, "every_epochs": None}


# ------------------------------------------------------------------------------------------ resolution
@dataclass(frozen=True)
class TrainPlan:
    """The concrete numbers of one training run (recipe + card + selectors + command-line overrides)."""

    epochs: int | None
    steps: int | None
    patch_size: int
    batch_size: int
    fft_weight: float
    spd_weight: float
    objective: str | None
    objective_args: dict[str, Any]
    optimizer_factory: str | None
    grad_clip: float | None
    find_unused_parameters: bool
    epochs_from: str
    loss_from: str
    balance_weight: float = 0.0
    notices: list[str] = field(default_factory=list)  # recipe values the card's options replaced (_choose)

    def fingerprint(self) -> dict[str, Any]:
        """Fields that must not change when a run is resumed."""
        return {k: v for k, v in asdict(self).items() if k not in ("epochs", "steps", "epochs_from", "notices")}


def _card_option(card: ModelCard, key: str | None, source: ValueSource) -> Any:
    if not key or key not in card.options:
        return None
    option = card.options[key]
    if isinstance(option, dict):
        return option.get("default" if source == "code" else "paper", option.get("default"))
    return option


def _choose(choice: Choice, card: ModelCard, source: ValueSource, what: str, recipe: Recipe,
            notices: list[str]) -> float:
    """The ``source`` value of ``choice``: the card's option ``choice.card_option`` when the card defines it (it
    holds the official value for that model), else the recipe's. A card value replacing another value of the
    recipe adds a notice to ``notices`` saying how to keep the recipe's."""
    value = choice.code if source == "code" else choice.paper
    from_card = _card_option(card, choice.card_option, source)
    if from_card is not None:
        if value is not None and float(from_card) != float(value):
            notices.append(f"{what}.{source} {value:g} of recipe '{recipe.name}' is replaced by {float(from_card):g}, "
                           f"the {source} value of the model card's option '{choice.card_option}' (a card option "
                           f"holds the official value for its model); to train with the recipe's {value:g}, remove "
                           f"`card_option: {choice.card_option}` from the recipe's '{what}'")
        return float(from_card)
    if value is None:
        raise ValueError(f"recipe '{recipe.name}' states no paper value for {what}; use the code value")
    return float(value)


OWN_TRAINING_OPTIONS: tuple[str, ...] = ("loss", "lr", "epochs", "schedule", "batch_and_patch")
"""Model-card options that record the model's own published training (``{default: <what it is>, note: <where it
comes from>}``), quoted when the model trains with a recipe that is not its official one. A card's ``train_outputs``
(``{default: [restored, <extra output>, ...]}``) names what the model's training forward returns, the restored image
first: the generic L1 + Fourier objective scores the image alone, so the extra outputs are noticed as unused."""


def _option_text(card: ModelCard, key: str) -> str:
    """``<key> <value> (<note>)`` of one card option."""
    option = card.options[key]
    if not isinstance(option, dict):
        return f"{key} {option}"
    note = option.get("note")
    return f"{key} {option.get('default')}" + (f" ({note})" if note else "")


def _not_official_notice(recipe: Recipe, card: ModelCard, card_objective: bool) -> str | None:
    """The notice that ``card`` is not one of the models whose official training ``recipe`` is (None when it is, or
    when the recipe names none), with the training the card records as its own."""
    if not recipe.official_for or card.name in recipe.official_for:
        return None
    parts = "schedule and data (the loss is the card's own objective)" if card_objective else "loss, schedule and data"
    notice = (f"recipe '{recipe.name}' is the official training of {shortlist(recipe.official_for, 4)}; {card.name} "
              f"trains here with its {parts}, not its own published training, so the result is no reproduction of "
              f"{card.name}'s published weights")
    own = [_option_text(card, key) for key in OWN_TRAINING_OPTIONS if key in card.options]
    if own:
        notice += f"; {card.name}'s card records its own training as: {'; '.join(own)}"
    return notice


def _unused_outputs_notice(card: ModelCard) -> str | None:
    """The notice that the generic objective leaves out the extra outputs of the model's training forward, as its
    card's ``train_outputs`` names them (None when it names no extra output)."""
    outputs = _card_option(card, "train_outputs", "code")
    if not isinstance(outputs, list) or len(outputs) < 2:
        return None
    note = card.options["train_outputs"].get("note") if isinstance(card.options["train_outputs"], dict) else None
    extra = ", ".join(str(output) for output in outputs[1:])
    return (f"{card.name}'s training forward returns {', '.join(str(output) for output in outputs)}; the recipe's "
            f"loss (L1 + Fourier) scores the {outputs[0]} image alone, so {extra} are not used"
            + (f" ({note})" if note else "") + "; name an objective that uses them (loss.objective) to train with them")


def not_own_training_notices(recipe: Recipe, card: ModelCard, plan: TrainPlan) -> list[str]:
    """What a training of ``card`` with ``recipe`` (resolved to ``plan``) takes that is not the card's own training:
    the recipe is another model's official training; the generic objective leaves out extra training outputs."""
    card_objective = plan.objective is not None and recipe.loss.objective is None
    unused = _unused_outputs_notice(card) if plan.objective is None else None
    return [notice for notice in (_not_official_notice(recipe, card, card_objective), unused) if notice]


def resolve_plan(recipe: Recipe, card: ModelCard, epochs_from: ValueSource = "code", loss_from: ValueSource = "code",
                 batch_size: int | None = None, patch_size: int | None = None) -> TrainPlan:
    """Concrete epochs, loss weights and training hooks.

    A model with its own training names the hooks in its card options: ``objective`` (``module:Class``) with
    ``objective_args``, ``optimizer`` (``module:function``, a factory ``function(model) -> Optimizer``) and
    ``grad_clip`` (max global gradient norm). The recipe's own ``loss.objective`` (+ ``objective_args``),
    ``optimizer.factory`` and ``loss.grad_clip`` win over the card's when set; without either, the generic
    L1 + Fourier (+ SPD) objective, the recipe's AdamW/Adam and no clipping are used. A card not in the recipe's
    non-empty ``official_for`` gets a notice that this is not its own training (see :data:`OWN_TRAINING_OPTIONS`)."""
    for name, value in (("epochs_from", epochs_from), ("loss_from", loss_from)):
        if value not in ("code", "paper"):
            raise ValueError(f"{name} must be 'code' or 'paper', got {value!r}")
    notices: list[str] = []
    epochs = None if recipe.steps is not None else int(_choose(recipe.epochs, card, epochs_from, "epochs", recipe,
                                                               notices))
    objective = recipe.loss.objective or _card_option(card, "objective", loss_from)
    objective_args = dict(recipe.loss.objective_args) if recipe.loss.objective else dict(
        card.options.get("objective_args", {}) or {})
    grad_clip = recipe.loss.grad_clip if recipe.loss.grad_clip is not None else _card_option(card, "grad_clip",
                                                                                          loss_from)
    optimizer_factory = recipe.optimizer.factory or _card_option(card, "optimizer", loss_from)
    find_unused = bool(_card_option(card, "ddp_find_unused_parameters", "code") or recipe.ddp_find_unused_parameters)
    plan = TrainPlan(
        epochs=epochs,
        steps=recipe.steps,
        patch_size=patch_size or recipe.patch_size,
        batch_size=batch_size or recipe.batch_size,
        fft_weight=_choose(recipe.loss.fft_weight, card, loss_from, "loss.fft_weight", recipe, notices),
        spd_weight=_choose(recipe.loss.spd_weight, card, loss_from, "loss.spd_weight", recipe, notices),
        objective=str(objective) if objective else None,
        objective_args=objective_args,
        optimizer_factory=str(optimizer_factory) if optimizer_factory else None,
        grad_clip=float(grad_clip) if grad_clip is not None else None,
        find_unused_parameters=find_unused,
        epochs_from=epochs_from,
        loss_from=loss_from,
        balance_weight=float(_card_option(card, "balance_loss_weight", loss_from) or 0.0),
        notices=notices,
    )
    notices += not_own_training_notices(recipe, card, plan)
    if plan.patch_size % 8:
        raise ValueError(f"patch size {plan.patch_size} is not a multiple of 8")
    return plan
