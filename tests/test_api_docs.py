"""docs/python-api.md's examples run as doctests from the repository's root: the page shows what the API does."""

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_api_page_examples(monkeypatch):
    monkeypatch.chdir(ROOT)
    outcome = doctest.testfile(str(ROOT / "docs" / "python-api.md"), module_relative=False,
                               optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert outcome.attempted >= 20
    assert outcome.failed == 0, f"{outcome.failed} of the page's examples failed (doctest output above)"
