#!/usr/bin/env python3
"""A stand-in for systemd's notification socket, for tests/deploy/deploy.sh.

Binds ADDRESS (a path, or @name for an abstract socket) as a unix datagram socket with
SO_PASSCRED and appends one JSON line per datagram to OUT: {"t_ms", "pid" (the sender, from
the kernel's credentials), "msg"}. For a datagram holding READY=1 it first GETs BASE_URL +
/health/ready and /health and records their statuses ("ready_http", "health_http"), so the
test sees what a client saw at the instant the service manager would have been told. The
first line, {"listening": true}, is written once the socket is bound. Exits after
MAX_SECONDS. Usage: notify_listener.py ADDRESS OUT BASE_URL MAX_SECONDS
"""

import json
import socket
import struct
import sys
import time
import urllib.error
import urllib.request

address, out_path, base_url, max_seconds = sys.argv[1:5]
deadline = time.monotonic() + float(max_seconds)
# Loopback only: never through a proxy from the environment.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url):
    try:
        with opener.open(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return f"error: {e}"


sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
with open(out_path, "a", encoding="utf-8") as out:
    out.write(json.dumps({"listening": True}) + "\n")
    out.flush()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(12))
        except socket.timeout:
            break
        record = {"t_ms": round(time.monotonic() * 1000, 1), "pid": None,
                  "msg": data.decode("utf-8", "replace")}
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                record["pid"] = struct.unpack("iII", payload[:12])[0]
        if "READY=1" in record["msg"].split("\n"):
            record["ready_http"] = status_of(base_url + "/health/ready")
            record["health_http"] = status_of(base_url + "/health")
        out.write(json.dumps(record) + "\n")
        out.flush()
