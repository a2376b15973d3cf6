"""CodeSet: code objects by identity, never by equality."""

from __future__ import annotations

import gc
import weakref

from pyrospan_launch.agent.spans.code_set import CodeSet


def test_an_equal_code_compiled_apart_is_not_in_the_set() -> None:
    first = compile("x = 1", "same.py", "exec")
    twin = compile("x = 1", "same.py", "exec")
    assert first == twin and first is not twin
    codes = CodeSet()
    codes.add(first)
    codes.add(first)
    assert first in codes and id(first) in codes.ids
    assert twin not in codes and id(twin) not in codes.ids
    assert len(codes) == 1


def test_a_code_added_stays_alive_so_its_id_stays_its_own() -> None:
    codes = CodeSet()
    code = compile("y = 2", "gone.py", "exec")
    alive = weakref.ref(code)
    codes.add(code)
    del code
    gc.collect()
    assert alive() is not None and id(alive()) in codes.ids
