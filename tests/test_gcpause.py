"""The collector pause bulk operations take (dsrepo.gcpause)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from dsrepo.gcpause import paused, pausing


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_pause_disables_the_collector_and_the_outermost_end_restores_it() -> None:
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an inner end does not resume it
    assert gc.isenabled()


def test_an_error_inside_still_resumes_the_collector() -> None:
    @pausing
    def fail() -> None:
        assert not gc.isenabled()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fail()
    assert gc.isenabled()


def test_a_collector_the_process_disabled_stays_disabled() -> None:
    gc.disable()
    with paused():
        pass
    assert not gc.isenabled()


def test_pauses_in_two_threads_resume_when_the_last_one_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with paused():
        t.start()
        assert inside.wait(10)
    assert not gc.isenabled()  # the other thread is still inside its pause
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_the_decorator_keeps_the_function_and_its_result() -> None:
    @pausing
    def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    assert add(2, b=3) == 5 and add.__name__ == "add" and add.__doc__ == "Adds."
