"""Chunked request bodies for the tests: framing, and the sizes to try."""

import itertools
import os

import pytest

MIB = 1024 * 1024
PAYLOAD = os.urandom(3 * MIB + 5)
SIZES = {
    "empty": 0,
    "one byte": 1,
    "under 1 MiB": MIB - 1,
    "over 1 MiB": MIB + 1,
    "3 MiB": len(PAYLOAD),
}
# Chunk sizes, taken in turn.
CHUNKINGS = {
    "1 byte": (1,),
    "7 bytes": (7,),
    "32 KiB": (32 * 1024,),
    "1 MiB + 3": (MIB + 3,),
    "one chunk": (len(PAYLOAD),),
    "mixed": (1, 7, 32 * 1024, MIB + 3, 3, 65536, 4095),
}
# The largest body worth framing in chunks this small: beyond it, a million
# chunks or more are slow and show nothing more.
LARGEST_FOR_SMALL_CHUNKS = {1: 1, 7: MIB + 1}


def chunked(payload, sizes, extension=b"", trailers=b""):
    """Frame ``payload`` in chunks of ``sizes`` (in turn), then the last chunk."""
    framed, start = bytearray(), 0
    for size in itertools.cycle(sizes):
        if start >= len(payload):
            break
        piece = payload[start : start + size]
        framed += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
        start += size
    return bytes(framed) + b"0" + extension + b"\r\n" + trailers + b"\r\n"


def chunking_cases():
    """pytest params ``(sizes, size)``: each chunking with each body size."""
    for (chunking, sizes), (label, size) in itertools.product(
        CHUNKINGS.items(), SIZES.items()
    ):
        if size <= LARGEST_FOR_SMALL_CHUNKS.get(sizes[0], size):
            yield pytest.param(sizes, size, id=f"{chunking}-{label}")


# Broken bodies: each is SIZE_INVALID however its bytes arrive, and whatever
# the client sends after them. First those whose framing is wrong...
MALFORMED = {
    "bad hex": b"zz\r\n",
    "0x prefix": b"0x3\r\nabc\r\n0\r\n\r\n",
    "sign": b"+3\r\nabc\r\n0\r\n\r\n",
    "underscore": b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    "space before the size": b" 3\r\nabc\r\n0\r\n\r\n",
    "space after the size": b"3 \r\nabc\r\n0\r\n\r\n",
    "no size": b"\r\nabc\r\n0\r\n\r\n",
    "no size before an extension": b";a\r\nabc\r\n0\r\n\r\n",
    "size line too long": b"3;a=" + b"b" * 100_000 + b"\r\nabc\r\n0\r\n\r\n",
    "bad extension": b"3;=\r\nabc\r\n0\r\n\r\n",
    "bare CR in an extension": b"3;a\rb\r\nabc\r\n0\r\n\r\n",
    "bare LF ends the size": b"3\nabc\r\n0\r\n\r\n",
    "bare LF after the data": b"3\r\nabc\n0\r\n\r\n",
    "no CRLF after the data": b"3\r\nabcXY0\r\n\r\n",
    "data longer than its size": b"3\r\nabcd\r\n0\r\n\r\n",
    "trailer section too large": b"3\r\nabc\r\n0\r\n" + b"X-A: 1\r\n" * 120_000,
    "forbidden trailer": b"3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n",
    "bad trailer name": b"3\r\nabc\r\n0\r\nX A: 1\r\n\r\n",
    "after good chunks": chunked(PAYLOAD[: 2 * MIB], (32 * 1024,))[:-5] + b"zz\r\n",
}
# ... then those the client stops sending (an EOF ends them), or that are
# refused for what they hold before the EOF (a request sent behind them could
# change which error is given).
CUT_OFF = {
    "EOF in the data": b"a\r\n01234",
    "EOF right after the data": b"a\r\n0123456789",
    "EOF after the CR": b"a\r\n0123456789\r",
    "EOF in a size line": b"a\r\n0123456789\r\n1",
    "EOF before the final CRLF": b"3\r\nabc\r\n0\r\n",
    "EOF in the trailers": b"3\r\nabc\r\n0\r\nX-A: 1\r\n",
    "EOF after good chunks": chunked(PAYLOAD[: 2 * MIB], (32 * 1024,))[:-5],
    "size line never ends": b"3" * 9000,
    "bare LF in the trailers": b"3\r\nabc\r\n0\r\nX-A: 1\nX-B: 2\n",
}
