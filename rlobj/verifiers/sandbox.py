r"""Running untrusted programs: one subprocess per test case, with limits.

What a run gets (checked on Linux; see :func:`sandbox_capabilities`):

- **wall-clock limit**: the process group is killed with SIGKILL after ``wall_seconds``; a CPU-time
  rlimit of ``ceil(wall_seconds) + 1`` backs it up.
- **memory limit**: ``RLIMIT_AS`` = ``memory_mb`` set in ``preexec_fn`` (for runtimes that reserve
  large virtual address ranges, the JVM and V8, the address-space limit is lifted and the runtime's
  own heap flag, filled from ``{memory_mb}`` in the language config, caps the heap instead).
- **output limit**: stdout/stderr go to anonymous temporary files and ``RLIMIT_FSIZE`` caps every
  file the program writes (``output_bytes``); no core dumps.
- **no network, own PID namespace**: the command runs under ``unshare -r -n -p -f --kill-child -m
  --mount-proc -i -u``: a new user, network (loopback only, down), PID, mount, IPC and UTS
  namespace; killing it kills every process the program started. When ``unshare`` is missing or
  user namespaces are disabled, Python programs get a ``sitecustomize`` that makes
  ``socket.socket`` raise (a program can still reach ``_socket`` directly: this fallback is weak,
  and :func:`sandbox_capabilities` reports ``network_isolated=False``); other languages then run
  without network isolation.
- **a throwaway working directory** (``tempfile.mkdtemp``), removed afterwards; ``HOME`` and
  ``TMPDIR`` point into it and the environment is reduced to ``PATH``, ``HOME``, ``TMPDIR``,
  ``LANG``.
- **unprivileged user**: when the caller is root, the *run* step drops to uid/gid 65534 (nobody)
  before entering the namespaces, so the program cannot read root's files. The *compile* step
  keeps the caller's user (toolchains such as rustup live in root's home) but has the same
  namespaces and limits.

Not provided: a filesystem jail (the program can read world-readable files and write
world-writable ones such as ``/tmp``), a seccomp filter, or a process-count limit (``RLIMIT_NPROC``
is per real user, so it is not set; the PID namespace and SIGKILL on timeout end fork bombs, and
the memory limit bounds each process). For hostile code at scale run the verifier inside a
container as well.

Per-language configuration follows the Agnostics idea (Boruch-Gruszecki et al., arXiv:2508.04865):
a language is judged only by its I/O behaviour, and adding one is a short config saying how to
compile and run a source file (:class:`LanguageConfig`).
"""

import functools
import math
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

NOBODY_ID = 65534
_UNSHARE_FLAGS = ("-r", "-n", "-p", "-f", "--kill-child", "-m", "--mount-proc", "-i", "-u", "--")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
COMPILE_FILE_BYTES = 512 << 20  # compilers write binaries larger than a program's output limit

_SOCKET_BLOCKER = """\
import socket as _socket_module


class _BlockedSocket:
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the rlobj sandbox")


_socket_module.socket = _BlockedSocket
_socket_module.create_connection = _BlockedSocket
"""


@dataclass(frozen=True)
class LanguageConfig:
    """How to compile (optionally) and run one source file in a language.

    Placeholders in ``compile`` and ``run``: ``{source}`` (path of the source file), ``{binary}``
    (path for a compiled executable), ``{dir}`` (the working directory), ``{memory_mb}``.

    Args:
        name: language name used in samples (``sample["language"]``).
        source_name: file name the source is written to (Java needs ``Main.java``).
        run: command that runs the program (reads stdin, writes stdout).
        compile: command that compiles it; empty for interpreted languages.
        limit_address_space: apply ``RLIMIT_AS`` on the run step. Set ``False`` for runtimes that
            reserve large virtual ranges (JVM, V8) and cap the heap with a flag in ``run``.
        python_socket_block: add a ``sitecustomize`` blocking ``socket`` when namespaces are
            unavailable (only meaningful for Python).

    Example:
        >>> LANGUAGES["c"].executables()
        ('gcc',)
    """

    name: str
    source_name: str
    run: tuple[str, ...]
    compile: tuple[str, ...] = ()
    limit_address_space: bool = True
    python_socket_block: bool = False

    def __post_init__(self) -> None:
        if not self.run:
            raise ValueError(
                f"LanguageConfig {self.name!r}: argument 'run' must be a non-empty command"
            )
        object.__setattr__(self, "run", tuple(self.run))
        object.__setattr__(self, "compile", tuple(self.compile))

    def executables(self) -> tuple[str, ...]:
        """Programs this config needs on ``PATH`` (first word of each command, placeholders skipped)."""
        commands = [command for command in (self.compile, self.run) if command]
        return tuple(dict.fromkeys(command[0] for command in commands if "{" not in command[0]))


