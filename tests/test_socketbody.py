"""Upload bodies read straight from gunicorn's socket, with gunicorn's own readers."""

import os
import socket
import ssl
import threading

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from app.errors import SizeInvalid
from app.metrics import CountingInput
from app.v2.socketbody import socket_body

BODY = os.urandom(300 * 1024)
NEXT_REQUEST = b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n"


def gunicorn_environ(server, length, read_ahead=b""):
    """The WSGI environ gunicorn builds, with ``read_ahead`` read past the headers."""
    unreader = SocketUnreader(server)
    if read_ahead:
        unreader.unread(read_ahead)
    body = Body(LengthReader(unreader, length))
    return {"gunicorn.socket": server, "wsgi.input": CountingInput(body)}


def send(client, data):
    """Send ``data`` from a thread: it may be more than the socket buffers hold."""
    sender = threading.Thread(target=client.sendall, args=(data,))
    sender.start()
    return sender


def read_all(stream):
    buffer, received = bytearray(64 * 1024), bytearray()
    while size := stream.readinto(buffer):
        received += buffer[:size]
    return bytes(received)


def test_body_is_read_whole_and_gunicorn_is_told(connection):
    server, client = connection
    environ = gunicorn_environ(server, len(BODY), BODY[:1000])
    sender = send(client, BODY[1000:])

    assert read_all(socket_body(environ, len(BODY))) == BODY
    sender.join()
    counter = environ["wsgi.input"]
    assert counter.count == len(BODY) and counter.stream.reader.length == 0


def test_a_pipelined_request_stays_for_gunicorn(connection):
    server, client = connection
    environ = gunicorn_environ(server, len(BODY), BODY + NEXT_REQUEST)

    assert read_all(socket_body(environ, len(BODY))) == BODY
    unreader = environ["wsgi.input"].stream.reader.unreader
    assert unreader.take_buffered() == NEXT_REQUEST


def test_a_body_left_unread_is_drained_whole_by_gunicorn(connection):
    """A request refused before its body is read: the next request stays whole."""
    server, client = connection
    start, rest = BODY[:1000], BODY[1000:]
    environ = gunicorn_environ(server, len(BODY), start)
    socket_body(environ, len(BODY))  # made, never read
    sender = send(client, rest + NEXT_REQUEST)
    server.settimeout(5)  # a drain that waits for bytes never sent fails

    body = environ["wsgi.input"].stream
    while body.read(64 * 1024):
        pass
    sender.join()

    assert body.reader.unreader.take_buffered() + client_leftover(server) == (
        NEXT_REQUEST
    )


def client_leftover(server):
    """What is left on the server's socket right now, without waiting."""
    server.setblocking(False)
    try:
        return server.recv(1024 * 1024)
    except BlockingIOError:
        return b""
    finally:
        server.setblocking(True)


def test_read_returns_bytes_up_to_the_body_end(connection):
    server, client = connection
    environ = gunicorn_environ(server, 10)
    client.sendall(b"0123456789")
    stream = socket_body(environ, 10)

    assert stream.read(4) == b"0123"
    assert stream.read() == b"456789" and stream.read() == b""


def test_a_short_body_is_size_invalid_and_closes_the_connection(connection):
    server, client = connection
    environ = gunicorn_environ(server, len(BODY))
    client.sendall(BODY[:5000])
    client.shutdown(socket.SHUT_WR)

    with pytest.raises(SizeInvalid) as raised:
        read_all(socket_body(environ, len(BODY)))

    assert raised.value.detail == {"expected": len(BODY), "received": 5000}
    assert environ["wsgi.input"].stream.failed is True


def test_a_body_already_partly_read_is_left_to_the_wsgi_input(connection):
    server, client = connection
    environ = gunicorn_environ(server, 10)
    client.sendall(b"0123456789")
    environ["wsgi.input"].read(3)

    assert socket_body(environ, 10) is None


def test_a_tls_socket_or_no_socket_is_left_to_the_wsgi_input(connection):
    server, _client = connection
    environ = gunicorn_environ(server, 10)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    wrapped = context.wrap_socket(
        socket.socket(), server_hostname="localhost", do_handshake_on_connect=False
    )
    try:
        environ["gunicorn.socket"] = wrapped
        assert socket_body(environ, 10) is None
    finally:
        wrapped.close()
    del environ["gunicorn.socket"]
    assert socket_body(environ, 10) is None


def test_a_body_without_length_is_left_to_the_wsgi_input(connection):
    server, _client = connection

    assert socket_body(gunicorn_environ(server, 10), None) is None


def test_a_stalled_body_is_size_invalid_and_closes_the_connection(connection):
    server, client = connection
    environ = gunicorn_environ(server, len(BODY))
    client.sendall(BODY[:100])
    server.settimeout(0.05)  # what a server's idle timeout does to the socket

    with pytest.raises(SizeInvalid) as raised:
        read_all(socket_body(environ, len(BODY)))

    assert "stalled" in raised.value.detail["reason"]
    assert environ["wsgi.input"].stream.failed is True
