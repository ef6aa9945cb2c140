#!/usr/bin/env python3
"""A WebSocket client on Python's standard library only, for scripts/proxy-tests.sh.

Connects to 127.0.0.1:PORT from a chosen source address, over TLS trusting one CA file,
sends `join` as PEER with TOKEN (and a reconnect secret, if given), and prints the join
answer's reconnect_secret. Every wait has a deadline. Exits non-zero on any failure.

usage: wsprobe.py PORT SERVER_NAME CAFILE SOURCE_ADDR PEER TOKEN [SECRET]
"""
import base64, json, os, socket, ssl, struct, sys

def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise SystemExit("wsprobe: the connection closed")
        out += chunk
    return out

def read_message(s):
    b0, b1 = read_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(s, 8))[0]
    payload = read_exact(s, n)
    if b0 & 0x0F == 0x8:
        raise SystemExit(f"wsprobe: closed by the server: {payload[2:].decode(errors='replace')}")
    return payload.decode()

def main():
    port, name, cafile, source, peer, token = sys.argv[1:7]  # Host carries the port, as browsers send it
    secret = sys.argv[7] if len(sys.argv) > 7 else None
    raw = socket.create_connection(("127.0.0.1", int(port)), timeout=10, source_address=(source, 0))
    ctx = ssl.create_default_context(cafile=cafile)
    s = ctx.wrap_socket(raw, server_hostname=name)
    path = f"/ws?peer={peer}&token={token}" + (f"&reconnect_secret={secret}" if secret else "")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(s, 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"wsprobe: no upgrade: {head.decode(errors='replace')}")
    s.sendall(frame(json.dumps({"jsonrpc": "2.0", "id": "j", "method": "join", "params": {"name": peer}})))
    while True:
        msg = json.loads(read_message(s))
        if msg.get("method") == "on-error":
            raise SystemExit(f"wsprobe: refused: {msg['params']}")
        if msg.get("id") == "j":
            if "result" not in msg:
                raise SystemExit(f"wsprobe: join failed: {msg}")
            print(msg["result"]["reconnect_secret"])
            return

main()
