"""MkDocs hook: an API page for every term family, also for families added after the docs.

Each module ``rlobj/terms/<family>.py`` (not starting with ``_``) gets ``api/<family>.md``. A
hand-written page of that name wins; otherwise the hook generates one holding
``::: rlobj.terms.<family>`` and adds it to the "API reference" section of the nav, so a new
family of terms appears on the site without editing ``docs/`` or ``mkdocs.yml``.
"""

from pathlib import Path

from mkdocs.structure.files import File

_ROOT = Path(__file__).resolve().parents[2]


def _families() -> list[str]:
    return sorted(path.stem for path in (_ROOT / "rlobj" / "terms").glob("*.py")
                  if not path.stem.startswith("_"))


def _title(family: str) -> str:
    return family.replace("_", " ").capitalize()


def _missing(config) -> list[str]:
    docs = Path(config["docs_dir"])
    return [family for family in _families() if not (docs / "api" / f"{family}.md").exists()]


def on_config(config):
    missing = _missing(config)
    if not missing:
        return config
    for section in config["nav"] or []:
        if isinstance(section, dict) and "API reference" in section:
            pages = section["API reference"]
            listed = {next(iter(p.values())) if isinstance(p, dict) else p for p in pages}
            for family in missing:
                if f"api/{family}.md" not in listed:
                    pages.append({_title(family): f"api/{family}.md"})
    return config


def on_files(files, config):
    for family in _missing(config):
        content = (f"# {_title(family)}\n\n"
                   f"*This page is generated for the module `rlobj/terms/{family}.py`.*\n\n"
                   f"::: rlobj.terms.{family}\n")
        files.append(File.generated(config, f"api/{family}.md", content=content))
    return files
