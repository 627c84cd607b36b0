"""Hostile programs against the code sandbox, run concurrently; prints one JSON row per attack.

Standard library only and loads ``rlobj/verifiers/sandbox.py`` by file path, so a non-root user
can run it with the system interpreter (``/usr/bin/python3 tests/security/attack_suite.py``).
Each row: attack, caller, result (``contained`` / ``ESCAPED: ...``), seconds to contain (the
``run_tests`` call, teardown included), leftovers (processes seen with ``ps`` and sandbox
directories or cgroups on the file system after the batch).
"""

import concurrent.futures
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAFE = "SAFE"


def load_sandbox():
    path = os.path.join(ROOT, "rlobj", "verifiers", "sandbox.py")
    spec = importlib.util.spec_from_file_location("rlobj_attack_sandbox", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def append_to_each(paths: str, text: str) -> str:
    """Program text that appends ``text`` to each path of ``paths`` (both Python source) and
    records in ``hits`` the paths it could write."""
    return (f"hits = []\nfor path in {paths}:\n    try:\n        with open(path, 'a') as handle:\n"
            f"            handle.write({text})\n        hits.append(path)\n    except OSError:\n        pass\n")


REPORT = "print('ESCAPED ' + ' '.join(map(str, hits)) if hits else 'SAFE')\n"

PROGRAMS = {
    "write caller's home": "\nimport os\n" + append_to_each(
        "[{home!r} + '/.bashrc', {home!r} + '/rlobj-escape-{token}']", "'echo pwned\\n'"),
    "write the project": "\n" + append_to_each("[{canary!r}, {root!r} + '/README.md']", "'pwned'"),
    "read caller's secret file": """
hits = []
for path in [{secret_path!r}, '/etc/shadow', '/root/.bash_history']:
    try:
        hits.append(open(path).read()[:40])
    except OSError:
        pass
""",
    "read other runs' directories": """
import os, time
open('/sandbox/secret_{token}_mine', 'w').write('{token}-victim-data')
time.sleep(1.0)
hits = []
import glob
skip = set(['usr', 'lib', 'lib64', 'lib32', 'bin', 'sbin', 'etc', 'opt', 'proc', 'sys', 'dev'])
for top in ['/', '/tmp', os.path.normpath('/sandbox/..')] + glob.glob('/proc/*/cwd') + glob.glob('/proc/*/root/tmp'):
    for base, dirs, files in os.walk(top):
        if base == '/':
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name.startswith('secret_') and not name.endswith('_mine'):
                hits.append(os.path.join(base, name))
""",
    "plant a module in a concurrent run": """
import os, glob
hits = []
for directory in ['/sandbox/..', '/tmp', '/usr/lib/python3', '/usr/lib/python3.11'] + glob.glob('/tmp/rlobj-sandbox-*'):
    try:
        open(os.path.join(directory, 'json.py'), 'w').write('def dumps(x): return "0.167"')
        hits.append(directory)
    except OSError:
        pass
hits = [h for h in hits if not h.startswith('/sandbox') and h != '/tmp']  # its own dir is fine
""",
    "victim of module planting": """
import time
time.sleep(1.0)
import json
hits = [] if json.dumps([1]) == '[1]' else ['json was replaced']
""",
    "network to loopback": """
import socket
hits = []
for family, address in [(socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET6, ('::1', {port}))]:
    try:
        s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(1); s.connect(address)
        hits.append(address)
    except OSError:
        pass
""",
    "network to the outside": """
import socket
hits = []
for address in [('1.1.1.1', 80), ('8.8.8.8', 53)]:
    try:
        s = socket.socket(); s.settimeout(1); s.connect(address); hits.append(address)
    except OSError:
        pass
try:
    socket.getaddrinfo('example.com', 80); hits.append('dns')
except OSError:
    pass
""",
    "raw sockets": """
import socket
hits = []
for args in [(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
             (socket.AF_PACKET, socket.SOCK_RAW, 0)]:
    try:
        socket.socket(*args); hits.append(args[:2])
    except OSError:
        pass
""",
    "fork bomb": """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""",
    "many children under the per-process limit": """
import os, time
children = []
for _ in range(8):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        block = bytearray(300 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os.write(write, b'x')
        time.sleep(60)
        os._exit(0)
    children.append((pid, read))
time.sleep(2.5)
alive = 0
for pid, read in children:
    os.set_blocking(read, False)
    try:
        ready = os.read(read, 1) == b'x'
    except BlockingIOError:
        ready = False
    alive += ready and os.waitpid(pid, os.WNOHANG) == (0, 0)
hits = ['%d MiB held' % (alive * 300)] if alive * 300 > {run_memory_mb} else []
""",
    "huge output": """
import sys
chunk = 'x' * 65536
while True:
    sys.stdout.write(chunk)
""",
    "fill the disk": """
import os
hits = []
written = 0
try:
    for index in range(100000):
        with open('/sandbox/fill%d' % index, 'wb') as handle:
            handle.write(b'x' * (1000 << 10))
        written += 1000
except OSError:
    pass
hits = ['wrote %d KiB' % written] if written > {disk_kib} else []
""",
    "sleep forever": """
import time
time.sleep(10 ** 6)
""",
    "surviving background process": """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    os._exit(0)
hits = []
""",
    "signals to the parent and the caller": """
import os, signal
hits = []
for pid in [os.getppid(), 1, {caller_pid}]:
    for sig in [signal.SIGUSR1, signal.SIGTERM, signal.SIGKILL]:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
""",
    "/proc snooping": """
import os
hits = []
for name in os.listdir('/proc'):
    if name.isdigit():
        try:
            text = open('/proc/%s/cmdline' % name, 'rb').read() + open('/proc/%s/environ' % name, 'rb').read()
        except OSError:
            continue
        if b'{token}' in text or b'attack_suite' in text:
            hits.append(name)
""",
    "write the read-only runtime": """
hits = []
for path in ['/usr/lib/python3/dist-packages/rlobj_escape_{token}.py', '/etc/rlobj_escape_{token}', '/bin/rlobj_escape_{token}']:
    try:
        open(path, 'w').write('x'); hits.append(path)
    except OSError:
        pass
""",
}


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _ps_leftovers(caller_uid: int) -> list[str]:
    """Processes (``ps``) of a per-run uid, or of a non-root caller other than this process and
    ``ps`` itself."""
    lines = subprocess.run(
        ["ps", "-eo", "pid=,uid=,args="], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = []
    for line in lines:
        pid, uid, args = line.split(None, 2)
        per_run = 1_600_000_000 <= int(uid) < 1_601_000_000
        mine = caller_uid != 0 and int(uid) == caller_uid and int(pid) != os.getpid()
        if (per_run or mine) and not args.startswith("ps "):
            found.append(line.strip())
    return found


def _fs_leftovers(sandbox) -> list[str]:
    places = ["/tmp"] + list((sandbox._isolation.cgroup_parents() or ("", {}))[1].values())
    return [
        os.path.join(place, name)
        for place in places
        for name in os.listdir(place)
        if name.startswith("rlobj-sandbox-")
    ]


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| attack | caller | bounds | result | outcome | seconds to contain | leftovers |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['attack']} | {r['caller']} | {r['bounds']} | {r['result']} | {r['outcome']} "
        f"| {r['seconds']} | {r['leftovers']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    """``attack_suite.py [--direct] [--only NAME,NAME] [--table]``: ``--direct`` runs the
    attacks with the sandbox's isolation opted out (to check that the detectors see escapes)."""
    direct = "--direct" in sys.argv
    only = next(
        (arg.split("=", 1)[1].split(",") for arg in sys.argv if arg.startswith("--only=")),
        list(PROGRAMS),
    )
    token = secrets.token_hex(6)
    home = pwd.getpwuid(os.getuid()).pw_dir
    secret_path = os.path.join(home, f".rlobj-secret-{token}")
    # the caller's project: this checkout when the caller may write it, else a directory it owns
    project = ROOT if os.access(ROOT, os.W_OK) else os.path.join(home, f"rlobj-project-{token}")
    os.makedirs(project, exist_ok=True)
    canary = os.path.join(project, f".attack-canary-{token}")
    bashrc = _read(os.path.join(home, ".bashrc"))
    try:
        result = run_suite(token, home, secret_path, canary, direct, only)
        print(table(result["rows"]) if "--table" in sys.argv else json.dumps(result))
    finally:
        if bashrc != _read(os.path.join(home, ".bashrc")):  # an escape in --direct mode
            with open(os.path.join(home, ".bashrc"), "wb") as handle:
                handle.write(bashrc or b"")
        escape = os.path.join(home, f"rlobj-escape-{token}")
        if os.path.exists(escape):
            os.remove(escape)
        for path in (secret_path, canary):
            if os.path.exists(path):
                os.remove(path)
        if project != ROOT:
            os.rmdir(project)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def run_suite(
    token: str, home: str, secret_path: str, canary: str, direct: bool, only: list[str]
) -> dict:
    sandbox = load_sandbox()
    caller = pwd.getpwuid(os.getuid())
    with open(secret_path, "w") as handle:
        handle.write(f"secret-{token}")
    os.chmod(secret_path, 0o600)
    with open(canary, "w") as handle:
        handle.write("canary")
    os.chmod(canary, 0o666)
    watched = [os.path.join(home, ".bashrc"), canary, os.path.join(ROOT, "README.md")]
    before = {path: _digest(path) for path in watched}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    connections = []
    signals = []
    signal.signal(signal.SIGUSR1, lambda *_: signals.append("SIGUSR1"))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(listener.accept()[1])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    missing = () if sandbox.sandbox_capabilities().cgroup else ("cgroup",)
    limits = sandbox.SandboxLimits(
        wall_seconds=4.0,
        memory_mb=512,
        run_memory_mb=1024,
        max_processes=32,
        disk_mb=64,
        output_bytes=1 << 20,
        allow_missing=missing,
        isolate=not direct,
    )
    fields = {
        "home": home,
        "token": token,
        "canary": canary,
        "root": ROOT,
        "port": listener.getsockname()[1],
        "secret_path": secret_path,
        "caller_pid": os.getpid(),
        "run_memory_mb": limits.run_memory_mb,
        "disk_kib": limits.disk_mb << 10,
    }
    python = sandbox.LANGUAGES["python"]

    def attack(name: str):
        program = "hits = []\n" + PROGRAMS[name].format(**fields) + REPORT
        started = time.monotonic()
        outcome = sandbox.run_tests(program, python, [{"input": "", "output": SAFE}], limits)[0]
        return name, outcome, time.monotonic() - started

    leftovers_before = _ps_leftovers(os.getuid())
    directories_before = set(_fs_leftovers(sandbox))  # other users of this machine may have some
    with concurrent.futures.ThreadPoolExecutor(len(only)) as pool:
        results = list(pool.map(attack, only))
    stop.set()
    time.sleep(0.3)
    processes = [line for line in _ps_leftovers(os.getuid()) if line not in leftovers_before]
    directories = [path for path in _fs_leftovers(sandbox) if path not in directories_before]
    after = {path: _digest(path) for path in watched}
    host_escapes = {
        "write caller's home": [p for p in watched[:1] if after[p] != before[p]]
        + [p for p in [os.path.join(home, f"rlobj-escape-{token}")] if os.path.exists(p)],
        "write the project": [p for p in watched[1:] if after[p] != before[p]],
        "network to loopback": [f"{len(connections)} connections"] if connections else [],
        "signals to the parent and the caller": signals,
        "write the read-only runtime": [
            p
            for p in (
                f"/usr/lib/python3/dist-packages/rlobj_escape_{token}.py",
                f"/etc/rlobj_escape_{token}",
                f"/bin/rlobj_escape_{token}",
            )
            if os.path.exists(p)
        ],
    }
    rows = []
    for name, outcome, seconds in results:
        escaped = list(host_escapes.get(name, []))
        if "ESCAPED" in outcome.detail or f"secret-{token}" in outcome.detail:
            escaped.append(outcome.detail[:160])
        rows.append(
            {
                "attack": name,
                "caller": f"{caller.pw_name} (uid {os.getuid()})",
                "bounds": "NO ISOLATION (--direct)"
                if direct
                else "cgroup " + sandbox.sandbox_capabilities().cgroup
                if not missing
                else "rlimits + memory watch (no cgroup, opted out)",
                "result": "ESCAPED: " + "; ".join(map(str, escaped)) if escaped else "contained",
                "outcome": outcome.status,
                "seconds": round(seconds, 2),
                "leftovers": len(processes) + len(directories),
            }
        )
    return {"rows": rows, "leftover_processes": processes, "leftover_directories": directories}


if __name__ == "__main__":
    main()
