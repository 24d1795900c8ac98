"""`value_class`: read-only where it is enforced (the type checker), a plain slotted
dataclass at run time (hashed and compared by its fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path

from mypy import api

from gateway.value_class import value_class

REPO = Path(__file__).resolve().parents[2]


@value_class
class Point:
    x: int
    label: str = field(default="p", compare=False)


def test_at_run_time_a_value_is_a_slotted_dataclass_hashed_by_its_fields() -> None:
    a, b = Point(1), Point(1, label="other")
    assert not hasattr(a, "__dict__")
    assert a == b and hash(a) == hash(b) and {a, b} == {a}
    assert dataclasses.is_dataclass(a) and dataclasses.replace(a, x=2) == Point(2)


SNIPPET = """
from dataclasses import field
from gateway.value_class import value_class

@value_class
class Point:
    x: int
    tags: list[str] = field(default_factory=list)

p = Point(1)
p.x = 2
Point(1, ["a"], 3)
"""


def test_the_type_checker_refuses_an_assignment_to_a_field(tmp_path: Path) -> None:
    """What the `frozen=True` of a dataclass did at run time, mypy does before it: the test
    run type-checks the gateway, so no code that assigns to a value's field lands."""
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    out, _, status = api.run(
        [str(snippet), "--no-incremental", "--follow-imports=silent", "--python-version=3.11"]
    )
    assert status == 1, out
    assert 'snippet.py:11: error: Property "x" defined in "Point" is read-only' in out
    assert "snippet.py:12: error: Too many arguments" in out
    assert out.count("error:") == 2, out
