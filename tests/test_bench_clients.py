"""The benchmark's streamed push sends exactly docker's chunked framing."""

import os
import socket
import threading
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
PIECE = 32 * 1024


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import clients

    return clients


def chunked(data):
    """The chunked encoding of data in pieces of 32 KiB, as docker sends it."""
    pieces = [data[start : start + PIECE] for start in range(0, len(data), PIECE)]
    framed = b"".join(b"%X\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return framed + b"0\r\n\r\n"


# Sizes around a piece, and of many sendmsg calls (32 pieces each), some
# partial.
@pytest.mark.parametrize("size", [0, 1, PIECE, PIECE + 1, 12 * 1024 * 1024 + 5])
def test_a_file_is_sent_as_32_kib_chunks(clients, tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    sender, receiver = socket.socketpair()
    sender.settimeout(10)  # as http.client's socket: sends may be partial
    received = bytearray()

    def receive():
        while block := receiver.recv(1024 * 1024):
            received.extend(block)

    reader = threading.Thread(target=receive)
    reader.start()
    try:
        with open(path, "rb") as file:
            clients.FramedChunks(file).send(sender)
        sender.shutdown(socket.SHUT_WR)
        reader.join(timeout=30)
    finally:
        sender.close()
        receiver.close()

    assert bytes(received) == chunked(data)
