"""The documentation site: strict build, an API entry for every public name, a paper-index row
for every seed paper, a page for every example script."""

import importlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import rlobj

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SEEDS = REPO / "docs" / "_tools" / "seed_titles.md"
SHARED_SEEDS = REPO.parent / "shared" / "seeds" / "papers.md"


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)


def _ids(html_file: Path) -> set[str]:
    parser = _Ids()
    parser.feed(html_file.read_text(encoding="utf-8"))
    return parser.ids


def _resolve(dotted: str):
    """The object a mkdocstrings anchor such as ``rlobj.terms.advantages.baselines.group_zscore`` names."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, None)
            if obj is None:
                return None
        return obj
    return None


def test_mkdocs_build_strict_passes(site_build):
    assert site_build.returncode == 0, f"mkdocs build --strict failed:\n{site_build.output}"
    assert (site_build.site / "index.html").is_file()


def test_every_public_name_has_an_api_entry(built_site):
    documented = {}  # id(object) -> anchor
    for page in sorted((built_site / "api").rglob("index.html")):
        for anchor in _ids(page):
            if anchor.startswith("rlobj."):
                obj = _resolve(anchor)
                if obj is not None:
                    documented.setdefault(id(obj), f"{page.parent.name}#{anchor}")
    missing = [name for name in rlobj.__all__ if id(getattr(rlobj, name)) not in documented]
    hints = {name: getattr(getattr(rlobj, name), "__module__", "?") for name in missing}
    assert not missing, (
        f"{len(missing)} public names of rlobj.__all__ have no API entry in the built site: {hints}. "
        "Add a '::: <module>' directive for their module to a page under docs/api/ (and to the nav "
        "in mkdocs.yml), and give them a docstring.")


def _seed_titles(path=SEEDS) -> list[str]:
    return [line[3:].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if re.match(r"^## \d+\. ", line)]


def test_vendored_seed_titles_match_the_shared_seed_list():
    """docs/_tools/seed_titles.md is a copy of the titles of ../shared/seeds/papers.md."""
    assert len(_seed_titles()) == 70
    if not SHARED_SEEDS.exists():
        pytest.skip(f"{SHARED_SEEDS} is not beside this checkout; the vendored list is used alone")
    assert _seed_titles() == _seed_titles(SHARED_SEEDS)


def _index_rows() -> dict[int, str]:
    """Numbered rows of the paper index table: ``| 12 | title | status | ...``."""
    rows = {}
    for line in (DOCS / "papers.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|", line)
        if match:
            rows[int(match.group(1))] = match.group(2)
    return rows


def _plain(title: str) -> str:
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # markdown links -> text
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()


def test_every_seed_paper_has_a_paper_index_row():
    rows = _index_rows()
    if SEEDS.exists():
        titles = _seed_titles()
        assert len(titles) == 70, f"expected 70 seed papers in {SEEDS}, parsed {len(titles)}"
        expected = {int(t.split(".", 1)[0]): t.split(". ", 1)[1] for t in titles}
    else:  # a checkout without the seeds folder: the index itself must still be whole
        expected = {number: rows.get(number, "") for number in range(1, 71)}
    missing = [f"{n}. {title}" for n, title in expected.items() if n not in rows]
    assert not missing, f"seed papers without a row in docs/papers.md: {missing}"
    wrong = [(n, title, rows[n]) for n, title in expected.items()
             if _plain(title) not in _plain(rows[n])]
    assert not wrong, f"paper-index rows whose title does not match the seed paper: {wrong}"
    statuses = re.findall(r"^\|\s*\d+\s*\|[^|]*\|\s*([^|]+?)\s*\|", (DOCS / "papers.md").read_text(),
                          flags=re.M)
    assert len(statuses) >= 70 and all(statuses), "every paper-index row needs a status"


def test_paper_index_only_claims_existing_names():
    """A row marked implemented may only name terms that exist in ``rlobj.__all__``."""
    text = (DOCS / "papers.md").read_text(encoding="utf-8")
    unknown = []
    for line in text.splitlines():
        match = re.match(r"^\|\s*(\d+)\s*\|[^|]*\|\s*\*\*implemented\*\*([^|]*)\|", line)
        if not match:
            continue
        for name in re.findall(r"`([a-z_][a-z0-9_]*)`", match.group(2)):
            if name not in rlobj.__all__:
                unknown.append((int(match.group(1)), name))
    assert not unknown, f"paper-index rows marked implemented name terms not in rlobj.__all__: {unknown}"


def _example_scripts() -> list[Path]:
    return sorted(path for path in (REPO / "examples").glob("*.py") if not path.name.startswith("_"))


def test_every_example_script_has_a_page_with_its_output(built_site):
    """A page per script (hand-written in docs/examples/ or generated by docs/_hooks/api_pages.py)
    that shows the script and the output captured from a real run."""
    problems = []
    for script in _example_scripts():
        page = built_site / "examples" / script.stem / "index.html"
        output = DOCS / "examples" / "outputs" / f"{script.stem}.txt"
        if not page.is_file():
            problems.append(f"{script.name}: no page examples/{script.stem}/ in the built site")
            continue
        html = page.read_text(encoding="utf-8")
        first_code_line = next((line for line in script.read_text().splitlines()
                                if line.strip().startswith(("import ", "from "))), "")
        if first_code_line and first_code_line.split()[1] not in html:
            problems.append(f"{script.name}: its page does not show the script")
        if not output.is_file() or not output.read_text().strip():
            problems.append(f"{script.name}: no captured output {output.relative_to(REPO)} "
                            f"(run: .venv/bin/python docs/_tools/capture_examples.py {script.stem})")
    assert not problems, "\n".join(problems)


def test_paper_index_is_up_to_date():
    """docs/papers.md equals what docs/_tools/paper_index.py writes for the current rlobj (rows
    move to implemented when their terms are exported)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("paper_index", DOCS / "_tools" / "paper_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text, _ = module.render(SEEDS)
    assert text == (DOCS / "papers.md").read_text(encoding="utf-8"), (
        "docs/papers.md is stale: run `.venv/bin/python docs/_tools/paper_index.py` and commit it")
