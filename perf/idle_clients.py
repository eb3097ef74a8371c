#!/usr/bin/env python3
"""Hold many idle kept-alive HTTP connections open.

    idle_clients.py HOST PORT CONNS PROCS

Spreads CONNS connections over PROCS processes (a process in a namespace
here can hold about 20000 open files). Each connection sends one
`GET / HTTP/1.1` and reads the whole response (Content-Length), then stays
open and idle. Prints `ready held=N failed=F seconds=S` once every process
has done its share, then holds everything until its standard input closes
(or SIGTERM), and exits, closing them all.

Bounded: a connection that does not connect or answer within 5 s counts as
failed; the whole opening phase stops after 120 s.
"""
import os
import signal
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_clients\r\nAccept: */*\r\n\r\n"


def one(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    s.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the headers")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if not head.startswith(b"HTTP/1.1 200"):
        raise OSError(head.split(b"\r\n")[0].decode(errors="replace"))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed in the body")
        body += chunk
    return s


def child(host: str, port: int, n: int, w: int, deadline: float) -> None:
    held, failed = [], 0
    for _ in range(n):
        if time.monotonic() > deadline:
            failed += 1
            continue
        try:
            held.append(one(host, port))
        except OSError:
            failed += 1
    os.write(w, f"{len(held)} {failed}\n".encode())
    os.close(w)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        signal.pause()


def main() -> None:
    host, port, conns, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    start = time.monotonic()
    deadline = start + 120
    kids, pipes = [], []
    for i in range(procs):
        r, w = os.pipe()
        share = conns // procs + (1 if i < conns % procs else 0)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            child(host, port, share, w, deadline)
            os._exit(0)
        os.close(w)
        kids.append(pid)
        pipes.append(r)
    held = failed = 0
    for r in pipes:
        with os.fdopen(r) as f:
            line = f.readline().split()
        if len(line) == 2:
            held += int(line[0])
            failed += int(line[1])
    took = time.monotonic() - start
    print(f"ready held={held} failed={failed} seconds={took:.1f}", flush=True)

    def stop(*_):
        for pid in kids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in kids:
            os.waitpid(pid, 0)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sys.stdin.read()
    stop()


if __name__ == "__main__":
    main()
