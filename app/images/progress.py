"""Progress: the blocks of an import's files, counted on a bar on stderr."""

import contextlib
import sys

import click

BLOCK_SIZE = 1024 * 1024


@contextlib.contextmanager
def progress_bar(enabled, total):
    """Yield a callable that advances a bar on stderr by a count of bytes."""
    if not enabled:
        yield _ignore_progress
        return
    bar = click.progressbar(length=max(total, 1), label="Importing", file=sys.stderr)
    with bar:
        yield bar.update


def _ignore_progress(count):
    """Take a progress report and do nothing with it."""


def read_blocks(stream, advance):
    """Yield a file's blocks, reporting each one's size to ``advance``."""
    while block := stream.read(BLOCK_SIZE):
        advance(len(block))
        yield block
