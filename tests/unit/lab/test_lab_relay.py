"""The relay SSH uses as its ProxyCommand: bytes go both ways unchanged and it ends when the server closes."""

from __future__ import annotations

import os
import socket
import threading

from stackcrate.lab.relay import relay


def test_the_relay_copies_both_ways_until_the_server_closes():
    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()      # what SSH writes to the relay's standard input
    out_r, out_w = os.pipe()    # what the relay writes to its standard output
    payload = os.urandom(300_000)   # more than one read and more than a pipe holds at once

    def server():
        got = b""
        while len(got) < len(payload):
            got += theirs.recv(65536)
        theirs.sendall(got[::-1])
        theirs.close()

    def client_reads(into: list):
        data = b""
        while chunk := os.read(out_r, 65536):
            data += chunk
        into.append(data)

    received: list = []
    threads = [threading.Thread(target=server), threading.Thread(target=client_reads, args=(received,))]
    for t in threads:
        t.start()
    writer = threading.Thread(target=lambda: (os.write(in_w, payload) and None, os.close(in_w)))
    writer.start()
    relay(ours, in_r, out_w)
    os.close(out_w)
    for t in (*threads, writer):
        t.join(10)
    assert received == [payload[::-1]]
