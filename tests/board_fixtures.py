"""Starting the board sandbox for tests: a seeded test world on a database of its own, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from csops.sandbox.board.seed import seed_board
from csops.sandbox.board.server import BoardSandbox


@contextmanager
def running_board(postgres, home: Path, prefix: str) -> Iterator[BoardSandbox]:
    """The board API over the test world, on a fresh database named after `prefix`."""
    from tests.conftest import TEST_WORLD, create_database, free_port

    url = create_database(postgres, prefix)
    seed_board(url, TEST_WORLD, progress=lambda _message: None)
    sandbox = BoardSandbox(home, url, free_port())
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
