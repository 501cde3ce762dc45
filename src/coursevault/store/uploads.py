"""Pack files uploaded in the background while a write session fills the next.

Over a network a pack's upload takes as long as compressing it; with
uploads in flight the two overlap.  What stays as it was:

* write order (docs/format.md, "Durability"): a session waits for every
  upload (:meth:`PackUploads.drain`) before it writes an index file, so no
  index names a pack that is not whole in the store;
* errors: an upload that failed is raised by the next call (``write``,
  ``drain``), so the command fails -- never a snapshot over a missing pack
  (restic #3646);
* memory: at most ``parallel`` packs are in flight; ``write`` waits for one
  to finish before it queues another (each holds its pack's bytes, in memory
  or, past the session's spill size, in a temporary file: store/spool.py);
* reading back: a pack in flight is not in the store yet, so a session that
  reads its own objects drains first.

``parallel=1`` writes in the caller's thread, exactly as before: a local
folder gains nothing from threads.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from coursevault.store.backend import Backend
from coursevault.store.spool import Spool, write_spool


class PackUploads:
    """Writes of whole pack files, up to ``parallel`` at once (module docstring)."""

    def __init__(self, backend: Backend, parallel: int = 1) -> None:
        self.backend = backend
        self.parallel = max(1, parallel)
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[Future[None]] = []

    def write(self, key: str, spool: Spool) -> None:
        """Upload ``spool`` as ``key`` and close it; raises the error of an
        earlier upload.  ``spool`` must not change until the upload ends (a
        finished pack's: its writer is dropped, never reused)."""
        if self.parallel == 1:
            self._upload(key, spool)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="pack-upload")
        self._reap(wait_for_one=len(self._inflight) >= self.parallel)
        self._inflight.append(self._pool.submit(self._upload, key, spool))

    def _upload(self, key: str, spool: Spool) -> None:
        try:
            write_spool(self.backend, key, spool)
        finally:
            spool.close()

    def _reap(self, wait_for_one: bool) -> None:
        if wait_for_one:
            wait(self._inflight, return_when=FIRST_COMPLETED)
        done = [f for f in self._inflight if f.done()]
        self._inflight = [f for f in self._inflight if not f.done()]
        for future in done:
            future.result()  # raises the upload's error

    def drain(self) -> None:
        """Wait for every upload; raise the first error after all have ended."""
        if not self._inflight:
            return
        wait(self._inflight)
        done, self._inflight = self._inflight, []
        for future in done:
            future.result()

    def close(self) -> None:
        """Wait for every upload, ignoring their errors (the session is being
        aborted or is done), and stop the threads."""
        if self._inflight:
            wait(self._inflight)
            self._inflight = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
