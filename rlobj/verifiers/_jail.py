"""The in-sandbox half of :mod:`rlobj.verifiers.sandbox`, run as ``python -I -S -B _jail.py``.

Standard library only (it also runs under a system interpreter without rlobj's dependencies).
Protocol: one JSON line of set-up on stdin, then one JSON line per command; every answer is one
JSON line on stdout. Processes:

- ``P0`` (this script): joins the run's cgroups, switches to the per-run uid when started as root,
  sets ``PDEATHSIG`` (dies with its caller), unshares user, mount, PID, network, IPC and UTS
  namespaces (uid/gid map: ``1000`` inside to its own uid outside), forks ``P1`` and waits for it.
- ``P1``: PID 1 of the new PID namespace, ``PDEATHSIG`` on ``P0``. Builds a new root (a tmpfs with
  read-only binds of the runtime, a fresh ``/proc``, a few device nodes, and ``/sandbox``: a
  private tmpfs of mode 0700 holding the source), pivots into it, then serves commands.
- ``P2``: one per command, with rlimits (address space, CPU, file size, processes, no core),
  ``no_new_privs``, exec'd as uid 1000 without capabilities. After it exits (or is killed at its
  wall limit) ``P1`` kills every other process left in the namespace.

When ``P1`` dies for any reason, the kernel kills every process of the namespace and the tmpfs
goes with the mount namespace: nothing is left on the host's file system.
"""

import ctypes
import encodings.ascii  # noqa: F401 - loaded now: nothing can be imported inside the new root
import json
import os
import resource
import select
import signal
import sys
import time

INNER_ID = 1000
SANDBOX_DIR = "/sandbox"
_CLONE = {"user": 0x10000000, "mount": 0x00020000, "pid": 0x20000000, "net": 0x40000000}
_CLONE_IPC_UTS = 0x08000000 | 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE = 442, -100, 0x8000
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
OPEN_TREE_CLONE, AT_EMPTY_PATH, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x1000, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


def _mount(source, target, fstype, flags, data=None) -> None:
    encode = lambda value: None if value is None else value.encode()  # noqa: E731
    _check(
        _libc.mount(
            encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)
        ),
        f"mount {source} on {target}",
    )


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _read_only_recursive(target: str, fd: int = AT_FDCWD) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    flags = AT_RECURSIVE | (AT_EMPTY_PATH if fd != AT_FDCWD else 0)
    result = _libc.syscall(
        SYS_MOUNT_SETATTR, fd, target.encode(), flags, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    if result < 0:  # kernel before 5.12: remount the top mount only, keeping its locked flags
        flags = os.statvfs(target).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | flags)


def _clone_tree(path: str) -> int:
    """A detached read-only copy of the mounts at ``path`` (needs privilege: root callers, whose
    per-run uid could not reach paths such as ``/root/.rustup``), else ``-1`` (bind by path)."""
    fd = _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | AT_RECURSIVE)
    if fd < 0:
        return -1
    try:
        _read_only_recursive("", fd)
    except OSError:
        os.close(fd)
        return -1
    return fd


def _write(path: str, text: str) -> None:
    # bytes only: after the switch to the per-run uid the interpreter's own library may be
    # unreadable, so nothing may be imported lazily (a text codec included)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _answer(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _pdeathsig(expected_parent: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != expected_parent:  # the parent died before the flag was set
        os._exit(111)


