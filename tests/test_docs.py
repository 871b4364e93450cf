"""The documentation stays in step with the code: README's two commands and size, its links,
the API pages' modules, the architecture map's packages and a page per job. (`mkdocs build
--strict` in .ci/run checks the site itself: links, anchors, images, docstrings.)"""

import re
from pathlib import Path

from socseg_jax.jobs import JOBS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# What a visitor needs first; the rest lives in docs/ (issue #25).
MAX_README_BYTES = 10 * 1024
QUICKSTART = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e .\n"
    "python launch.py --config configs/quickstart.py --workdir /tmp/socseg_quickstart\n"
)
TESTS = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"\n'
    "python -m pytest\n"
)


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S)


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(README.read_bytes()) <= MAX_README_BYTES
    blocks = code_blocks(text)
    assert QUICKSTART in blocks and TESTS in blocks, "README's quickstart or test command changed"


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_api_pages_name_existing_modules():
    names = [m for page in sorted((DOCS / "api").glob("*.md"))
             for m in re.findall(r"^::: ([\w.]+)", page.read_text(), flags=re.M)]
    assert names
    assert not [n for n in names if module_file(n) is None], "API pages name missing modules"


def test_architecture_map_names_every_package():
    text = (DOCS / "architecture.md").read_text()
    packages = sorted(p.parent.relative_to(ROOT) for root in ("socseg_jax", "data_prep")
                      for p in (ROOT / root).rglob("__init__.py"))
    missing = [str(p) for p in packages if f"{p.name}/" not in text]
    assert not missing, f"docs/architecture.md omits {missing}"


def test_every_job_has_a_page():
    missing = [job for job in JOBS if not (DOCS / "jobs" / f"{job}.md").is_file()]
    assert not missing, f"no docs/jobs/<job>.md for {missing}"
