"""QLDB's id shape from journal/ids.py: 22 Base62 characters; the ledger's ids grow with time."""

from __future__ import annotations

import re
import time

from ledgerdr.journal.ids import new_id, time_ordered_id

ID_SHAPE = re.compile(r"^[0-9A-Za-z]{22}$")


def test_both_kinds_have_qldbs_shape_and_do_not_repeat():
    ids = [new_id() for _ in range(2000)] + [time_ordered_id() for _ in range(2000)]
    assert all(ID_SHAPE.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_time_ordered_ids_sort_by_the_millisecond_they_were_drawn():
    earlier = time_ordered_id()
    time.sleep(0.002)
    later = time_ordered_id()
    assert earlier[:8] < later[:8]
    assert sorted([later, earlier]) == [earlier, later]
