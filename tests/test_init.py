"""The curated top level: what it exports, what it no longer does, and that it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import deliverystate
from deliverystate import rules, stores, tracking


def test_the_top_level_exports_what_an_embedding_program_needs() -> None:
    """Every name of __all__ resolves, and the list stays short (h11 exports 23)."""
    assert len(deliverystate.__all__) <= 24
    for name in deliverystate.__all__:
        assert getattr(deliverystate, name) is not None
    assert deliverystate.Tracker is tracking.Tracker
    assert deliverystate.SQLiteStore is stores.SQLiteStore
    assert sorted(dir(deliverystate)) == sorted(
        [*deliverystate.__all__, *(n for n in vars(deliverystate) if n.startswith("__"))]
    )


def test_a_name_that_moved_still_resolves_with_a_warning_naming_its_home() -> None:
    """An import written for the old top level keeps working and says where to import from."""
    with pytest.warns(DeprecationWarning, match=r"import it from deliverystate\.rules"):
        moved = deliverystate.FAILURE_WINS  # type: ignore[attr-defined]
    assert moved is rules.FAILURE_WINS
    with pytest.warns(DeprecationWarning, match=r"deliverystate\.stores"):
        assert deliverystate.Summary is stores.Summary  # type: ignore[attr-defined]


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name that never existed is not papered over."""
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        deliverystate.Nonsense  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_loads_no_store_until_one_is_used() -> None:
    """``import deliverystate`` alone imports neither the stores nor SQLite."""
    code = (
        "import sys, deliverystate\n"
        "print(sorted(m for m in sys.modules if m == 'sqlite3' or '.stores' in m))\n"
        "deliverystate.Tracker\n"
        "print('deliverystate.stores' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
