"""The hostile-program suite (attack_suite.py) as root and as a non-root caller, the detectors'
own check (they see escapes when isolation is opted out), and a pool timeout shorter than the
sandbox's budget: 0 escapes, 0 processes or directories left, measured with ps and the file system.
"""

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlobj.verifiers import (
    CodeExecution,
    SandboxLimits,
    VerifierPool,
    sandbox,
    sandbox_capabilities,
)

SUITE = Path(__file__).with_name("attack_suite.py")
sys.path.insert(0, str(SUITE.parent))
import attack_suite  # noqa: E402

TEST_USER = "rlobj-attacker"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(
    not sandbox_capabilities(SandboxLimits(allow_missing=("cgroup",))).network_isolated,
    reason="this host gives no user namespaces: the sandbox refuses (tested in test_sandbox.py)",
)


def _non_root_user() -> list[str]:
    """Command prefix running as an unprivileged user (created here when the caller is root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
    home = pwd.getpwnam(TEST_USER).pw_dir
    return [
        "setpriv",
        f"--reuid={TEST_USER}",
        f"--regid={TEST_USER}",
        "--init-groups",
        "env",
        f"HOME={home}",
    ]


def _run_suite(prefix: list[str], *args: str) -> dict:
    python = SYSTEM_PYTHON if prefix else sys.executable
    completed = subprocess.run(
        [*prefix, python, str(SUITE), *args], capture_output=True, text=True, timeout=240, cwd="/"
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    print(attack_suite.table(result["rows"]))
    return result


def _assert_all_contained(result: dict) -> None:
    rows = result["rows"]
    assert len(rows) >= 15
    assert [row["attack"] for row in rows if row["result"] != "contained"] == [], rows
    assert result["leftover_processes"] == [] and result["leftover_directories"] == []
    assert all(row["seconds"] < 10 for row in rows), rows


def test_attack_suite_as_root():
    if os.geteuid() != 0:
        pytest.skip("the caller is not root")
    _assert_all_contained(_run_suite([]))


def test_attack_suite_as_non_root_caller():
    prefix = _non_root_user()
    result = _run_suite(prefix)
    assert all("uid 0" not in row["caller"] for row in result["rows"])
    _assert_all_contained(result)


def test_detectors_see_escapes_when_isolation_is_opted_out():
    attacks = [
        "write caller's home",
        "write the project",
        "read caller's secret file",
        "surviving background process",
    ]
    result = _run_suite(_non_root_user(), "--direct", "--only=" + ",".join(attacks))
    escaped = {row["attack"] for row in result["rows"] if row["result"].startswith("ESCAPED")}
    assert escaped == set(attacks[:3])
    assert result["leftover_processes"]  # the background process outlived its run: ps sees it
    for line in result["leftover_processes"]:  # end them (this test started them)
        subprocess.run(["kill", "-9", line.split()[0]], capture_output=True)


def test_pool_timeout_shorter_than_the_sandbox_budget_leaves_nothing():
    # the defaults that leaked: pool 10 s vs 5 s x 3 tests; scaled down: pool 1 s vs 4 s x 3
    program = "import subprocess, time\nsubprocess.Popen(['sleep', '313'])\ntime.sleep(300)\n"
    sample = {"tests": [{"input": "", "output": "x"}] * 3}
    verifier = CodeExecution(
        limits=SandboxLimits(
            wall_seconds=4.0, memory_mb=256, allow_missing=sandbox_capabilities().missing
        )
    )
    before = attack_suite._ps_leftovers(os.getuid())
    directories_before = set(attack_suite._fs_leftovers(sandbox))
    with VerifierPool(workers=2, timeout=1.0, memory_limit_mb=0) as pool:
        started = time.monotonic()
        result = pool.score(verifier, [program] * 2, [sample] * 2)
        contained = time.monotonic() - started
    assert result.statuses == ("timeout", "timeout")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        processes = [p for p in attack_suite._ps_leftovers(os.getuid()) if p not in before]
        processes += subprocess.run(
            ["pgrep", "-f", "sleep 313"], capture_output=True, text=True
        ).stdout.split()
        directories = [
            p for p in attack_suite._fs_leftovers(sandbox) if p not in directories_before
        ]
        if not processes and not directories:
            break
        time.sleep(0.1)
    print(
        f"pool timeout first: contained in {contained:.2f} s, leftovers {processes + directories}"
    )
    assert processes == [] and directories == []