def _build_root(config: dict, runtime_fds: dict[str, int]) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = "/tmp"  # any existing directory serves as the mount point of the new root
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, fd in runtime_fds.items():
        target = root + path
        if os.path.islink(path):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target, exist_ok=True)
        if fd >= 0:  # a read-only copy cloned before the switch to the per-run uid
            _check(
                _libc.syscall(
                    SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH
                ),
                f"move_mount {path}",
            )
        else:
            _mount(path, target, None, MS_BIND | MS_REC)
            _read_only_recursive(target)
    os.mkdir(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.mkdir(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        os.close(os.open(f"{root}/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{root}/dev/{name}")
    work = root + SANDBOX_DIR
    os.mkdir(work)
    _mount(
        "tmpfs",
        work,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={config['disk_mb']}m,mode=0700,uid={INNER_ID},gid={INNER_ID}",
    )
    for name, text in config["files"].items():
        with open(os.path.join(work, name), "wb") as handle:
            handle.write(text.encode())
    if not os.path.exists(root + "/tmp"):
        os.symlink(SANDBOX_DIR, root + "/tmp")
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in runtime_fds.values():
        if fd >= 0:
            os.close(fd)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    os.chdir(root)
    if number is not None:
        _check(_libc.syscall(number, b".", b"."), "pivot_root")
        _check(_libc.umount2(b".", 2), "umount old root")  # MNT_DETACH
    os.chroot(".")
    os.chdir(SANDBOX_DIR)


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, 0)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_capped(fd: int, limit: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, limit).decode("utf-8", errors="replace")


def apply_limits(command: dict, processes: bool) -> None:
    """The per-process rlimits of a command (``RLIMIT_NPROC`` only where it counts this run)."""
    memory = command["memory_mb"] << 20
    if command["limit_address_space"] and memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = command["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (command["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (command["processes"],) * 2)


def _spawn(command: dict, stdin_fd: int, stdout_fd: int, stderr_fd: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        for target, fd in enumerate((stdin_fd, stdout_fd, stderr_fd)):
            os.dup2(fd, target)
        os.closerange(3, 65536)
        for number in range(1, signal.NSIG):
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        apply_limits(command, processes=True)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.setsid()
        os.execve(command["argv"][0], command["argv"], command["env"])
    except BaseException as error:  # noqa: BLE001 - report and leave the child
        os.write(2, f"could not start {command['argv'][0]!r}: {error}\n".encode())
    os._exit(127)


def _memory_in_use() -> int:
    """Resident bytes of every process in this PID namespace plus the sandbox tmpfs."""
    total = 0
    page = resource.getpagesize()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/statm", encoding="ascii") as handle:
                    total += int(handle.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
    usage = os.statvfs(SANDBOX_DIR)
    return total + (usage.f_blocks - usage.f_bfree) * usage.f_frsize


def _kill_rest() -> int:
    """SIGKILL every other process of the namespace, reap them all; return how many there were."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return reaped
        reaped += pid > 0


def _run(command: dict, watch_memory_mb: int) -> dict:
    stdin_fd = _memfd("stdin", command["stdin"].encode())
    stdout_fd, stderr_fd = _memfd("stdout"), _memfd("stderr")
    started = time.monotonic()
    pid = _spawn(command, stdin_fd, stdout_fd, stderr_fd)
    pidfd = os.pidfd_open(pid)
    deadline = started + command["wall_seconds"]
    timed_out = over_memory = False
    status = None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        select.select([pidfd], [], [], min(remaining, 0.05 if watch_memory_mb else remaining))
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif watch_memory_mb and _memory_in_use() > watch_memory_mb << 20:
            over_memory = True
            break
    elapsed = time.monotonic() - started
    os.close(pidfd)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    leftovers = _kill_rest()
    code = os.waitstatus_to_exitcode(status)
    stderr = _read_capped(stderr_fd, 1 << 16)
    if over_memory:
        stderr += f"\n[rlobj sandbox] killed: the run used more than {watch_memory_mb} MiB\n"
    answer = {
        "returncode": code,
        "stdout": _read_capped(stdout_fd, command["output_bytes"]),
        "stderr": stderr,
        "timed_out": timed_out,
        "wall_seconds": elapsed,
        "leftover_processes": leftovers,
    }
    for fd in (stdin_fd, stdout_fd, stderr_fd):
        os.close(fd)
    return answer


def _serve(config: dict) -> None:
    for number in range(1, signal.NSIG):  # PID 1 ignores signals without a handler from inside
        if number not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            try:
                signal.signal(number, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    _answer({"ready": True})
    stream = os.fdopen(0, "rb", buffering=0)
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = stream.read(1 << 16)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        _answer(_run(json.loads(line), config["watch_memory_mb"]))


def main() -> None:
    expected_parent = int(sys.argv[1])
    config = json.loads(sys.stdin.buffer.readline())
    for path in config["cgroup_procs"]:
        _write(path, str(os.getpid()))
    runtime_fds = {
        path: -1 if os.path.islink(path) else _clone_tree(path) for path in config["runtime"]
    }
    uid = config["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # else /proc/self/*_map stay root's
    _pdeathsig(expected_parent)
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    flags = _CLONE_IPC_UTS
    for name in ("user", "mount", "pid", "net"):
        flags |= _CLONE[name]
    try:
        _check(_libc.unshare(flags), "unshare(user, mount, pid, net, ipc, uts)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{INNER_ID} {outer_uid} 1")
        _write("/proc/self/gid_map", f"{INNER_ID} {outer_gid} 1")
    except OSError as error:
        _answer({"error": str(error)})
        return
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_write)
        os.read(ready_read, 1)
        _pdeathsig(0)  # the parent (P0) is outside this PID namespace: getppid() is 0 here
        try:
            _build_root(config, runtime_fds)
        except OSError as error:
            _answer({"error": f"building the sandbox's file system view: {error}"})
            os._exit(1)
        _serve(config)
        os._exit(0)
    _answer({"init_pid": child})
    os.write(ready_write, b"x")
    os.close(ready_write)
    os.close(0)
    os.close(1)
    _, status = os.waitpid(child, 0)
    os._exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)


if __name__ == "__main__":
    main()
