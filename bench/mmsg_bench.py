"""What one ctypes sendmmsg/recvmmsg costs against socket.send/recvfrom, per packet. Not a test.

    taskset -c 0 python bench/mmsg_bench.py [--packets 6000]

Sends go to a receiver process on core 1 that blocks in recv (as unbound or dnsperf do), each row
with and without ~12 µs of Python work between packets (what the server does per query: it evicts
the kernel's code and data from the caches, which a tight loop keeps warm). Receives read a queue
filled beforehand. CPU µs per packet from process_time; the best of three.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycoredns import mmsg

BATCHES = (1, 4, 16, 64)
_JUNK = [{"a": i, "b": str(i)} for i in range(20000)]


def work(j: int) -> int:
    """~12 µs of dict reads over a few MB: the caches after it are as cold as after a query's Python."""
    start = j * 400 % 19600
    return sum(d["a"] for d in _JUNK[start : start + 400])


def best(fn, reps: int = 3) -> float:
    out = []
    for _ in range(reps):
        t0 = time.process_time()
        n = fn()
        out.append((time.process_time() - t0) * 1e6 / n)
        time.sleep(0.1)
    return min(out)


def send_rows(packets: int) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # the receiver: blocks in recv on the other core
        os.sched_setaffinity(0, {1 % os.cpu_count()})
        while rx.recv(65535) != b"quit":
            pass
        os._exit(0)
    rx.close()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(("127.0.0.1", port))
    tx.setblocking(False)
    pkt = bytes(40)
    try:
        w = best(lambda: [work(j) for j in range(packets)] and packets)
        print(f"Python work alone: {w:.2f} µs per packet")
        for cold in (False, True):

            def plain(cold: bool = cold) -> int:
                for j in range(packets):
                    if cold:
                        work(j)
                    try:
                        tx.send(pkt)
                    except BlockingIOError:
                        pass
                return packets

            base = best(plain) - (w if cold else 0)
            cells = [f"send {base:.2f}"]
            for b in BATCHES:
                batch = mmsg.SendBatch(tx)

                def batched(b: int = b, batch: mmsg.SendBatch = batch, cold: bool = cold) -> int:
                    for k in range(packets // b):
                        for j in range(b):
                            if cold:
                                work(k * b + j)
                            batch.add(pkt)
                        batch.flush()
                    return packets // b * b

                cells.append(f"B={b} {best(batched) - (w if cold else 0):.2f}")
            print(f"sends, {'with' if cold else 'without'} work between: " + ", ".join(cells) + " µs per packet")
    finally:
        tx.send(b"quit")
        os.waitpid(pid, 0)
        tx.close()


def recv_rows(packets: int) -> None:
    """recvfrom against recvmmsg (a ctypes prototype, not in pycoredns: it did not pay)."""
    libc = ctypes.PyDLL(None, use_errno=True)
    recvmmsg = libc.recvmmsg
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    n = min(packets, 4000)  # what fits the receive buffer

    def fill() -> None:
        for _ in range(n):
            a.sendto(bytes(40), b.getsockname())

    def plain() -> int:
        fill()
        t0 = time.process_time()
        got = 0
        while True:
            try:
                b.recvfrom(65535)
            except BlockingIOError:
                break
            got += 1
        return got, time.process_time() - t0

    def batched(size: int):
        slot = 2048
        bufs = ctypes.create_string_buffer(size * slot)
        names = ctypes.create_string_buffer(size * mmsg.NAME)
        iovs = (mmsg._Iovec * size)()
        hdrs = (mmsg._Mmsghdr * size)()
        for i in range(size):
            iovs[i].iov_base = ctypes.addressof(bufs) + i * slot
            iovs[i].iov_len = slot
            hdrs[i].msg_hdr.msg_iov = ctypes.addressof(iovs[i])
            hdrs[i].msg_hdr.msg_iovlen = 1
            hdrs[i].msg_hdr.msg_name = ctypes.addressof(names) + i * mmsg.NAME
            hdrs[i].msg_hdr.msg_namelen = mmsg.NAME
        words = memoryview(hdrs).cast("B").cast("I")
        view, nview = memoryview(bufs), memoryview(names)
        memo: dict[bytes, tuple[str, int]] = {}
        fill()
        t0 = time.process_time()
        got = 0
        while (k := recvmmsg(b.fileno(), ctypes.addressof(hdrs), size, socket.MSG_DONTWAIT, None)) > 0:
            for i in range(k):  # the bytes and the sender's address, as recvfrom returns them
                length = words[i * mmsg._HDR_WORDS + mmsg._Mmsghdr.msg_len.offset // 4]
                bytes(view[i * slot : i * slot + length])
                raw = bytes(nview[i * mmsg.NAME : i * mmsg.NAME + 16])
                if raw not in memo:
                    memo[raw] = (socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big"))
            got += k
        return got, time.process_time() - t0

    def per_packet(fn) -> float:
        out = []
        for _ in range(3):
            got, spent = fn()
            out.append(spent * 1e6 / got)
        return min(out)

    cells = [f"recvfrom {per_packet(plain):.2f}"]
    cells += [f"B={s} {per_packet(lambda s=s: batched(s)):.2f}" for s in BATCHES]
    print("receives (queue filled beforehand): " + ", ".join(cells) + " µs per packet")
    a.close()
    b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=6000)
    args = ap.parse_args()
    if not mmsg.AVAILABLE:
        raise SystemExit("no sendmmsg here")
    os.sched_setaffinity(0, {0})
    send_rows(args.packets)
    recv_rows(args.packets)


if __name__ == "__main__":
    main()
