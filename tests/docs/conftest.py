"""Shared fixtures of the documentation tests: one strict build of the site per session."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).with_name("mkdocs")


@dataclass(frozen=True)
class SiteBuild:
    returncode: int
    output: str
    site: Path


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    """``mkdocs build --strict`` into a temporary folder, once per test session."""
    if not MKDOCS.exists():
        pytest.fail(f"mkdocs is not installed next to {sys.executable} (expected {MKDOCS}): "
                    "install rlobj's dev extra")
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                            capture_output=True, text=True, env=env, timeout=600)
    return SiteBuild(result.returncode, result.stdout + result.stderr, site)


@pytest.fixture(scope="session")
def built_site(site_build) -> Path:
    """The folder of a site that built without any warning (fails the test otherwise)."""
    assert site_build.returncode == 0, f"mkdocs build --strict failed:\n{site_build.output}"
    return site_build.site