LANGUAGES: dict[str, LanguageConfig] = {
    config.name: config
    for config in (
        LanguageConfig(
            "python", "main.py", ("python3", "-B", "{source}"), python_socket_block=True
        ),
        LanguageConfig(
            "c",
            "main.c",
            ("{binary}",),
            ("gcc", "-O2", "-std=c11", "-o", "{binary}", "{source}", "-lm"),
        ),
        LanguageConfig(
            "cpp",
            "main.cpp",
            ("{binary}",),
            ("g++", "-O2", "-std=c++17", "-o", "{binary}", "{source}"),
        ),
        LanguageConfig(
            "rust",
            "main.rs",
            ("{binary}",),
            ("rustc", "-O", "--edition", "2021", "-o", "{binary}", "{source}"),
        ),
        LanguageConfig(
            "java",
            "Main.java",
            (
                "java",
                "-Xmx{memory_mb}m",
                "-Xss64m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                "{dir}",
                "Main",
            ),
            ("javac", "-J-Xmx512m", "-d", "{dir}", "{source}"),
            limit_address_space=False,
        ),
        LanguageConfig(
            "javascript",
            "main.js",
            ("node", "--max-old-space-size={memory_mb}", "{source}"),
            limit_address_space=False,
        ),
    )
}
"""Built-in language configs. Others can be passed to :class:`~rlobj.verifiers.CodeExecution`."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one sandboxed run.

    Args:
        wall_seconds: wall-clock limit per test-case run. Default 5.
        memory_mb: address-space (or heap) limit per run, MiB. Default 512.
        compile_seconds: wall-clock limit of the compile step. Default 60.
        compile_memory_mb: address-space limit of the compile step, MiB (``0``: no limit; rustc
            and LLVM reserve large virtual ranges). Default 0.
        output_bytes: largest file (stdout included) a program may write. Default 1 MiB.
        isolate: use namespaces (no network, own PIDs) when available. Default ``True``.
        drop_privileges: run the program as ``nobody`` when the caller is root. Default ``True``.
    """

    wall_seconds: float = 5.0
    memory_mb: int = 512
    compile_seconds: float = 60.0
    compile_memory_mb: int = 0
    output_bytes: int = 1 << 20
    isolate: bool = True
    drop_privileges: bool = True

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "compile_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(
                    f"SandboxLimits: argument {name!r} must be a positive number, got {value!r}"
                )
        if not (isinstance(self.memory_mb, int) and self.memory_mb >= 16):
            raise ValueError(
                f"SandboxLimits: argument 'memory_mb' must be an int >= 16, got {self.memory_mb!r}"
            )
        if not (isinstance(self.compile_memory_mb, int) and self.compile_memory_mb >= 0):
            raise ValueError(
                f"SandboxLimits: argument 'compile_memory_mb' must be an int >= 0, got {self.compile_memory_mb!r}"
            )
        if not (isinstance(self.output_bytes, int) and self.output_bytes >= 1024):
            raise ValueError(
                f"SandboxLimits: argument 'output_bytes' must be an int >= 1024, got {self.output_bytes!r}"
            )


