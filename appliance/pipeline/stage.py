"""Stages and sinks: small objects the pipeline runs, one thread each."""

from __future__ import annotations

import abc
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from appliance.frame import Frame


class Stage(abc.ABC):
    """Transforms a frame. Returning None drops the frame on purpose (not an error)."""

    name: str = "stage"

    @abc.abstractmethod
    def process(self, frame: Frame) -> Frame | None: ...

    def configure(self, config: Any) -> None:  # noqa: B027 - optional hook, default no-op
        """Apply a new configuration; called by the stage's own thread between frames."""

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources; called once after the stage's thread stopped."""


@runtime_checkable
class RunsModels(Protocol):
    """A stage whose networks a model update replaces (vision, background, enhance)."""

    def load_models(self, bundles_dir: Path) -> Any:
        """Verify and load this stage's networks from ``bundles_dir`` on the caller's
        thread; raises (BundleError, ModelError, OSError) and changes nothing if bad."""

    def swap_models(self, models: Any) -> None:
        """Put what ``load_models`` returned in place; run between frames."""


class Sink(abc.ABC):
    """Consumes the pipeline's output (preview, UVC gadget, codec stream, file)."""

    name: str = "sink"

    @abc.abstractmethod
    def consume(self, frame: Frame) -> bool:
        """Deliver one frame; False if the sink had nobody to deliver to (idle)."""

    def wants_frames(self) -> bool:
        """False while nobody watches: the pipeline may then skip work for this sink."""
        return True

    def configure(self, config: Any) -> None:  # noqa: B027 - optional hook, default no-op
        """Apply a new configuration between frames."""

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release resources."""


class Passthrough(Stage):
    """Does nothing: the baseline that the benchmark measures the frame path with."""

    name = "passthrough"

    def process(self, frame: Frame) -> Frame:
        return frame


S = TypeVar("S")


def settings_from(cls: type[S], section: Any, current: S | None = None) -> S:
    """A stage's settings dataclass from a config section: the section's value for each
    field it has, else ``current``'s (or the default). Stages stay free of the schema."""
    base = current if current is not None else cls()
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{n: getattr(section, n, getattr(base, n)) for n in names})
