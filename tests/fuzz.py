"""Fuzzing as tests: Hypothesis budgets and the corpus of inputs that once broke us.

Every parser of outside input has a property test marked ``fuzz``. ``make test`` runs
each with a small fixed budget (derandomized: the same cases on every run, so CI is
repeatable); ``make fuzz`` runs them with ``FUZZ_EXAMPLES`` cases each (100,000 unless
told otherwise), randomly, keeping what it finds in .cache/hypothesis.

An input that ever crashed a target is kept in ``tests/corpus/<target>/`` (one file per
input, raw bytes) and replayed by that target's tests through :func:`corpus`, so a fix
cannot quietly regress.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

CORPUS = Path(__file__).resolve().parent / "corpus"

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "test",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 150),
    deadline=None,  # CI machines differ in speed; budgets are counted in cases
    derandomize=True,
    database=None,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 100_000),
    deadline=None,
    database=DirectoryBasedExampleDatabase(
        str(Path(__file__).resolve().parents[1] / ".cache" / "hypothesis")
    ),
    suppress_health_check=_SLOW_OK,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "test"))


def corpus(target: str) -> list[Path]:
    """The kept inputs of ``target`` (for ``pytest.mark.parametrize``), sorted by name."""
    return sorted(p for p in (CORPUS / target).glob("*") if p.is_file())
