"""docs/how-to/own-data.md, followed step by step: its files are written, its commands run."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "how-to" / "own-data.md"
BLOCK = re.compile(r'^```(\w+)(?: title="([^"]+)")?\n(.*?)^```', re.MULTILINE | re.DOTALL)


def page_steps() -> list[tuple[str, str | None, str]]:
    """The page's code blocks in order: (language, file name or None, text)."""
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(PAGE.read_text())]


def test_the_page_has_files_and_commands():
    steps = page_steps()
    files = [name for _, name, _ in steps if name]
    commands = [line for lang, name, text in steps if lang == "bash" and not name for line in text.splitlines()]
    assert {"data/train.jsonl", "data/chat.jsonl", "my_rewards.py", "own_data.yaml", "reload.py"} <= set(files)
    assert [c.split()[:2] for c in commands] == [["rlobj", "fit"], ["rlobj", "export"], ["python", "reload.py"]]


@pytest.mark.slow
def test_follow_the_page(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "HF_DATASETS_CACHE": str(tmp_path / ".hf")}
    outputs = []
    for lang, name, text in page_steps():
        if name:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
            continue
        if lang != "bash":
            continue
        for line in text.splitlines():
            words = line.split()
            argv = ([sys.executable, "-m", "rlobj.train.cli", *words[1:]] if words[0] == "rlobj"
                    else [sys.executable, *words[1:]])
            done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            print(f"$ {line}\n{done.stdout}{done.stderr[-3000:] if done.returncode else ''}")
            assert done.returncode == 0, done.stderr[-3000:]
            outputs.append(done.stdout)
    fit, export, reload = outputs
    # training ran: supervised warm-up lines, then RL lines with grad_norm and the zero-loss note
    assert "[sft] step    1" in fit and "[rl ] step    6" in fit and "grad_norm" in fit
    run = tmp_path / "runs" / "own_data" / "version_0"
    with open(run / "metrics.csv") as handle:
        header = next(csv.reader(handle))
    assert {"reward_funcs/correct/mean", "reward_funcs/digits_only/none_fraction"} <= set(header)
    with open(run / "completions.csv") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["step", "prompt", "completion", "reward", "advantage"]
    assert {row[0] for row in table[1:]} == {"4", "6"} and len(table) == 1 + 2 * 4
    assert all(row[1].startswith("s:add;u:") and row[1].endswith("a:") for row in table[1:])
    print("completions table:\n" + "\n".join(",".join(row) for row in table))
    # export and reload
    card = (tmp_path / "my-policy" / "README.md").read_text()
    assert "- objective: `grpo`" in card and "RL optimizer updates: 4" in card
    assert "exported the policy to my-policy" in export
    assert reload.startswith("next-token argmax:")


def test_chat_rows_render_with_the_chat_template(tmp_path):
    from rlobj.train import DatasetTask, build_char_tokenizer

    steps = {name: text for _, name, text in page_steps() if name}
    (tmp_path / "chat.jsonl").write_text(steps["data/chat.jsonl"])
    task = DatasetTask(str(tmp_path / "chat.jsonl"), system_prompt="add", shuffle=False,
                       chat_template="{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }};{% endfor %}a:",
                       cache_dir=str(tmp_path / "c"))
    task.bind_tokenizer(build_char_tokenizer("0123456789+=:; abcdefghijklmnopqrstuvwxyz"))
    first, second = task.record(0), task.record(1)
    assert first["prompt"] == "s:add;u:3+4;a:" and first["answer"] == "7"
    assert second["prompt"] == "s:be brief;u:say hi;a:"  # the row's own system message wins
    assert first["prompt_messages"] == [{"role": "user", "content": "3+4"}]
