"""The sandbox's opted-out mode (``isolate=False`` / ``allow_missing=("namespaces",)``): programs
run directly on the host with rlimits, in a fresh 0700 directory, as a per-run uid when the caller
is root. No file system or network isolation. Standard library only (see ``_isolation``)."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

PREFIX = "rlobj-sandbox-"

SOCKET_BLOCKER = """\
import socket as _socket_module


class _BlockedSocket:
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the rlobj sandbox")


_socket_module.socket = _BlockedSocket
_socket_module.create_connection = _BlockedSocket
"""


def _preexec(command: dict, uid: int | None, cgroup_procs: list[str], apply_limits):
    def preexec() -> None:
        for path in cgroup_procs:
            with open(path, "w", encoding="ascii") as handle:
                handle.write(str(os.getpid()))
        # RLIMIT_NPROC counts per real uid: only meaningful for a per-run uid
        apply_limits(command, processes=uid is not None)
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    return preexec


def _read_capped(handle, limit: int) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


def run_direct(
    files: dict[str, str],
    uid: int | None,
    cgroup_procs: list[str],
    block_python_sockets: bool,
    apply_limits,
):
    """Make the run's directory; return ``(workdir, run(command) -> dict, close())``.
    ``apply_limits(command, processes)`` sets a command's rlimits (``_jail.apply_limits``)."""
    workdir = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    extra_env: dict[str, str] = {}
    if block_python_sockets:
        files = {**files, ".rlobj_site/sitecustomize.py": SOCKET_BLOCKER}
        extra_env["PYTHONPATH"] = os.path.join(workdir, ".rlobj_site")
    for name, text in files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    if uid is not None:
        for base, directories, names in os.walk(workdir):
            for name in [*directories, *names, ""]:
                os.chown(os.path.join(base, name), uid, uid)

    def run(command: dict) -> dict:
        with (
            tempfile.TemporaryFile() as stdin_file,
            tempfile.TemporaryFile() as stdout_file,
            tempfile.TemporaryFile() as stderr_file,
        ):
            stdin_file.write(command["stdin"].encode())
            stdin_file.seek(0)
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    command["argv"],
                    stdin=stdin_file,
                    stdout=stdout_file,
                    stderr=stderr_file,
                    cwd=workdir,
                    env={**command["env"], **extra_env},
                    preexec_fn=_preexec(command, uid, cgroup_procs, apply_limits),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as error:
                return {
                    "returncode": None,
                    "stdout": "",
                    "timed_out": False,
                    "wall_seconds": 0.0,
                    "stderr": f"could not start {command['argv'][0]!r}: {error}",
                }
            timed_out = False
            try:
                process.wait(timeout=command["wall_seconds"])
            except subprocess.TimeoutExpired:
                timed_out = True
            try:  # the whole process group, also when the program exited and left children
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
            return {
                "returncode": process.returncode,
                "stdout": _read_capped(stdout_file, command["output_bytes"]),
                "stderr": _read_capped(stderr_file, 1 << 16),
                "timed_out": timed_out,
                "wall_seconds": time.monotonic() - started,
            }

    def close() -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    return workdir, run, close
