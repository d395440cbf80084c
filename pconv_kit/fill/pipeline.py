"""A threaded read -> batch -> predict -> write pipeline, independent of files and of the model.

Reader threads prepare items while the calling thread runs the model on batches of items with the same key
(the image size) and writer threads store the results. Results are handed to ``record`` in the calling thread.
At most ``lookahead`` items are read ahead and ``2 * lookahead`` writes are queued, so memory stays bounded
however many tasks there are.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Finished", "Pipeline"]

T = TypeVar("T")  # a task
I = TypeVar("I")  # an item, read and ready for the model  # noqa: E741
P = TypeVar("P")  # a prediction
R = TypeVar("R")  # a result


@dataclass(frozen=True)
class Finished(Generic[R]):
    """What ``read`` returns for a task that is done without the model or the writers (e.g. a failure)."""

    result: R


class Pipeline(Generic[T, I, P, R]):
    """Run ``read`` -> ``predict`` (batched by ``batch_key``) -> ``write`` over tasks, with thread pools.

    Args:
        read: ``task -> item | Finished(result)``, in reader threads.
        predict: ``items -> predictions`` (same length), in the calling thread.
        write: ``(item, prediction or None) -> result``, in writer threads.
        record: called with every result, in the calling thread, as results complete.
        batch_key: ``item -> key`` of items that may share a ``predict`` call, or ``None`` for an item that
            needs no prediction (written with ``None``).
        predict_failed: ``(item, exception) -> result`` for an item whose prediction failed on its own (a batch
            that fails with one of ``recoverable`` is retried one item at a time first).
        recoverable: exceptions of ``predict`` that fail items instead of stopping the run (out of memory,
            a model refusing an input); anything else, a programming error, propagates.
        batch_size: items per ``predict`` call.
        workers: reader threads and writer threads (each).

    Example:
        >>> done = []
        >>> pipe = Pipeline(
        ...     read=lambda n: n if n >= 0 else Finished(f"{n}: negative"),
        ...     predict=lambda items: [n * n for n in items],
        ...     write=lambda n, p: f"{n}: {p}",
        ...     record=done.append,
        ...     batch_key=lambda n: n % 2,
        ...     predict_failed=lambda n, exc: f"{n}: failed",
        ...     batch_size=2,
        ... )
        >>> pipe.run([1, 2, -1, 3])
        >>> sorted(done)
        ['-1: negative', '1: 1', '2: 4', '3: 9']
    """

    def __init__(
        self,
        read: Callable[[T], I | Finished[R]],
        predict: Callable[[Sequence[I]], Sequence[P]],
        write: Callable[[I, P | None], R],
        record: Callable[[R], None],
        *,
        batch_key: Callable[[I], Hashable | None],
        predict_failed: Callable[[I, BaseException], R],
        recoverable: tuple[type[BaseException], ...] = (RuntimeError, MemoryError),
        batch_size: int = 4,
        workers: int = 2,
    ) -> None:
        self.read, self.predict, self.write, self.record = read, predict, write, record
        self.batch_key, self.predict_failed, self.recoverable = batch_key, predict_failed, recoverable
        self.batch_size, self.workers = batch_size, workers
        self.lookahead = max(2 * batch_size, 2 * workers)
        self._writes: collections.deque[Future[R]] = collections.deque()
        self._groups: dict[Hashable, list[I]] = {}
        self._writer: ThreadPoolExecutor | None = None

    def run(self, tasks: Iterable[T]) -> None:
        """Process every task; returns when every result was recorded.

        On ``KeyboardInterrupt`` no new work starts, the writes already running finish and are recorded, then the
        interrupt propagates, so a caller's counts match what was written.
        """
        pending = iter(tasks)
        reads: collections.deque[Future[Any]] = collections.deque()
        reader = ThreadPoolExecutor(self.workers, thread_name_prefix="pconv-read")
        self._writer = ThreadPoolExecutor(self.workers, thread_name_prefix="pconv-write")
        try:
            for task in pending:
                reads.append(reader.submit(self.read, task))
                if len(reads) >= self.lookahead:
                    break
            while reads:
                loaded = reads.popleft().result()
                nxt = next(pending, None)
                if nxt is not None:
                    reads.append(reader.submit(self.read, nxt))
                self._route(loaded)
                self._drain(2 * self.lookahead)
            for key in list(self._groups):
                self._run_batch(self._groups.pop(key))
            self._drain(0)
        except KeyboardInterrupt:
            reader.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True, cancel_futures=True)
            for future in self._writes:
                if future.done() and not future.cancelled():
                    self.record(future.result())
            raise
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True, cancel_futures=True)

    def _route(self, loaded: I | Finished[R]) -> None:
        """A finished task is recorded, an item without prediction written, others grouped into batches."""
        if isinstance(loaded, Finished):
            self.record(loaded.result)
            return
        key = self.batch_key(loaded)
        if key is None:
            self._submit_write(loaded, None)
            return
        group = self._groups.setdefault(key, [])
        group.append(loaded)
        if len(group) >= self.batch_size:
            self._run_batch(self._groups.pop(key))
        elif sum(len(g) for g in self._groups.values()) > self.lookahead:  # many keys: run the largest group
            self._run_batch(self._groups.pop(max(self._groups, key=lambda k: len(self._groups[k]))))

    def _run_batch(self, batch: list[I]) -> None:
        try:
            predictions = self.predict(batch)
        except self.recoverable as exc:
            if len(batch) > 1:  # retry one by one, then fail only the item that fails alone
                for item in batch:
                    self._run_batch([item])
                return
            self.record(self.predict_failed(batch[0], exc))
            return
        for item, prediction in zip(batch, predictions):
            self._submit_write(item, prediction)
        self._drain(2 * self.lookahead)

    def _submit_write(self, item: I, prediction: P | None) -> None:
        assert self._writer is not None
        self._writes.append(self._writer.submit(self.write, item, prediction))

    def _drain(self, limit: int) -> None:
        """Record finished writes in order; block until at most ``limit`` are queued."""
        while self._writes and (len(self._writes) > limit or self._writes[0].done()):
            self.record(self._writes.popleft().result())
