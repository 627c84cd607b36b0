"""MkDocs hook: pages for term families and example scripts added after the docs were written.

Each module ``rlobj/terms/<family>.py`` (not starting with ``_``) gets ``api/<family>.md``, and
each script ``examples/<name>.py`` gets ``examples/<name>.md``. A hand-written page of that name
wins; otherwise the hook generates one (``::: rlobj.terms.<family>``, or the script with its
captured output from ``docs/examples/outputs/<name>.txt``) and adds it to the nav, so new terms
and examples appear on the site without editing ``docs/`` or ``mkdocs.yml``.
"""

from pathlib import Path

from mkdocs.structure.files import File

_ROOT = Path(__file__).resolve().parents[2]


def _families() -> list[str]:
    return sorted(path.stem for path in (_ROOT / "rlobj" / "terms").glob("*.py")
                  if not path.stem.startswith("_"))


def _title(family: str) -> str:
    return family.replace("_", " ").capitalize()


def _examples() -> list[str]:
    return sorted(path.stem for path in (_ROOT / "examples").glob("*.py") if not path.stem.startswith("_"))


def _missing(config) -> list[str]:
    docs = Path(config["docs_dir"])
    return [family for family in _families() if not (docs / "api" / f"{family}.md").exists()]


def _missing_examples(config) -> list[str]:
    docs = Path(config["docs_dir"])
    return [name for name in _examples() if not (docs / "examples" / f"{name}.md").exists()]


def _add_to_section(config, section_name: str, entries: list[tuple[str, str]]) -> None:
    for section in config["nav"] or []:
        if isinstance(section, dict) and section_name in section:
            pages = section[section_name]
            listed = {next(iter(p.values())) if isinstance(p, dict) else p for p in pages}
            for title, path in entries:
                if path not in listed:
                    pages.append({title: path})


def on_config(config):
    _add_to_section(config, "API reference",
                    [(_title(family), f"api/{family}.md") for family in _missing(config)])
    _add_to_section(config, "Worked examples",
                    [(f"{name}.py", f"examples/{name}.md") for name in _missing_examples(config)])
    return config


def _example_page(name: str) -> str:
    output = _ROOT / "docs" / "examples" / "outputs" / f"{name}.txt"
    doc = ""
    source = (_ROOT / "examples" / f"{name}.py").read_text(encoding="utf-8")
    if source.lstrip().startswith(('"""', "r\"\"\"")):
        body = source.lstrip().split('"""', 2)
        doc = body[1].strip() + "\n\n" if len(body) == 3 else ""
    shown = (f'```text\n--8<-- "docs/examples/outputs/{name}.txt"\n```\n' if output.exists() else
             "No captured output yet: run `.venv/bin/python docs/_tools/capture_examples.py "
             f"{name}`.\n")
    return (f"# {name}.py\n\n*This page is generated for `examples/{name}.py`.*\n\n{doc}"
            f"## The script\n\n```python\n--8<-- \"examples/{name}.py\"\n```\n\n## Its output\n\n{shown}")


def on_files(files, config):
    for family in _missing(config):
        content = (f"# {_title(family)}\n\n"
                   f"*This page is generated for the module `rlobj/terms/{family}.py`.*\n\n"
                   f"::: rlobj.terms.{family}\n")
        files.append(File.generated(config, f"api/{family}.md", content=content))
    for name in _missing_examples(config):
        files.append(File.generated(config, f"examples/{name}.md", content=_example_page(name)))
    return files
