"""The docs page "Use rlobj inside TRL or verl" runs: every python block of docs/integrations.md,
in order, in one namespace (the verl block registers a name, the next one uses it)."""

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("verl.trainer.ppo.core_algos")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def test_page_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    module = tmp_path / "my_objectives.py"
    module.write_text(blocks[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    exec(compile(blocks[0], "integrations.md[trl]", "exec"), namespace)
    import my_objectives  # noqa: F401  (what VERL_USE_EXTERNAL_MODULES=my_objectives does)

    exec(compile(blocks[2], "integrations.md[verl]", "exec"), namespace)
    sys.modules.pop("my_objectives", None)
