"""The conformance kit: executable checks that a backend honours the featurelens contract.

From the command line::

    featurelens check-backend mybackend

prints one line per check (passed, failed with what was wrong, or skipped because the backend
does not declare that capability) and exits 0 only when nothing failed. From a plugin's own
pytest suite, one test per check::

    import pytest
    from featurelens.testing import CHECKS, require

    @pytest.mark.parametrize("check", CHECKS, ids=str)
    def test_conformance(check):
        require(check, "mybackend")      # fails with the kit's message, or skips

Checks run on a small spec built for the purpose (non-square input, several kernel sizes, three
classes), random weights and a float64 NumPy reference forward pass. Training checks run on the
CPU for a few epochs of synthetic data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from featurelens.backends.contract import Backend
from featurelens.backends.registry import Registry, registry
from featurelens.errors import BackendError, FeaturelensError
from featurelens.testing import checks, resume_checks
from featurelens.testing.checks import Check, CheckFailed, CheckSkipped, KitContext

#: Every check of the kit, in the order ``featurelens check-backend`` runs them.
CHECKS: tuple[Check, ...] = (*checks.CHECKS, *resume_checks.CHECKS)

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class CheckResult:
    """What one check found: ``status`` is ``passed``, ``failed`` or ``skipped``."""

    check: str
    status: str
    message: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def line(self) -> str:
        """``PASSED  name  message``: what ``featurelens check-backend`` prints."""
        return f"{self.status.upper():<7} {self.check:<31} {self.message} ({self.seconds:.1f} s)"


def _find(name: str) -> Check:
    for check in CHECKS:
        if check.name == name:
            return check
    raise BackendError(f"there is no check named {name!r}; the checks are {', '.join(c.name for c in CHECKS)}")


def _resolve(backend: str | Backend, reg: Registry) -> tuple[Backend, Registry | None]:
    """The backend, and the registry when it is the registered one (an ad-hoc instance has none)."""
    if isinstance(backend, Backend):
        registered = backend.name in reg.backends and reg.get(backend.name) is backend
        return backend, reg if registered else None
    return reg.get(backend), reg


def _run(check: Check, ctx: KitContext) -> CheckResult:
    started = time.perf_counter()
    if check.capability is not None and not ctx.backend.supports(check.capability):
        return CheckResult(check.name, SKIPPED, f"the backend does not declare the {check.capability.value!r} "
                           "capability", 0.0)
    try:
        message = check.run(ctx)
        status = PASSED
    except CheckSkipped as exc:
        status, message = SKIPPED, str(exc)
    except CheckFailed as exc:
        status, message = FAILED, str(exc)
    except Exception as exc:  # a backend that crashes fails the check, with the cause
        status, message = FAILED, f"raised {type(exc).__name__}: {exc}"
    return CheckResult(check.name, status, message, time.perf_counter() - started)


def check_backend(backend: str | Backend, *, only: Iterable[str] | None = None, cross_backend: bool = True,
                  on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run the kit (or the checks named in ``only``) on ``backend``: a registered name or an instance.

    ``on_result`` is called as each check finishes (the CLI prints there). A backend given as an
    instance that is not the registered one skips the registry's part of the registration check.
    """
    chosen = [_find(name) for name in only] if only else list(CHECKS)
    try:
        resolved, reg = _resolve(backend, registry)
    except FeaturelensError as exc:
        results = [CheckResult(c.name, FAILED, f"the backend did not load: {exc}", 0.0) for c in chosen]
        for result in results:
            if on_result:
                on_result(result)
        return results
    ctx = KitContext(resolved, reg, cross_backend=cross_backend)
    results = []
    for check in chosen:
        result = _run(check, ctx)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_check(check: Check | str, backend: str | Backend, cross_backend: bool = True) -> CheckResult:
    """Run one check on ``backend``."""
    name = check if isinstance(check, str) else check.name
    return check_backend(backend, only=[name], cross_backend=cross_backend)[0]


def require(check: Check | str, backend: str | Backend) -> None:
    """For pytest: fail with the kit's message when the check fails, skip when it does not apply."""
    import pytest  # only authors' test suites call this

    result = run_check(check, backend)
    if result.status == SKIPPED:
        pytest.skip(result.message)
    if result.failed:
        pytest.fail(f"{result.check}: {result.message}", pytrace=False)


def assert_conforms(backend: str | Backend, cross_backend: bool = True) -> list[CheckResult]:
    """Run every check; raise AssertionError listing the failures, else return the results."""
    results = check_backend(backend, cross_backend=cross_backend)
    failures = [r for r in results if r.failed]
    if failures:
        raise AssertionError("the backend fails the featurelens conformance kit:\n" +
                             "\n".join(f"  {r.check}: {r.message}" for r in failures))
    return results


def summary(results: list[CheckResult]) -> str:
    """``N passed, N failed, N skipped`` for the lines above it."""
    count = {s: sum(r.status == s for r in results) for s in (PASSED, FAILED, SKIPPED)}
    noun = "check" if count[PASSED] == 1 else "checks"
    return f"{count[PASSED]} {noun} passed, {count[FAILED]} failed, {count[SKIPPED]} skipped"


__all__ = ["CHECKS", "Check", "CheckFailed", "CheckResult", "CheckSkipped", "KitContext", "assert_conforms",
           "check_backend", "require", "run_check", "summary"]
