"""Score CPU samples against the spans that should own them (precision, recall, conflicts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyrospan_launch.receiver.records import ProfileSample

UNRELATED = "unrelated_work"


@dataclass(frozen=True)
class Score:
    """Attribution quality of one run, weighted by CPU time."""

    precision: float  # of labelled samples in some span's function: labelled with that span
    recall: float  # of samples in a span's function: labelled with that span
    conflicts: int  # samples carrying two span_id values (Pyroscope keeps one: never right)
    unrelated_labelled: float  # share of unrelated work that carries a span label
    judged_ms: float


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def score(samples: Iterable[ProfileSample], owner: dict[str, str]) -> Score:
    """``owner`` maps span id to the function its work runs in.

    A sample in one of those functions is right when its span_id is a span whose work
    runs in that function.  With one span per function that is the span that burned it;
    with many (the requests of a web service) any request of the same endpoint counts,
    as when judging by span name (which request of an endpoint burned a sample, the
    sample does not tell).
    """
    functions = set(owner.values())
    labelled = labelled_right = in_function = in_function_right = 0
    unrelated = unrelated_labelled = 0
    conflicts = 0
    for sample in samples:
        weight = sample.values[0]
        span_ids = [v for k, v in sample.label_pairs if k == "span_id"]
        if len(span_ids) > 1:
            conflicts += 1
        # Two span ids on one sample: Pyroscope keeps one of them, so it is never right.
        label = span_ids[-1] if len(span_ids) == 1 else ("conflict" if span_ids else None)
        if UNRELATED in sample.stack:
            unrelated += weight
            if label is not None:
                unrelated_labelled += weight
            continue
        function = next((f for f in sample.stack if f in functions), None)
        if function is None:
            continue
        right = label is not None and owner.get(label) == function
        in_function += weight
        if right:
            in_function_right += weight
        if label is not None and (label in owner or label == "conflict"):
            labelled += weight
            if right:
                labelled_right += weight
    return Score(
        precision=_ratio(labelled_right, labelled),
        recall=_ratio(in_function_right, in_function),
        conflicts=conflicts,
        unrelated_labelled=_ratio(unrelated_labelled, unrelated),
        judged_ms=in_function / 1e6,
    )
