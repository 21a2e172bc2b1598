// Python probes for the IPv6 torture tests (run with `python3 -I -S -c SCRIPT …` inside a namespace): a TCP
// responder on [::] (both families) that sends a banner naming the port, and a parallel connector that says which
// targets it reached. Shared by test/torture/ipv6-isolation.test.ts and egress6-redteam.test.ts.

/**
 * TCP on [::] (both families) on the given ports for `secs` seconds (argv: secs, "p1,p2,…"): "<banner> <port>" to
 * every connection; prints "ready" once listening.
 */
export function responderPy(banner: string): string {
  if (!/^[a-z0-9-]+$/.test(banner)) throw new TypeError(`banner ${JSON.stringify(banner)}`);
  return `\nBANNER = "${banner}"
import socket, sys, threading, time
deadline = time.time() + float(sys.argv[1])
def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(64); s.settimeout(0.5)
    while time.time() < deadline:
        try:
            c, a = s.accept()
        except OSError:
            continue
        try: c.sendall((BANNER + " %d\\n" % port).encode())
        except OSError: pass
        c.close()
for p in sys.argv[2].split(","):
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
time.sleep(0.3)
print("ready", flush=True)
time.sleep(max(0, deadline - time.time()))
`;
}

/**
 * Probes in parallel (argv: JSON [{ip, port, src?}]) → JSON list, in order: "reached <banner>" (or "reached
 * (refused)": a RST came back) or "blocked <why>".
 */
export const CONNECT_PY = `
import json, socket, sys, threading
probes = json.loads(sys.argv[1])
out = [""] * len(probes)
def run(i, p):
    fam = socket.AF_INET6 if ":" in p["ip"] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2)
    try:
        if p.get("src"): s.bind(socket.getaddrinfo(p["src"], 0, fam, socket.SOCK_STREAM)[0][4])
        s.connect(socket.getaddrinfo(p["ip"], p["port"], fam, socket.SOCK_STREAM)[0][4])
        out[i] = "reached " + s.recv(64).decode().strip()
    except ConnectionRefusedError:
        out[i] = "reached (refused)"
    except Exception as e:
        out[i] = "blocked " + type(e).__name__ + " " + str(getattr(e, "strerror", "") or "")
    finally:
        s.close()
ts = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(probes)]
for t in ts: t.start()
for t in ts: t.join(8)
print(json.dumps(out))
`;

/** Reads a socket until the peer's EOF. */
const RECV_ALL_PY = `
def recv_all(s):
    data = b""
    while True:
        b = s.recv(4096)
        if not b: return data
        data += b
`;

/**
 * One TCP exchange on [::] (argv: port, secs): accepts one connection, reads until the peer's EOF, prints what it
 * read and sends it back as "echo: <text>". The answer goes out only after the whole request came in, so a client
 * that exits on the server's EOF cannot race its own request (busybox nc, whose listener half-closes at once when
 * its stdin is empty, could).
 */
export const ECHO_ONCE_PY = `
import socket, sys
${RECV_ALL_PY}s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1]))); s.listen(4); s.settimeout(float(sys.argv[2]))
c, a = s.accept(); c.settimeout(5)
data = recv_all(c)
print(data.decode(errors="replace").strip(), flush=True)
c.sendall(b"echo: " + data); c.close()
`;

/** The client of ECHO_ONCE_PY (argv: ip, port, text): sends the text, half-closes, prints the answer. */
export const SEND_PY = `
import socket, sys
${RECV_ALL_PY}fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(sys.argv[3].encode()); s.shutdown(socket.SHUT_WR)
print(recv_all(s).decode(errors="replace").strip(), flush=True)
`;
