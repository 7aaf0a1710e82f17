"""What belongs to the process: Ctrl-C and SIGTERM. The only module of nestviz that installs signal handlers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_held: dict[int, object] = {}  # the handlers that Ctrl-C and SIGTERM had before they were held
_came: list[int] = []  # the signals that came while held


def hold_interrupts() -> None:
    """From now until :func:`release_interrupts`, Ctrl-C and SIGTERM wait: ``import torch`` cut in half leaves torch
    broken (a RecursionError later: exit 1), and typer turns Ctrl-C while it parses into exit 130 without a word."""
    if threading.current_thread() is threading.main_thread() and not _held:
        _held.update({s: signal.signal(s, lambda signum, frame: _came.append(signum))
                      for s in (signal.SIGINT, signal.SIGTERM)})


def release_interrupts() -> None:
    """Ctrl-C and SIGTERM act again; one that came while they were held is raised now, as KeyboardInterrupt."""
    for s, handler in _held.items():
        signal.signal(s, handler)  # type: ignore[arg-type]
    _held.clear()
    if _came:
        _came.clear()
        raise KeyboardInterrupt


def ignore_sigint() -> None:
    """Figure workers leave Ctrl-C to the main process, which lets the figures being drawn land."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM stops a run like Ctrl-C does (cleanly, resumable); the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():  # handlers belong to the main thread
        yield
        return

    def on_term(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
