"""MkDocs hook: one API page per family of terms, and pages for example scripts.

The terms are filed by the slot they write (``rlobj/terms/__init__.py`` lists the families).
Each family, a package ``rlobj/terms/<family>/`` or a module ``rlobj/terms/<family>.py`` (not
starting with ``_``), gets ``api/<family>.md``: the family's docstring (the rule and a table of
its modules), then one section per public module, in the order the family's table lists them
(modules the table omits follow, sorted). Each script ``examples/<name>.py`` gets
``examples/<name>.md``. A hand-written page of that name wins; otherwise the hook generates one
and adds it to the nav if ``mkdocs.yml`` does not list it, so new families, modules and examples
appear on the site without editing ``docs/``.
"""

import re
from pathlib import Path

from mkdocs.structure.files import File

_ROOT = Path(__file__).resolve().parents[2]
_TERMS = _ROOT / "rlobj" / "terms"

#: Page titles of the families; any other family gets its name, capitalised.
TITLES = {"rewards": "Rewards", "advantages": "Advantages", "masks": "Masks", "surrogates": "Surrogates",
          "divergences": "Divergences", "regularizers": "Regularizers",
          "supervised": "Supervised losses", "auxiliary": "Auxiliary losses"}


def _families() -> list[str]:
    packages = [path.name for path in _TERMS.iterdir() if (path / "__init__.py").is_file()]
    modules = [path.stem for path in _TERMS.glob("*.py") if path.stem != "__init__"]
    return sorted(name for name in packages + modules if not name.startswith("_"))


def family_modules(family: str) -> list[str]:
    """The public modules of a family package, in the order its docstring's table lists them."""
    package = _TERMS / family
    present = sorted(path.stem for path in package.glob("*.py") if not path.stem.startswith("_"))
    doc = (package / "__init__.py").read_text(encoding="utf-8")
    listed = re.findall(rf":mod:`~?rlobj\.terms\.{family}\.(\w+)`", doc)
    ordered = [name for name in dict.fromkeys(listed) if name in present]
    return ordered + [name for name in present if name not in ordered]


def _title(family: str) -> str:
    return TITLES.get(family, family.replace("_", " ").capitalize())


def family_page(family: str) -> str:
    """The generated Markdown of ``api/<family>.md``."""
    if not (_TERMS / family).is_dir():
        return (f"# {_title(family)}\n\n*This page is generated for the module `rlobj/terms/{family}.py`.*\n\n"
                f"::: rlobj.terms.{family}\n")
    sections = "".join(f"::: rlobj.terms.{family}.{module}\n\n" for module in family_modules(family))
    return (f"# {_title(family)}\n\n*This page is generated for the package `rlobj/terms/{family}/`.*\n\n"
            f"::: rlobj.terms.{family}\n    options:\n      members: false\n      show_root_heading: false\n\n"
            f"{sections}")


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
        files.append(File.generated(config, f"api/{family}.md", content=family_page(family)))
    for name in _missing_examples(config):
        files.append(File.generated(config, f"examples/{name}.md", content=_example_page(name)))
    return files
