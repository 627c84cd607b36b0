"""Run every script under examples/ and store what it prints in docs/examples/outputs/<stem>.txt.

The worked-example pages include those files, so the site shows real output. Run it after
changing an example:

    .venv/bin/python docs/_tools/capture_examples.py [name ...]
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = REPO / "docs" / "examples" / "outputs"


def main(names: list[str]) -> int:
    scripts = sorted(path for path in (REPO / "examples").glob("*.py") if not path.name.startswith("_"))
    if names:
        scripts = [path for path in scripts if path.stem in names or path.name in names]
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    status = 0
    for script in scripts:
        result = subprocess.run([sys.executable, str(script.relative_to(REPO))], cwd=REPO,
                                capture_output=True, text=True, env=env)
        command = f"$ python {script.relative_to(REPO).as_posix()}\n"
        (OUTPUTS / f"{script.stem}.txt").write_text(command + result.stdout)
        print(f"{script.name}: exit {result.returncode}, {len(result.stdout.splitlines())} lines")
        status |= result.returncode != 0
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
