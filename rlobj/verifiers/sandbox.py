r"""Running untrusted programs: an isolated run per call of :func:`run_tests`, with limits.

What a run gets (Linux; see :func:`sandbox_capabilities` for what this host gives):

- **its own identity**: a new user namespace in which the program is uid 1000 without
  capabilities. Outside, that is a fresh per-run uid (reserved for the run, never shared) when the
  caller is root, else the caller's uid; ``no_new_privs`` is set.
- **its own file system view**: a new mount namespace whose root holds only read-only binds of the
  runtime (``/usr``, ``/bin``, ``/lib*``, ``/etc``, ``/opt`` and the toolchain directories a
  language names), a fresh ``/proc`` of its own PID namespace, ``/dev/{null,zero,full,random,
  urandom}``, and ``/sandbox``: a tmpfs of mode 0700 (``disk_mb``) holding the source. The
  caller's home, the project and other runs' directories do not exist there. Nothing is written
  to the host's file system; the tmpfs disappears with the namespace.
- **no network**: a new network namespace (loopback down); no capabilities, so no raw sockets.
- **whole-run bounds**: a cgroup (v2, or v1 memory/pids/cpu hierarchies) holding every process of
  the run caps total memory (``run_memory_mb``, tmpfs included), processes (``max_processes``)
  and CPU (``cpus``). Per process: ``RLIMIT_AS`` (``memory_mb``; lifted for the JVM and V8, whose
  heap flag is filled from ``{memory_mb}``), ``RLIMIT_CPU``, ``RLIMIT_FSIZE`` (``output_bytes``),
  no core dumps, and ``RLIMIT_NPROC``, which in a fresh user namespace counts only this run.
- **nothing survives**: the namespace's init kills every other process after each test case; at
  the wall limit, when the caller's process dies (``PDEATHSIG``, e.g. a
  :class:`~rlobj.verifiers.VerifierPool` worker killed at its timeout) or when the run ends, init
  dies and the kernel kills every process of the PID namespace. Cgroups left by a killed caller
  are removed by :func:`sweep_orphans` (the pool calls it after killing a worker).

When a mechanism is missing the sandbox refuses to run (:class:`SandboxUnavailable`, naming it)
unless the caller opts out explicitly: ``allow_missing=("cgroup",)`` runs with the equivalent
bounds (``RLIMIT_NPROC`` per namespace, per-process limits, and init polling the run's resident
memory every 50 ms against ``run_memory_mb``); ``allow_missing=("namespaces",)`` or
``isolate=False`` runs the program directly (own 0700 directory, per-run uid when root, rlimits,
process group killed), with no file system or network isolation (Python programs get a
``sitecustomize`` that blocks ``socket``, which a program can bypass).

Not provided: a seccomp filter (the kernel's whole system-call surface is reachable).

Per-language configuration follows the Agnostics idea (Boruch-Gruszecki et al., arXiv:2508.04865):
a language is judged only by its I/O behaviour, and adding one is a short config saying how to
compile and run a source file (:class:`LanguageConfig`).
"""

import contextlib
import functools
import math
import os
import shutil
from dataclasses import dataclass, field

try:  # also loadable by file path, without the rlobj package (non-root callers, system python)
    from rlobj.verifiers import _isolation, _jail
    from rlobj.verifiers._direct import run_direct
except ImportError:  # pragma: no cover - exercised by the non-root caller test
    import importlib.util as _util
    import sys as _sys

    def _load(name):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        spec = _util.spec_from_file_location(f"rlobj_sandbox_{name}", path)
        module = _util.module_from_spec(spec)
        _sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    _isolation = _load("_isolation")
    _jail = _load("_jail")
    run_direct = _load("_direct").run_direct

