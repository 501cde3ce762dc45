"""Holding Ctrl-C and SIGTERM back over a step that cannot be undone.

A database backup commits a course's snapshot, then logs the run and says
which snapshot it stored.  Ctrl-C between the two left a stored snapshot
that the run log called failed ("interrupted") and that the command never
named.  From the commit on, :class:`DeferredSignals` notes a SIGINT or
SIGTERM instead of raising it, and :meth:`DeferredSignals.close` delivers
it to the handler that stood before -- once the outcome is logged and
told, the run stops as it would have.  (Python runs signal handlers in the
main thread only: elsewhere this does nothing.)
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_HELD = (signal.SIGINT, signal.SIGTERM)


class DeferredSignals:
    """SIGINT and SIGTERM noted between :meth:`open` and :meth:`close`."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._noted: list[int] = []

    def open(self) -> None:
        """From now on a signal is noted, not raised."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for signum in _HELD:
            self._previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum: int, _frame: Any) -> None:
        self._noted.append(signum)

    def close(self) -> None:
        """The handlers as they were; a noted signal then goes to its own
        (Ctrl-C's raises KeyboardInterrupt, the CLI's SIGTERM too)."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        noted, self._noted = self._noted, []
        for signum in dict.fromkeys(noted):
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
