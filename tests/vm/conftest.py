"""Fixtures for tests that boot a QEMU guest on Debian's kernel (see harness.py).

Where the VM cannot be had (no QEMU, no apt, not x86_64 Linux), these tests skip with the
reason; under CI=true they fail instead, so a CI machine that lost its tools is noticed.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import NoReturn

import pytest

from tests.vm.build_image import BuildError, Image, ensure_image
from tests.vm.harness import VM


def vm_unavailable(reason: str) -> NoReturn:
    """Skip (or, under CI=true, fail) the requesting test: the VM cannot run here."""
    message = f"VM tests unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _uncaptured(config: pytest.Config) -> AbstractContextManager[object]:
    # The first build downloads ~70 MB: let its progress lines reach the terminal even
    # though pytest captures output (they are printed only when something is built).
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        return nullcontext()
    manager: AbstractContextManager[object] = capture.global_and_fixture_disabled()
    return manager


@pytest.fixture(scope="session")
def vm_image(pytestconfig: pytest.Config) -> Image:
    try:
        with _uncaptured(pytestconfig):
            return ensure_image()
    except BuildError as exc:
        vm_unavailable(str(exc))


@pytest.fixture(scope="session")
def vm(vm_image: Image) -> VM:
    return VM(vm_image)
