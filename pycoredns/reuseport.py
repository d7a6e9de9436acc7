"""Programs for a reuseport group of TCP listeners (Linux): migration at close, steering, reset.

Every listener bound with SO_REUSEPORT to one address joins the kernel's group for it; a new
connection goes to one member, chosen by a hash of its addresses and ports unless the group has a
program (one per group, set through any member). Closing a listener resets what the kernel holds
for it (connections in its accept queue, handshakes in progress) unless they migrate to another
member, which the kernel does when net.ipv4.tcp_migrate_req is 1 (Linux >= 5.14) or, whatever that
sysctl says, when the group's program is an SK_REUSEPORT one loaded as
BPF_SK_REUSEPORT_SELECT_OR_MIGRATE. `allow_migration` attaches the smallest such program
(`return SK_PASS`, no selection: new connections are still spread by the hash); it needs CAP_BPF
(or CAP_SYS_ADMIN). Without it, classic BPF (SO_ATTACH_REUSEPORT_CBPF, no privilege needed) can
still choose the member by index: `probe_program` and `steering_program`, used by
`pycoredns.handover`. A listener joining a group puts the hash back (`join_group`), with the
migration program where it can (so a closed member's handshakes in progress keep migrating).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_SK_REUSEPORT = 21
_BPF_SK_REUSEPORT_SELECT_OR_MIGRATE = 40
SO_ATTACH_REUSEPORT_EBPF = 52
# r0 = SK_PASS; exit  (struct bpf_insn: code, dst/src registers, offset, immediate)
_PASS = struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0)
_LICENSE = ctypes.create_string_buffer(b"GPL")


def _load_migrate_program() -> int:
    """The program's fd (close it once attached), or -errno."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        return -errno.ENOSYS
    insns = ctypes.create_string_buffer(_PASS, len(_PASS))
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, BPF_PROG_LOAD's fields; the rest zero
    struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_SK_REUSEPORT, len(_PASS) // 8,
                     ctypes.addressof(insns), ctypes.addressof(_LICENSE))
    struct.pack_into("<I", attr, 68, _BPF_SK_REUSEPORT_SELECT_OR_MIGRATE)  # expected_attach_type
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_int(_BPF_PROG_LOAD), attr, ctypes.c_uint(len(attr)))
    return fd if fd >= 0 else -ctypes.get_errno()


def allow_migration(sock: socket.socket) -> str:
    """Have the kernel move what `sock` (a listening TCP socket) holds to another listener of its
    reuseport group when it closes. '' when done, else why not (the listener then closes as before:
    its queued connections are reset unless net.ipv4.tcp_migrate_req is 1)."""
    fd = _load_migrate_program()
    if fd < 0:
        return f"BPF program not loaded: {os.strerror(-fd)}"
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, fd)
    except OSError as e:
        return f"BPF program not attached: {e.strerror}"
    finally:
        os.close(fd)
    return ""


# -- classic BPF: the result is the index of the member that takes the connection -------------------

SO_ATTACH_REUSEPORT_CBPF = 51
_SKF_NET_OFF = -0x100000  # loads relative to the IP header
_SKF_AD_RANDOM = -0x1000 + 56
_BY_HASH = 0xFFFFFFFF  # past any group: the kernel's hash chooses


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _insn(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    """One struct sock_filter."""
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


_RET_K, _RET_A, _LD_ABS_B, _LD_ABS_H, _LD_ABS_W = 0x06, 0x16, 0x30, 0x28, 0x20
_JEQ_K, _JGE_K, _JA, _RSH_K, _MOD_K, _ADD_K = 0x15, 0x35, 0x05, 0x74, 0x94, 0x04


def attach_cbpf(sock: socket.socket, insns: list[bytes]) -> bool:
    """Give `sock`'s group the classic BPF program `insns`; False where the kernel refuses."""
    code = ctypes.create_string_buffer(b"".join(insns))
    prog = _SockFprog(len(insns), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(prog))
    except OSError:
        return False
    return True


def join_group(sock: socket.socket) -> None:
    """A new listener: the group's selection goes back to the kernel's hash (a retired member's
    steering program would leave the listener now in its slot without connections). Where BPF is
    allowed, the migration program does that and keeps a retired member's handshakes still in
    progress migrating (a `-workers` replacement joins right after its predecessor closed);
    elsewhere a classic program that leaves every choice to the hash."""
    if allow_migration(sock):
        attach_cbpf(sock, [_insn(_RET_K, _BY_HASH)])


def probe_program(ports: dict[int, int]) -> list[bytes]:
    """A new connection from one of `ports` (source port -> index) goes to that index; every other
    connection is left to the hash. The TCP source port follows a 20-byte IPv4 header (the probes
    carry no options) or a 40-byte IPv6 one."""
    insns = [_insn(_LD_ABS_B, _SKF_NET_OFF), _insn(_RSH_K, 4), _insn(_JEQ_K, 4, 0, 2),
             _insn(_LD_ABS_H, _SKF_NET_OFF + 20), _insn(_JA, 1), _insn(_LD_ABS_H, _SKF_NET_OFF + 40)]
    for port, index in ports.items():
        insns += [_insn(_JEQ_K, port, 0, 1), _insn(_RET_K, index)]
    return [*insns, _insn(_RET_K, _BY_HASH)]


def steering_program(members: int, index: int) -> list[bytes]:
    """Every new connection to one of the `members` listeners at random, never to `index`."""
    # A = random % (members - 1); A += 1 when A >= index
    return [_insn(_LD_ABS_W, _SKF_AD_RANDOM), _insn(_MOD_K, members - 1), _insn(_JGE_K, index, 0, 1),
            _insn(_ADD_K, 1), _insn(_RET_A)]
