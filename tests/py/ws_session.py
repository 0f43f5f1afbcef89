"""One WebSocket client session driven line by line by a Rust integration test.

    python ws_session.py URL [ORIGIN]

Uses the `websockets` library (a real RFC 6455 client: it masks its frames, answers the
server's pings by itself, and runs the closing handshake). After connecting it prints one JSON
line, {"type": "open"} or {"type": "error", "error": "..."}, then reads one JSON command per
line on stdin and answers each with exactly one JSON line on stdout:

    {"op": "send", "text": "..."}              -> {"type": "sent"}
    {"op": "recv", "timeout": 10}              -> {"type": "text", "text": "..."}
                                                  {"type": "binary", "hex": "..."}
                                                  {"type": "closed", "code": 1000, "reason": "..."}
                                                  {"type": "timeout"}
    {"op": "ping", "data": "...", "timeout": 10} -> {"type": "pong"} | {"type": "timeout"}
                                                  | {"type": "closed", ...}
    {"op": "close", "code": 1000}              -> {"type": "closed", "code": ..., "reason": ...}
    {"op": "abort"}                            -> {"type": "aborting"}, then the process exits at
                                                  once: the kernel closes the TCP connection
                                                  without a WebSocket close frame
    {"op": "exit"}                             -> the process exits (no answer)

"code" is the close code the server sent (null when the connection ended without a close
frame from the server). The script exits when stdin ends, so a test that fails never leaves it
behind.
"""

import json
import os
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def closed(ws, exc=None):
    rcvd = getattr(exc, "rcvd", None) if exc is not None else None
    if rcvd is None and ws is not None:
        rcvd = getattr(ws.protocol, "close_rcvd", None)
    if rcvd is None:
        return {"type": "closed", "code": None, "reason": None}
    return {"type": "closed", "code": rcvd.code, "reason": rcvd.reason}


def main():
    url = sys.argv[1]
    origin = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    try:
        # Entered as a context manager, the form every websockets version accepts (the
        # connection itself, or a connecter that connects on entry). The script leaves with
        # os._exit, so there is no matching __exit__.
        ws = connect(
            url,
            origin=origin,
            compression=None,
            proxy=None,
            open_timeout=10,
            close_timeout=10,
            # The test decides when to ping; the server's pings are still answered.
            ping_interval=None,
        ).__enter__()
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
        say({"type": "error", "error": f"{type(e).__name__}: {e}"})
        return
    say({"type": "open"})

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        op = cmd.get("op")
        timeout = cmd.get("timeout", 10)
        if op == "send":
            try:
                ws.send(cmd["text"])
                say({"type": "sent"})
            except ConnectionClosed as e:
                say(closed(ws, e))
        elif op == "recv":
            try:
                msg = ws.recv(timeout=timeout)
            except TimeoutError:
                say({"type": "timeout"})
            except ConnectionClosed as e:
                say(closed(ws, e))
            else:
                if isinstance(msg, str):
                    say({"type": "text", "text": msg})
                else:
                    say({"type": "binary", "hex": msg.hex()})
        elif op == "ping":
            try:
                pong = ws.ping(cmd.get("data", ""))
            except ConnectionClosed as e:
                say(closed(ws, e))
                continue
            if pong.wait(timeout):
                say({"type": "pong"})
            else:
                say({"type": "timeout"})
        elif op == "close":
            ws.close(code=cmd.get("code", 1000))
            say(closed(ws))
        elif op == "abort":
            say({"type": "aborting"})
            # No close frame: the process ends and the kernel closes the socket.
            os._exit(0)
        elif op == "exit":
            break
        else:
            say({"type": "error", "error": f"unknown op {op!r}"})
    os._exit(0)


if __name__ == "__main__":
    main()
