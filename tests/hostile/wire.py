"""Raw HTTP over a socket, for what ``requests`` will not send: a body that is declared
but never sent, a chunked body that does not stop, headers dribbled a byte at a time.
Loopback only; every helper is bounded in bytes and seconds.
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit


def address(url: str) -> tuple[str, int]:
    """(host, port) of an http://127.0.0.1:PORT URL; refuses anything but loopback."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None, url
    return parts.hostname, parts.port


def status_line(sock: socket.socket, timeout: float) -> str:
    """The first line of the response on ``sock`` ('' if none within ``timeout`` s)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def declared_but_not_sent(url: str, path: str, declared: int, *, headers: str = "",
                          timeout: float = 10.0) -> tuple[str, float]:
    """POST ``path`` declaring a ``declared``-byte multipart body, send 1 KiB of it and
    wait: (status line, seconds until it came). A server that waited for the body would
    answer nothing before ``timeout``."""
    head = (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {declared}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n" + headers + "\r\n")
    with socket.create_connection(address(url), timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + b"--x\r\n" + b"\0" * 1024)
        line = status_line(sock, timeout)
        return line, time.monotonic() - started


def endless_chunks(url: str, path: str, *, chunk: int = 1 << 20, most: int = 60,
                   timeout: float = 20.0) -> tuple[str, int]:
    """POST ``path`` with a chunked body of up to ``most`` chunks, stopping as soon as
    the server answers: (status line, bytes sent)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n\r\n")
    block = f"{chunk:x}\r\n".encode() + b"\0" * chunk + b"\r\n"
    sent = 0
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for _ in range(most):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            try:
                sock.sendall(block)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        return status_line(sock, timeout), sent


def dribble_headers(url: str, connections: int, seconds: float,
                    every: float = 0.5) -> int:
    """Slowloris: open ``connections`` sockets, send a request line, then one header
    byte per socket every ``every`` s for ``seconds`` s, never finishing; close them all.
    Returns how many stayed open to the end (the server may drop some: fine)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(connections):
            sock = socket.create_connection(address(url), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            socks.append(sock)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for sock in list(socks):
                try:
                    sock.sendall(b"a")
                except OSError:
                    socks.remove(sock)
            time.sleep(every)
        return len(socks)
    finally:
        for sock in socks:
            sock.close()