SandboxUnavailable = _isolation.SandboxUnavailable
sweep_orphans = _isolation.sweep_orphans
RUNTIME = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
COMPILE_FILE_BYTES = 512 << 20  # compilers write binaries larger than a program's output limit


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
        runtime: extra directories (``~`` expanded) the sandbox shows read-only, for toolchains
            outside ``/usr`` and ``/opt`` (rustup's ``~/.cargo`` and ``~/.rustup``).

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
    runtime: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.run:
            raise ValueError(
                f"LanguageConfig {self.name!r}: argument 'run' must be a non-empty command"
            )
        object.__setattr__(self, "run", tuple(self.run))
        object.__setattr__(self, "compile", tuple(self.compile))
        object.__setattr__(self, "runtime", tuple(self.runtime))

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
            runtime=("~/.cargo", "~/.rustup"),
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
    """Resource limits and isolation policy of one sandboxed run (see the module docstring).

    Args:
        wall_seconds: wall-clock limit per test-case run. Default 5.
        memory_mb: address-space (or heap) limit per process, MiB. Default 512.
        compile_seconds: wall-clock limit of the compile step. Default 60.
        compile_memory_mb: address-space limit of the compile step, MiB (``0``: no limit; rustc
            and LLVM reserve large virtual ranges). Default 0.
        output_bytes: largest file (stdout included) a program may write. Default 1 MiB.
        isolate: ``False`` opts out of namespaces and cgroups explicitly (weak; see the module
            docstring). Default ``True``.
        drop_privileges: run as a fresh per-run uid when the caller is root. Default ``True``.
        run_memory_mb: memory of the whole run (every process, plus its tmpfs), MiB. Default 2048.
        max_processes: processes (threads included) the run may have at once. Default 64.
        cpus: CPU share of the whole run (cgroup quota). Default 1.0.
        disk_mb: size of the run's tmpfs working directory, MiB. Default 256.
        allow_missing: mechanisms the caller explicitly accepts to run without, from
            ``("namespaces", "cgroup")``. Default ``()``: refuse when one is missing.
    """

    wall_seconds: float = 5.0
    memory_mb: int = 512
    compile_seconds: float = 60.0
    compile_memory_mb: int = 0
    output_bytes: int = 1 << 20
    isolate: bool = True
    drop_privileges: bool = True
    run_memory_mb: int = 2048
    max_processes: int = 64
    cpus: float = 1.0
    disk_mb: int = 256
    allow_missing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "compile_seconds", "cpus"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(
                    f"SandboxLimits: argument {name!r} must be a positive number, got {value!r}"
                )
        for name, low in (
            ("memory_mb", 16),
            ("compile_memory_mb", 0),
            ("output_bytes", 1024),
            ("run_memory_mb", 32),
            ("max_processes", 1),
            ("disk_mb", 1),
        ):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ValueError(
                    f"SandboxLimits: argument {name!r} must be an int >= {low}, got {value!r}"
                )
        object.__setattr__(self, "allow_missing", tuple(self.allow_missing))
        unknown = set(self.allow_missing) - set(_isolation.MECHANISMS)
        if unknown:
            raise ValueError(
                f"SandboxLimits: argument 'allow_missing' may only name {_isolation.MECHANISMS}, "
                f"got {sorted(unknown)}"
            )


@dataclass(frozen=True)
class ProcessOutcome:
    """What one sandboxed process did (``leftover_processes``: others it left, killed after)."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_seconds: float
    leftover_processes: int = 0


@dataclass(frozen=True)
class SandboxCapabilities:
    """Which protections this host gives this caller (see the module docstring).

    Attributes:
        network_isolated: user/mount/PID/network namespaces can be set up.
        drops_privileges: programs run as a per-run uid (caller is root) or in a user namespace.
        available_languages: languages whose toolchain is installed.
        cgroup: ``"v2"``, ``"v1"`` or ``None`` (no writable cgroup with memory and pids control).
        missing: mechanisms absent here, from ``("namespaces", "cgroup")``.
        namespace_error: why namespaces failed, if they did.
    """

    network_isolated: bool
    drops_privileges: bool
    available_languages: tuple[str, ...] = field(default=())
    cgroup: str | None = None
    missing: tuple[str, ...] = ()
    namespace_error: str = ""


@functools.lru_cache(maxsize=4)
def _namespace_probe(per_run_uid: bool) -> str:
    """Empty if a jail can be set up for this caller, else the reason."""
    uid = _isolation.RunUid() if per_run_uid else None
    try:
        jail = _isolation.Jail(
            {},
            _runtime(()),
            uid=uid.uid if uid else None,
            cgroup=None,
            disk_mb=1,
            watch_memory_mb=0,
        )
        jail.close()
        return ""
    except (_isolation.SandboxUnavailable, OSError) as error:
        return str(error)
    finally:
        if uid is not None:
            uid.release()


def _per_run_uid(limits: SandboxLimits) -> bool:
    return limits.drop_privileges and os.geteuid() == 0


def search_path() -> str:
    """``PATH`` used to find compilers and interpreters: system directories first, then the caller's
    ``PATH`` (so ``python3`` is the system interpreter, visible in the sandbox, not a virtualenv's)."""
    return SYSTEM_PATH + os.pathsep + os.environ.get("PATH", "")


def language_available(config: LanguageConfig) -> bool:
    """Whether every executable the config needs is found on :func:`search_path`."""
    return all(shutil.which(program, path=search_path()) for program in config.executables())


def sandbox_capabilities(limits: SandboxLimits | None = None) -> SandboxCapabilities:
    """Report what the sandbox can enforce here for this caller.

    Example:
        >>> isinstance(sandbox_capabilities().network_isolated, bool)
        True
    """
    limits = limits or SandboxLimits()
    error = _namespace_probe(_per_run_uid(limits)) if limits.isolate else "isolate=False"
    found = _isolation.cgroup_parents()
    cgroup = found[0] if found else None
    missing = tuple(
        name for name, ok in (("namespaces", not error), ("cgroup", cgroup is not None)) if not ok
    )
    return SandboxCapabilities(
        network_isolated=not error,
        drops_privileges=_per_run_uid(limits) or not error,
        available_languages=tuple(
            name for name, config in LANGUAGES.items() if language_available(config)
        ),
        cgroup=cgroup,
        missing=missing,
        namespace_error=error,
    )


def _runtime(extra: tuple[str, ...]) -> list[str]:
    paths = [path for path in RUNTIME if os.path.lexists(path)]
    for path in extra:
        path = os.path.realpath(os.path.expanduser(path))
        if os.path.isdir(path) and not any(
            path == root or path.startswith(root + "/") for root in paths
        ):
            paths.append(path)
    return paths


def _mechanisms(limits: SandboxLimits) -> tuple[bool, str | None]:
    """(use namespaces, cgroup version or None); raises SandboxUnavailable per the policy."""
    caps = sandbox_capabilities(limits)
    allowed = set(limits.allow_missing) | (set() if limits.isolate else {"namespaces", "cgroup"})
    refused = [name for name in caps.missing if name not in allowed]
    if refused:
        why = {
            "namespaces": f"user/mount/PID/network namespaces ({caps.namespace_error})",
            "cgroup": "a writable cgroup with memory and pids control (v2 delegated to this "
            "process, or v1 hierarchies at /sys/fs/cgroup/{memory,pids,cpu})",
        }
        raise SandboxUnavailable(
            "rlobj sandbox refuses to run untrusted code: this host lacks "
            + " and ".join(why[name] for name in refused)
            + f". Opt out explicitly with SandboxLimits(allow_missing={tuple(refused)!r})"
        )
    return caps.network_isolated and limits.isolate, caps.cgroup


def _command(argv, stdin_text, limits, *, compile_step, limit_address_space, env) -> dict:
    wall = limits.compile_seconds if compile_step else limits.wall_seconds
    return {
        "argv": argv,
        "stdin": stdin_text,
        "env": env,
        "wall_seconds": wall,
        "cpu_seconds": math.ceil(wall) + 1,
        "memory_mb": limits.compile_memory_mb if compile_step else limits.memory_mb,
        "limit_address_space": limit_address_space,
        "file_bytes": COMPILE_FILE_BYTES if compile_step else limits.output_bytes,
        "output_bytes": limits.output_bytes,
        "processes": limits.max_processes + 2,  # the namespace's two supervising processes
    }


def _environment(workdir: str, compile_step: bool, extra: dict[str, str]) -> dict[str, str]:
    env = {"PATH": search_path(), "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    if compile_step:
        for name in ("RUSTUP_HOME", "CARGO_HOME", "JAVA_HOME"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.setdefault("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
    env.update(extra)
    return env


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

    All steps of one call share one isolated run (one namespace set, one tmpfs, one cgroup); see
    the module docstring. Returns one :class:`TestOutcome` per test, in order. A compile failure
    fails every test with status ``"compile_error"``; with ``stop_on_failure`` the tests after the
    first failure are ``"skipped"``. Raises ``RuntimeError`` naming the program when the
    language's compiler or interpreter is not installed, :class:`SandboxUnavailable` naming the
    missing mechanism when the host cannot isolate the run (and the caller did not opt out), and
    ``ValueError`` for malformed test cases.
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
    with _session(source, language, limits) as step:
        return _judge(step, language, tests, limits, stop_on_failure)


def run_program(
    source: str,
    language: LanguageConfig,
    stdin_text: str = "",
    limits: SandboxLimits = SandboxLimits(),
) -> ProcessOutcome:
    """Compile ``source`` (if the language compiles) and run it once on ``stdin_text`` in one
    isolated run (as :func:`run_tests` does), returning what it printed.

    For tools that show a program's output to a model (a code interpreter). A compile failure
    returns the compiler's outcome (its ``stderr``); stdout is bounded by ``output_bytes``.
    Raises as :func:`run_tests` does when the toolchain or an isolation mechanism is missing.
    """
    with _session(source, language, limits) as step:
        if language.compile:
            compiled = step(language.compile, "", True)
            if compiled.timed_out or compiled.returncode != 0:
                return compiled
        return step(language.run, stdin_text, False)


@contextlib.contextmanager
def _session(source: str, language: LanguageConfig, limits: SandboxLimits):
    """One isolated run (namespaces or direct, cgroup, per-run uid): yields ``step(template,
    stdin_text, compile_step) -> ProcessOutcome`` and tears everything down afterwards."""
    programs = {
        program: shutil.which(program, path=search_path()) for program in language.executables()
    }
    missing = [program for program, found in programs.items() if found is None]
    if missing:
        raise RuntimeError(
            f"run_tests: language {language.name!r} needs {missing} on PATH; not found"
        )
    isolated, cgroup_version = _mechanisms(limits)
    cgroup = uid = close = None
    try:
        if cgroup_version:
            cgroup = _isolation.RunCgroup(
                limits.run_memory_mb, limits.max_processes + 2, limits.cpus
            )
        uid = _isolation.RunUid() if _per_run_uid(limits) else None
        files = {language.source_name: source}
        if isolated:
            outside = [  # toolchains outside the default runtime: show their installation
                os.path.dirname(os.path.dirname(os.path.realpath(path)))
                for path in programs.values()
            ]
            jail = _isolation.Jail(
                files,
                _runtime((*language.runtime, *outside)),
                uid=uid.uid if uid else None,
                cgroup=cgroup,
                disk_mb=limits.disk_mb,
                watch_memory_mb=0 if cgroup else limits.run_memory_mb,
            )
            workdir, run, close = "/sandbox", jail.run, jail.close
        else:
            workdir, run, close = run_direct(
                files,
                uid.uid if uid else None,
                cgroup.procs_files if cgroup else [],
                language.python_socket_block,
                _jail.apply_limits,
            )
        fields = {
            "source": os.path.join(workdir, language.source_name),
            "binary": os.path.join(workdir, "main.bin"),
            "dir": workdir,
            "memory_mb": str(limits.memory_mb),
        }

        def step(template, stdin_text: str, compile_step: bool) -> ProcessOutcome:
            argv = [part.format(**fields) for part in template]
            argv[0] = programs.get(argv[0]) or argv[0]
            command = _command(
                argv,
                stdin_text,
                limits,
                compile_step=compile_step,
                limit_address_space=compile_step or language.limit_address_space,
                env=_environment(workdir, compile_step, {}),
            )
            return ProcessOutcome(**run(command))

        yield step
    finally:
        if close is not None:
            close()
        if cgroup is not None:
            cgroup.remove()
        if uid is not None:
            uid.release()


def _judge(step, language, tests, limits, stop_on_failure) -> list[TestOutcome]:
    if language.compile:
        compiled = step(language.compile, "", True)
        if compiled.timed_out or compiled.returncode != 0:
            detail = "compile timed out" if compiled.timed_out else compiled.stderr[-2000:]
            return [TestOutcome(False, "compile_error", detail) for _ in tests]
    outcomes: list[TestOutcome] = []
    for case in tests:
        if stop_on_failure and outcomes and not outcomes[-1].passed:
            outcomes.append(TestOutcome(False, "skipped"))
            continue
        result = step(language.run, case["input"], False)
        if result.timed_out:
            outcomes.append(TestOutcome(False, "timeout", f"killed after {limits.wall_seconds} s"))
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
