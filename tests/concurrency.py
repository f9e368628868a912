"""Racing calls for the PostgreSQL concurrency tests: each call in a thread with a request context
(so a session) of its own, all released at once by a barrier."""

from __future__ import annotations

import threading

from market.extensions import db

JOIN_TIMEOUT = 120  # seconds: a hung thread fails the test instead of the run


def all_at_once(app, calls) -> list[object]:
    """Run each call in its own thread and request context, all released together; return what
    each returned, or the exception it raised (rolled back, reported by the test)."""
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index, call) -> None:
        with app.test_request_context():
            start.wait()
            try:
                results[index] = call()
            except Exception as error:  # reported by the test, not lost in the thread
                db.session.rollback()
                results[index] = error

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a racing call never finished"
    return results
