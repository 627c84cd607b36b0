"""Host side of the code sandbox: cgroups, per-run uids, and the client of ``_jail.py``.

Standard library only, so a caller without rlobj's dependencies (a system interpreter run by a
non-root user) can load :mod:`rlobj.verifiers.sandbox` by file path.
"""

import functools
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

JAIL_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_jail.py")
PREFIX = "rlobj-sandbox-"
RUN_UID_BASE, RUN_UID_SPAN = 1_600_000_000, 1_000_000
CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "pids", "cpu")
MECHANISMS = ("namespaces", "cgroup")


class SandboxUnavailable(RuntimeError):
    """The host lacks an isolation mechanism the sandbox needs (named in the message)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str) -> int | None:
    """The creating process id in a name ``rlobj-sandbox-<pid>-<token>``."""
    parts = name[len(PREFIX) :].split("-")
    return int(parts[0]) if name.startswith(PREFIX) and parts[0].isdigit() else None


# ---------------------------------------------------------------------------------------- cgroups


def _own_v2_path() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("0::"):
                    return CGROUP_ROOT + line[3:].strip().rstrip("/")
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=1)
def cgroup_parents() -> tuple[str, dict[str, str]] | None:
    """``("v2", {"": parent})`` or ``("v1", {controller: parent})`` where this process may create
    child cgroups with memory and pids control, else ``None``."""
    parent = _own_v2_path()
    if parent and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        try:
            with open(os.path.join(parent, "cgroup.subtree_control"), encoding="ascii") as handle:
                enabled = handle.read().split()
        except OSError:
            enabled = []
        if {"memory", "pids"} <= set(enabled) and os.access(parent, os.W_OK):
            return "v2", {"": parent}
    roots = {name: os.path.join(CGROUP_ROOT, name) for name in V1_CONTROLLERS}
    if all(os.path.isfile(os.path.join(path, "cgroup.procs")) for path in roots.values()) and all(
        os.access(path, os.W_OK) for path in roots.values()
    ):
        return "v1", roots
    return None


def _cgroup_kill_and_remove(path: str, attempts: int = 50) -> bool:
    for _ in range(attempts):
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as handle:
                pids = [int(line) for line in handle if line.strip()]
        except FileNotFoundError:
            return True
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    return False


class RunCgroup:
    """One cgroup (v2) or one cgroup per controller (v1) bounding a whole run."""

    def __init__(self, memory_mb: int, processes: int, cpus: float) -> None:
        found = cgroup_parents()
        if found is None:
            raise SandboxUnavailable("no writable cgroup with memory and pids control")
        self.version, parents = found
        name = f"{PREFIX}{os.getpid()}-{random.getrandbits(48):012x}"
        self.paths = [os.path.join(parent, name) for parent in parents.values()]
        for path in self.paths:
            os.mkdir(path, 0o755)
        memory, period = memory_mb << 20, 100_000
        quota = max(1000, int(cpus * period))
        if self.version == "v2":
            path = self.paths[0]
            settings = [
                ("memory.max", memory),
                ("memory.swap.max", 0),
                ("pids.max", processes),
                ("cpu.max", f"{quota} {period}"),
            ]
        else:
            memory_path, pids_path, cpu_path = self.paths
            settings = [
                (f"{memory_path}/memory.limit_in_bytes", memory),
                (f"{memory_path}/memory.memsw.limit_in_bytes", memory),
                (f"{pids_path}/pids.max", processes),
                (f"{cpu_path}/cpu.cfs_period_us", period),
                (f"{cpu_path}/cpu.cfs_quota_us", quota),
            ]
            path = ""
        for file, value in settings:
            target = os.path.join(path, file) if path else file
            if os.path.exists(target) or file in ("memory.max", "pids.max"):
                with open(target, "w", encoding="ascii") as handle:
                    handle.write(str(value))
        self.procs_files = [os.path.join(path, "cgroup.procs") for path in self.paths]

    def peak_memory_bytes(self) -> int | None:
        """Highest memory use of the run so far, if the kernel reports it."""
        file = "memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes"
        try:
            with open(os.path.join(self.paths[0], file), encoding="ascii") as handle:
                return int(handle.read())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Kill whatever is still in the cgroup and remove it."""
        for path in self.paths:
            _cgroup_kill_and_remove(path)


