"""What a training is told about its plan before it starts: the recipe values a model card's options replace, and
a planned length that does not fit the learning-rate schedule (for `train`, and for `bench-ir validate` of a recipe,
which knows no model or data); and what differs when torchrun splits its global batch over several processes."""

from __future__ import annotations

from collections.abc import Iterable

from bench_ir.cards import ModelCard
from bench_ir.train.recipes import Recipe, TrainPlan, not_own_training_notices, resolve_plan
from bench_ir.train.schedule import schedule_end_notices

__all__ = ["plan_notices", "model_notices", "process_split_notices", "process_count_notice"]


def plan_notices(recipe: Recipe, plan: TrainPlan, steps_per_epoch: int | None = None) -> list[str]:
    """What a training of ``plan`` is told before it starts: the recipe values the model card's options replaced
    (``plan.notices``), and a planned length that runs past the end of the recipe's learning-rate schedule or ends
    inside its warmup (bench_ir.train.schedule.schedule_end_notices; epochs against a schedule counted in steps, or
    steps against one counted in epochs, only when ``steps_per_epoch`` is given)."""
    return [*plan.notices, *schedule_end_notices(recipe.schedule, plan.epochs, plan.steps, steps_per_epoch)]


def model_notices(recipe: Recipe, cards: Iterable[ModelCard]) -> list[str]:
    """The :func:`plan_notices` a training of ``recipe`` would give, known without its model or data (for
    `bench-ir validate`), for the code and, where stated, the paper values: those of the recipe's own epochs or
    steps, then those of each card of ``cards`` defining a card option the recipe names, which the card's values
    would add (``with model a, b: ...``). That a recipe is not a card's own training
    (:func:`bench_ir.train.recipes.not_own_training_notices`) is no finding about the recipe and is left out."""
    lengths = [(None, recipe.steps)] if recipe.steps is not None else [
        (int(epochs), None) for epochs in (recipe.epochs.code, recipe.epochs.paper) if epochs is not None]
    own = [text for epochs, steps in lengths for text in schedule_end_notices(recipe.schedule, epochs, steps)]
    named = {c.card_option for c in (recipe.epochs, recipe.loss.fft_weight, recipe.loss.spd_weight) if c.card_option}
    models: dict[str, list[str]] = {}
    for card in cards:
        if not named & set(card.options):
            continue
        for source in ("code", "paper"):
            try:
                plan = resolve_plan(recipe, card, source, source)  # type: ignore[arg-type]
            except ValueError:  # no paper value: `train` says so
                continue
            other_training = not_own_training_notices(recipe, card, plan)
            for text in plan_notices(recipe, plan):
                if text not in own and text not in other_training and card.name not in models.setdefault(text, []):
                    models[text].append(card.name)
    return [*dict.fromkeys(own), *(f"with model {', '.join(names)}: {text}" for text, names in models.items())]


def _joined(terms: list[str]) -> str:
    return ", ".join(terms[:-1]) + f" and {terms[-1]}" if len(terms) > 1 else terms[0]


def process_split_notices(global_batch: int, world_size: int, terms: list[str]) -> list[str]:
    """The notice of a training whose ``global_batch`` torchrun splits over ``world_size`` processes while its
    ``terms`` (:func:`bench_ir.train.session.batch_dependent_terms`) depend on the images of one process's batch;
    empty in a single process or without such terms."""
    if world_size <= 1 or not terms:
        return []
    per_process = global_batch // world_size
    return [f"torchrun: the global batch of {global_batch} is split into {world_size} x {per_process}; "
            f"{_joined(terms)} come from the {per_process} images of each process: close to, not identical with, "
            f"one process training all {global_batch} at once"]


def process_count_notice(before: int, now: int, global_batch: int, terms: list[str]) -> str:
    """The notice of a run resumed with ``now`` processes whose checkpoint was written by ``before``: the data order
    is the same, the random draws of each process are not, and neither are the ``terms`` computed over one
    process's share of the ``global_batch`` (:func:`bench_ir.train.session.batch_dependent_terms`)."""
    text = (f"resumed with {now} processes instead of {before}: data order is unchanged but stochastic-depth draws "
            "differ from an uninterrupted run")
    if terms:
        text += (f", and {_joined(terms)} now come from {global_batch // now} images per process instead of "
                 f"{global_batch // before}")
    return text
