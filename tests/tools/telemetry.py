#!/usr/bin/env python3
"""Query a running DPDK process's telemetry socket, as dpdk-telemetry.py does.

    telemetry.py FILE_PREFIX COMMAND...

Prints one JSON object: {command: reply}.
"""
import json
import socket
import sys


def main():
    prefix, cmds = sys.argv[1], sys.argv[2:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix)
    info = json.loads(s.recv(4096))
    out = {"_info": info}
    for c in cmds:
        s.send(c.encode())
        out[c] = json.loads(s.recv(1 << 20))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
