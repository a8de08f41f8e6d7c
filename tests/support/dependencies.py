"""Tests that need a program or package from outside the project: skipped,
saying why, where it is absent; but under ``CI=true``, where ``.ci/run``
installs every one of them, its absence fails the tests instead, so that a
dependency CI lost cannot pass as a skip."""
from __future__ import annotations

import os
import unittest
from typing import Callable, NoReturn, Optional, Type, TypeVar

__all__ = ["IN_CI", "requires", "unavailable"]

#: Set by CI services, and what ``.ci/run`` installs the test-only
#: packages under.
IN_CI = os.environ.get("CI") == "true"

T = TypeVar("T", bound=Type[unittest.TestCase])


def unavailable(reason: str) -> NoReturn:
    """Skips the calling test (or class, from ``setUpClass``) for a missing
    dependency; fails it under ``CI=true``."""
    if IN_CI:
        raise AssertionError(f"{reason}; CI=true, where .ci/run installs it, so this is a failure, not a skip")
    raise unittest.SkipTest(reason)


def requires(missing: Optional[str]) -> Callable[[T], T]:
    """Class decorator: ``missing`` says why a dependency is absent (``None``
    when it is present); the class's tests are then skipped, or fail under
    ``CI=true`` (see ``unavailable``)."""
    def decorate(cls: T) -> T:
        if missing is None:
            return cls
        if not IN_CI:
            return unittest.skip(missing)(cls)

        def set_up_class(klass: type) -> None:
            unavailable(missing)
        cls.setUpClass = classmethod(set_up_class)  # type: ignore[assignment,method-assign]
        return cls
    return decorate
