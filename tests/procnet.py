"""Listening TCP sockets of a process tree, read from /proc (Linux)."""

import os
from pathlib import Path


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def _addr(hex_addr: str) -> str:
    ip, port = hex_addr.split(":")
    if len(ip) == 8:
        return ".".join(str(b) for b in bytes.fromhex(ip)[::-1]) + f":{int(port, 16)}"
    words = [bytes.fromhex(ip[i : i + 8])[::-1].hex() for i in range(0, 32, 8)]
    return "[" + ":".join(w[i : i + 4] for w in words for i in (0, 4)) + f"]:{int(port, 16)}"


def listening(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, 'ip:port') for every TCP socket in LISTEN state owned by `pids`."""
    owner = {inode: pid for pid in pids for inode in _socket_inodes(pid)}
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in owner:  # 0A = LISTEN
                out.append((owner[cols[9]], _addr(cols[1])))
    return out


def is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0]
    return (
        host.startswith("127.")
        or host == "[0000:0000:0000:0000:0000:0000:0000:0001]"  # ::1
        or host.startswith("[0000:0000:0000:0000:0000:ffff:7f")
    )  # ::ffff:127.x


def stop(proc, timeout: float = 10, group: bool = False) -> None:
    """End a server the tests started: SIGTERM, then SIGKILL after `timeout` seconds;
    `group`: its whole process group (a server started with start_new_session)."""
    import os
    import signal
    import subprocess

    if proc is None or proc.poll() is not None:
        return
    kill = os.killpg if group else os.kill
    kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(proc.pid, signal.SIGKILL)
        proc.wait()