def sweep_orphans(attempts: int = 50) -> int:
    """Remove sandbox cgroups and work directories whose creating process is gone (its caller was
    killed mid-run). Returns how many were removed."""
    removed = 0
    found = cgroup_parents()
    places = list(found[1].values()) if found else []
    for parent in places:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid = _owner_pid(name)
            if pid is not None and not _pid_alive(pid):
                removed += _cgroup_kill_and_remove(os.path.join(parent, name), attempts)
    temp = tempfile.gettempdir()
    for name in os.listdir(temp):
        pid = _owner_pid(name)
        if pid is not None and not _pid_alive(pid):
            shutil.rmtree(os.path.join(temp, name), ignore_errors=True)
            removed += not os.path.exists(os.path.join(temp, name))
    return removed


# ------------------------------------------------------------------------------------ per-run uid


class RunUid:
    """A uid no other run holds, reserved by binding an abstract unix socket named after it (the
    reservation ends when the socket is closed or its process dies)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        start = random.randrange(RUN_UID_SPAN)
        for step in range(RUN_UID_SPAN):
            uid = RUN_UID_BASE + (start + step) % RUN_UID_SPAN
            try:
                self._socket.bind(f"\0rlobj-sandbox-uid-{uid}")
            except OSError:
                continue
            self.uid = uid
            return
        raise SandboxUnavailable("no free per-run uid")

    def release(self) -> None:
        self._socket.close()


# ------------------------------------------------------------------------------------ jail client


class Jail:
    """One isolated run: a ``_jail.py`` process tree serving commands until :meth:`close`.

    Raises :class:`SandboxUnavailable` naming what failed when the namespaces cannot be set up.
    """

    def __init__(
        self,
        files: dict[str, str],
        runtime: list[str],
        *,
        uid: int | None,
        cgroup: RunCgroup | None,
        disk_mb: int,
        watch_memory_mb: int,
    ) -> None:
        self.stderr = tempfile.TemporaryFile()
        config = {
            "files": files,
            "runtime": runtime,
            "uid": uid,
            "disk_mb": disk_mb,
            "cgroup_procs": cgroup.procs_files if cgroup else [],
            "watch_memory_mb": watch_memory_mb,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", JAIL_SCRIPT, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            close_fds=True,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        self._buffer = b""
        self.init_pid: int | None = None
        self.process.stdin.write((json.dumps(config) + "\n").encode())
        self.process.stdin.flush()
        for _ in range(2):
            answer = self._read(deadline=time.monotonic() + 30)
            if answer is None or "error" in answer:
                reason = (answer or {}).get("error") or self._stderr_tail() or "no answer"
                self.close()
                raise SandboxUnavailable(f"could not set up namespaces: {reason}")
            self.init_pid = answer.get("init_pid", self.init_pid)

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-2000:].decode("utf-8", errors="replace").strip()

    def _read(self, deadline: float) -> dict | None:
        out = self.process.stdout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([out], [], [], remaining)[0]:
                return None
            chunk = os.read(out.fileno(), 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, command: dict) -> dict:
        """Run one command (see ``_jail._run``). Raises ``RuntimeError`` with the supervisor's
        last words if it stopped answering (it is then killed)."""
        try:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            self.process.stdin.flush()
        except OSError as error:
            self.kill()
            raise RuntimeError(
                f"rlobj sandbox: could not send a command to the run's supervisor ({error}): "
                f"{self._stderr_tail()[-800:]}"
            ) from error
        answer = self._read(deadline=time.monotonic() + command["wall_seconds"] + 10)
        if answer is None:
            self.kill()
            raise RuntimeError(
                f"rlobj sandbox: the run's supervisor stopped answering (killed): "
                f"{self._stderr_tail()[-800:] or 'no message'}"
            )
        return answer

    def kill(self) -> None:
        """SIGKILL the namespace's init (the kernel then kills every process in it)."""
        target = self.init_pid if self.init_pid is not None else self.process.pid
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """End the run: init exits on end of input, taking the namespace (and its tmpfs) along."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process.stdout.close()
        self.stderr.close()
