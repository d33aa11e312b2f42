"""Work on a PostgreSQL target side by side: several connections, each one backend (one core of the server's),
taking tasks that divide by table — building current states at finalize, reading the stored state back for the
state digest (`targets/postgres.py`). The threads wait on PostgreSQL with the GIL released."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from typing import Any, TypeVar

import psycopg

# Connections working side by side. Each is one backend, one core of the server's.
_STREAMS = 3
# Batches read ahead by those connections and not yet taken (each up to `postgres_state._STATE_BATCH` rows).
_READ_AHEAD = 6

_T = TypeVar("_T")
_DONE = object()


def in_parallel(connect: Callable[[], psycopg.Connection],
                 tasks: Sequence[Callable[[psycopg.Connection], None]]) -> None:
    """Run `tasks` (each given a connection) side by side as `streamed` does; raises the first failure."""
    def produce(task: Callable[[psycopg.Connection], None]) -> Callable[[psycopg.Connection], Generator[None]]:
        def run(conn: psycopg.Connection) -> Generator[None]:
            task(conn)
            yield from ()
        return run

    for _ in streamed(connect, [produce(task) for task in tasks]):
        pass


def streamed(connect: Callable[[], psycopg.Connection],
              producers: Sequence[Callable[[psycopg.Connection], Generator[_T]]]) -> Iterator[_T]:
    """What `producers` yield, as they yield it: up to `_STREAMS` threads, each with its own connection from
    `connect`, take the producers one after another (at most `_READ_AHEAD` items wait to be taken). The first
    failure in a thread is raised here; when the caller stops early (or fails) the threads stop at their next
    item and their connections close before this returns. The threads wait on PostgreSQL with the GIL released."""
    if not producers:
        return
    work: queue.SimpleQueue[Callable[[psycopg.Connection], Generator[_T]]] = queue.SimpleQueue()
    for producer in producers:
        work.put(producer)
    out: queue.Queue[Any] = queue.Queue(maxsize=_READ_AHEAD)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            with closing(connect()) as conn:
                while not stop.is_set():
                    try:
                        producer = work.get_nowait()
                    except queue.Empty:
                        break
                    with closing(producer(conn)) as items:
                        for item in items:
                            if stop.is_set():
                                break
                            put((True, item))
        except BaseException as exc:  # handed to the caller, which raises it
            put((False, exc))
        finally:
            put(_DONE)

    threads = [threading.Thread(target=run, name="ledgerdr-pg", daemon=True)
               for _ in range(min(_STREAMS, len(producers)))]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = out.get()
            if item is _DONE:
                running -= 1
                continue
            ok, value = item
            if not ok:
                raise value
            yield value
    finally:
        stop.set()
        for thread in threads:
            thread.join()
