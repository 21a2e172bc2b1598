# The lab matrix's prober (labs/matrix.ts): one process per source, every probe of that source at once, in
# threads. It replaced a busybox shell script that forked 3-4 processes per probe (a quickstart matrix forked
# ~2,600 and spent ~10 s of CPU on 2 cores); the output is the same line protocol (parseProbe):
#   "P <host> <rtt ms|->"              one ICMP echo (raw socket, both families), 1 s
#   "T <host>:<port> <text|refused|->"  TCP: connect within 1 s, "GET / HTTP/1.0", read until close or 1 s idle;
#                                       the text from the first "zmesh-" to the end of its line
#   "N <name> <a,b|!nx|!fail>"          A and AAAA from the resolver named by the last "@SERVER", 3 s
# Arguments as the script took them: "ADDR" (ping + the echo port), "ADDR:PORT,PORT" (ping + those ports),
# "ADDR:" (ping only), IPv6 in brackets ("[ADDR]:PORT"), "@SERVER" (or "@SERVER#PORT"), "?NAME"; the first argument is
# "echo=PORT", the echo services' port. Python's standard library only;
# run with -I -S. Bounded: every socket has a timeout, the caller kills the process after 15 s.
import os
import random
import socket
import struct
import sys
import threading
import time

out_lock = threading.Lock()
lines = []


def emit(line):
    with out_lock:
        lines.append(line)


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def received(s, deadline, size, more=lambda: True):
    """What arrives on s until the deadline (or until more() is false); a socket timeout raises as recvfrom does."""
    while more():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        yield s.recvfrom(size)


def ping(host, key, ident, seq):
    v6 = ':' in host
    try:
        if v6:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError:
        emit('P %s -' % key)
        return
    try:
        payload = b'zmesh-probe' + struct.pack('!d', time.time())
        if v6:
            # The kernel fills in an ICMPv6 checksum (it needs the pseudo-header).
            pkt = struct.pack('!BBHHH', 128, 0, 0, ident, seq) + payload
        else:
            hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
            pkt = struct.pack('!BBHHH', 8, 0, checksum(hdr + payload), ident, seq) + payload
        t0 = time.monotonic()
        deadline = t0 + 1.0
        s.sendto(pkt, (host, 0))
        for data, addr in received(s, deadline, 2048):
            if not v6:
                data = data[(data[0] & 0x0f) * 4:]
            if len(data) < 8:
                continue
            typ, _code, _ck, rid, rseq = struct.unpack('!BBHHH', data[:8])
            if typ == (129 if v6 else 0) and rid == ident and rseq == seq and addr[0] == host:
                emit('P %s %.3f' % (key, (time.monotonic() - t0) * 1000))
                return
    except OSError:
        pass
    finally:
        s.close()
    emit('P %s -' % key)


def tcp(host, key, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    result = '-'
    try:
        s.settimeout(1.0)
        s.connect((host, port))
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        buf = b''
        # Until the peer closes, 1 s passes without data, or the connection breaks: what arrived counts (as with
        # `nc -w 1`, whose output was judged whatever ended it).
        while len(buf) < 65536:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        text = buf.decode('utf-8', 'replace')
        if 'zmesh-lab-echo ' in text or 'zmesh-wl ' in text:
            result = 'zmesh-' + text.split('zmesh-', 1)[1].split('\n', 1)[0]
    except ConnectionRefusedError:
        result = 'refused'
    except OSError:
        pass
    finally:
        s.close()
    emit('T %s:%d %s' % (key, port, result))


def qname(name):
    out = b''
    for label in name.rstrip('.').split('.'):
        b = label.encode('ascii')
        if not 0 < len(b) < 64:
            raise ValueError(name)
        out += bytes([len(b)]) + b
    return out + b'\0'


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xc0 == 0xc0:
            return i + 2
        i += 1 + n


def lookup(server, name):
    """A and AAAA as busybox nslookup asks them: '!nx' if either is NXDOMAIN, the addresses, or '!fail'."""
    try:
        q = qname(name)
    except (ValueError, UnicodeEncodeError):
        emit('N %s !fail' % name)
        return
    host, _, port = server.partition('#')
    port = int(port or 53)
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    want = {}
    for qtype in (1, 28):
        qid = random.randrange(65536)
        while qid in want:
            qid = random.randrange(65536)
        want[qid] = qtype
    answers = {1: [], 28: []}
    nx = False
    try:
        for qid, qtype in want.items():
            s.sendto(struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0) + q + struct.pack('!HH', qtype, 1), (host, port))
        deadline = time.monotonic() + 3.0
        for msg, addr in received(s, deadline, 4096, lambda: want):
            if len(msg) < 12 or addr[0] != host:
                continue
            rid, flags, qd, an = struct.unpack('!HHHH', msg[:8])
            if rid not in want or not flags & 0x8000:
                continue
            qtype = want.pop(rid)
            if flags & 0x000f == 3:
                nx = True
                continue
            i = 12
            for _ in range(qd):
                i = skip_name(msg, i) + 4
            for _ in range(an):
                i = skip_name(msg, i)
                rtype, _cls, _ttl, rdlen = struct.unpack('!HHIH', msg[i:i + 10])
                i += 10
                rdata = msg[i:i + rdlen]
                i += rdlen
                if rtype == 1 and rdlen == 4:
                    answers[1].append(socket.inet_ntop(socket.AF_INET, rdata))
                elif rtype == 28 and rdlen == 16:
                    answers[28].append(socket.inet_ntop(socket.AF_INET6, rdata))
    except (OSError, struct.error, IndexError):
        pass
    finally:
        s.close()
    if nx:
        emit('N %s !nx' % name)
    elif answers[1] or answers[28]:
        emit('N %s %s' % (name, ','.join(answers[1] + answers[28])))
    else:
        emit('N %s !fail' % name)


def main(args):
    echo_port = int(args[0].split('=', 1)[1])
    args = args[1:]
    threads = []
    server = ''
    ident = (os.getpid() * 7919) & 0xffff
    seq = 0
    for a in args:
        if a.startswith('@'):
            server = a[1:]
            continue
        if a.startswith('?'):
            threads.append(threading.Thread(target=lookup, args=(server, a[1:])))
            continue
        if a.startswith('['):
            host = a[1:a.index(']')]
            key = '[%s]' % host
            rest = a[a.index(']') + 1:]
        else:
            host = a.split(':', 1)[0]
            key = host
            rest = a[len(host):]
        ports = [echo_port] if rest == '' else [int(p) for p in rest[1:].split(',') if p]
        seq += 1
        threads.append(threading.Thread(target=ping, args=(host, key, ident, seq)))
        for p in ports:
            threads.append(threading.Thread(target=tcp, args=(host, key, p)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.stdout.write(''.join(line + '\n' for line in lines))


if __name__ == '__main__':
    main(sys.argv[1:])