@dataclass(frozen=True)
class ProcessOutcome:
    """What one sandboxed process did."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_seconds: float


@dataclass(frozen=True)
class SandboxCapabilities:
    """Which protections this machine gives (see the module docstring)."""

    network_isolated: bool
    drops_privileges: bool
    available_languages: tuple[str, ...] = field(default=())


@functools.lru_cache(maxsize=4)
def _namespaces_work(as_nobody: bool) -> bool:
    if shutil.which("unshare", path=SYSTEM_PATH) is None:
        return False
    try:
        completed = subprocess.run(
            ["unshare", *_UNSHARE_FLAGS, "true"],
            preexec_fn=_drop_privileges if as_nobody else None,
            env={"PATH": SYSTEM_PATH},
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def _drop_privileges() -> None:
    os.setgroups([])
    os.setgid(NOBODY_ID)
    os.setuid(NOBODY_ID)


def _will_drop(limits: SandboxLimits) -> bool:
    return limits.drop_privileges and os.geteuid() == 0


def search_path() -> str:
    """``PATH`` used to find compilers and interpreters: system directories first, then the caller's
    ``PATH`` (so ``python3`` is the system interpreter, readable by ``nobody``, not a virtualenv's)."""
    return SYSTEM_PATH + os.pathsep + os.environ.get("PATH", "")


def language_available(config: LanguageConfig) -> bool:
    """Whether every executable the config needs is found on :func:`search_path`."""
    return all(shutil.which(program, path=search_path()) for program in config.executables())


def sandbox_capabilities(limits: SandboxLimits | None = None) -> SandboxCapabilities:
    """Report what the sandbox can enforce here (namespaces, privilege drop, languages present).

    Example:
        >>> isinstance(sandbox_capabilities().network_isolated, bool)
        True
    """
    limits = limits or SandboxLimits()
    return SandboxCapabilities(
        network_isolated=limits.isolate and _namespaces_work(_will_drop(limits)),
        drops_privileges=_will_drop(limits),
        available_languages=tuple(
            name for name, config in LANGUAGES.items() if language_available(config)
        ),
    )


def _make_preexec(
    memory_mb: int, limit_address_space: bool, cpu_seconds: int, output_bytes: int, drop: bool
):
    def preexec() -> None:
        if limit_address_space and memory_mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        else:
            _hard = resource.getrlimit(resource.RLIMIT_AS)[1]
            resource.setrlimit(resource.RLIMIT_AS, (_hard, _hard))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop:
            _drop_privileges()

    return preexec


def _read_capped(handle, limit: int) -> str:
    handle.seek(0)
    return handle.read(limit).decode("utf-8", errors="replace")


def run_process(
    argv: list[str],
    workdir: str,
    stdin_text: str,
    limits: SandboxLimits,
    *,
    compile_step: bool = False,
    limit_address_space: bool = True,
    extra_env: dict[str, str] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` in ``workdir`` under the limits (see module docstring) and collect its output.

    The compile step uses ``compile_seconds`` / ``compile_memory_mb`` and the caller's user; the
    run step uses ``wall_seconds`` / ``memory_mb`` and drops to ``nobody`` when root.
    """
    drop = (not compile_step) and _will_drop(limits)
    wall = limits.compile_seconds if compile_step else limits.wall_seconds
    memory = limits.compile_memory_mb if compile_step else limits.memory_mb
    env = {"PATH": search_path(), "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    if compile_step:
        for name in ("RUSTUP_HOME", "CARGO_HOME", "JAVA_HOME"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.setdefault("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
    env.update(extra_env or {})
    program = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    command = [program, *argv[1:]]
    if limits.isolate and _namespaces_work(drop):
        command = ["unshare", *_UNSHARE_FLAGS, *command]
    file_limit = COMPILE_FILE_BYTES if compile_step else limits.output_bytes
    preexec = _make_preexec(memory, limit_address_space, math.ceil(wall) + 1, file_limit, drop)
    with (
        tempfile.TemporaryFile() as stdin_file,
        tempfile.TemporaryFile() as stdout_file,
        tempfile.TemporaryFile() as stderr_file,
    ):
        stdin_file.write(stdin_text.encode())
        stdin_file.seek(0)
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=stdin_file,
                stdout=stdout_file,
                stderr=stderr_file,
                cwd=workdir,
                env=env,
                preexec_fn=preexec,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            return ProcessOutcome(None, "", f"could not start {argv[0]!r}: {error}", False, 0.0)
        timed_out = False
        try:
            process.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        elapsed = time.monotonic() - started
        return ProcessOutcome(
            process.returncode,
            _read_capped(stdout_file, limits.output_bytes),
            _read_capped(stderr_file, 1 << 16),
            timed_out,
            elapsed,
        )


def outputs_match(actual: str, expected: str) -> bool:
    """Compare program output with the expected output, ignoring trailing whitespace on each line
    and trailing blank lines (the usual competitive-programming checker).

    Example:
        >>> outputs_match("1 2 \\n3\\n\\n", "1 2\\n3")
        True
        >>> outputs_match("12", "1 2")
        False
    """

    def canonical(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return canonical(actual) == canonical(expected)


@dataclass(frozen=True)
class TestOutcome:
    """Result of one stdin/stdout test case."""

    __test__ = False  # not a pytest class

    passed: bool
    status: str  # "passed", "wrong_answer", "runtime_error", "timeout", "compile_error", "skipped"
    detail: str = ""


def run_tests(
    source: str,
    language: LanguageConfig,
    tests: list[dict],
    limits: SandboxLimits = SandboxLimits(),
    *,
    stop_on_failure: bool = False,
) -> list[TestOutcome]:
    """Compile ``source`` once (if the language compiles), then run it once per test case
    ``{"input": str, "output": str}`` in a fresh process, comparing with :func:`outputs_match`.

    Returns one :class:`TestOutcome` per test, in order. A compile failure fails every test with
    status ``"compile_error"``; with ``stop_on_failure`` the tests after the first failure are
    ``"skipped"``. Raises ``RuntimeError`` naming the program when the language's compiler or
    interpreter is not installed, and ``ValueError`` for malformed test cases.
    """
    for index, case in enumerate(tests):
        if not (
            isinstance(case, dict)
            and isinstance(case.get("input"), str)
            and isinstance(case.get("output"), str)
        ):
            raise ValueError(
                f"run_tests: tests[{index}] must be a dict with str 'input' and 'output', got {case!r:.120}"
            )
    missing = [
        program
        for program in language.executables()
        if shutil.which(program, path=search_path()) is None
    ]
    if missing:
        raise RuntimeError(
            f"run_tests: language {language.name!r} needs {missing} on PATH; not found"
        )
    workdir = tempfile.mkdtemp(prefix="rlobj-sandbox-")
    try:
        os.chmod(workdir, 0o777)
        source_path = os.path.join(workdir, language.source_name)
        with open(source_path, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.chmod(source_path, 0o644)
        fields = {
            "source": source_path,
            "binary": os.path.join(workdir, "main.bin"),
            "dir": workdir,
            "memory_mb": str(limits.memory_mb),
        }
        extra_env: dict[str, str] = {}
        if language.python_socket_block and not (
            limits.isolate and _namespaces_work(_will_drop(limits))
        ):
            site_dir = os.path.join(workdir, ".rlobj_site")
            os.mkdir(site_dir)
            with open(os.path.join(site_dir, "sitecustomize.py"), "w", encoding="utf-8") as handle:
                handle.write(_SOCKET_BLOCKER)
            extra_env["PYTHONPATH"] = site_dir
        if language.compile:
            compiled = run_process(
                [part.format(**fields) for part in language.compile],
                workdir,
                "",
                limits,
                compile_step=True,
                extra_env=extra_env,
            )
            if compiled.timed_out or compiled.returncode != 0:
                detail = "compile timed out" if compiled.timed_out else compiled.stderr[-2000:]
                return [TestOutcome(False, "compile_error", detail) for _ in tests]
        argv = [part.format(**fields) for part in language.run]
        outcomes: list[TestOutcome] = []
        for case in tests:
            if stop_on_failure and outcomes and not outcomes[-1].passed:
                outcomes.append(TestOutcome(False, "skipped"))
                continue
            result = run_process(
                argv,
                workdir,
                case["input"],
                limits,
                limit_address_space=language.limit_address_space,
                extra_env=extra_env,
            )
            if result.timed_out:
                outcomes.append(
                    TestOutcome(False, "timeout", f"killed after {limits.wall_seconds} s")
                )
            elif result.returncode != 0:
                outcomes.append(
                    TestOutcome(
                        False, "runtime_error", f"exit {result.returncode}: {result.stderr[-2000:]}"
                    )
                )
            elif outputs_match(result.stdout, case["output"]):
                outcomes.append(TestOutcome(True, "passed"))
            else:
                outcomes.append(TestOutcome(False, "wrong_answer", f"got {result.stdout[:200]!r}"))
        return outcomes
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
