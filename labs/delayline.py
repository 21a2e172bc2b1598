#!/usr/bin/env python3
# A layer-2 delay line between two interfaces of one namespace, for kernels without netem (tc qdisc netem).
# Usage: delayline.py IF_A IF_B DELAY_A_TO_B_MS DELAY_B_TO_A_MS
# Frames received on IF_A are sent out of IF_B after the first delay, and the other way round after the second.
# Started and stopped (by PID) by labs/shaping.ts; lives in a lab namespace only.
# Packet sockets see transmit checksums still unfinished (offloaded): UDP checksums over IPv4 are set to 0
# (allowed by RFC 768), TCP checksums over IPv4 are recomputed.
import heapq
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 3


def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0))
    s.setblocking(False)
    return s


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def fix(frame):
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    start = 14 + ihl
    total_len = struct.unpack("!H", frame[16:18])[0]
    end = 14 + total_len
    if end > len(frame) or start >= end:
        return frame
    # Fragments other than the first carry no transport header.
    if struct.unpack("!H", frame[20:22])[0] & 0x1FFF:
        return frame
    b = bytearray(frame)
    if proto == 17 and end - start >= 8:
        b[start + 6:start + 8] = b"\0\0"
    elif proto == 6 and end - start >= 20:
        b[start + 16:start + 18] = b"\0\0"
        pseudo = bytes(b[26:34]) + struct.pack("!BBH", 0, 6, end - start)
        b[start + 16:start + 18] = struct.pack("!H", csum(pseudo + bytes(b[start:end])))
    return bytes(b)


def main():
    a_name, b_name = sys.argv[1], sys.argv[2]
    d_ab = float(sys.argv[3]) / 1000.0
    d_ba = float(sys.argv[4]) / 1000.0
    a, b = open_if(a_name), open_if(b_name)
    route = {a.fileno(): (b, d_ab), b.fileno(): (a, d_ba)}
    socks = {a.fileno(): a, b.fileno(): b}
    queue = []
    seq = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select(list(socks.values()), [], [], timeout)
        now = time.monotonic()
        for s in ready:
            out, delay = route[s.fileno()]
            for _ in range(256):
                try:
                    data, addr = s.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                if len(queue) >= 20000:
                    continue  # a bounded queue: drop like a full link would
                seq += 1
                heapq.heappush(queue, (now + delay, seq, out, fix(data)))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, data = heapq.heappop(queue)
            try:
                out.send(data)
            except OSError:
                pass


if __name__ == "__main__":
    main()
