"""A notebook's history as the steps of the stock timeline slider.

The slider of ``jupyter-docprovider`` shows one position per timestamp. A step here is one
version of the change log — a squashed run is one already — or one *edit burst*: consecutive
versions of one author, each less than ``BURST_SECONDS`` after the one before, are one step
(typing a line makes a version per keystroke; the slider shows the line once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..store.changelog import Version

#: versions of one author closer than this (seconds) are one step of the timeline
BURST_SECONDS = 5.0


@dataclass(frozen=True)
class Step:
    """One position of the slider: the notebook as of ``version``."""

    version: int
    time: float
    authors: tuple[str, ...]


def timeline_steps(versions: Iterable[Version], burst_seconds: float = BURST_SECONDS) -> list[Step]:
    """The steps of a history (versions oldest first), oldest first; the last is the last
    version."""
    steps: list[Step] = []
    previous: Version | None = None
    for version in versions:
        authors = _authors(version.author)
        same_burst = (
            previous is not None
            and steps
            and previous.author == version.author
            and version.time - previous.time < burst_seconds
        )
        if same_burst:
            steps[-1] = Step(version.version, version.time, authors)
        else:
            steps.append(Step(version.version, version.time, authors))
        previous = version
    return steps


def _authors(author: str | None) -> tuple[str, ...]:
    # a squashed range records its authors joined (store/history.py)
    return tuple(author.split(", ")) if author else ()
