"""reset_after_fork: in a forked child, every registered owner resets what
belonged to the parent's threads, even when another owner fails to; and
registering keeps nothing alive. What each owner resets is tested with the
owner (``integration/test_fork.py``)."""

from __future__ import annotations

import gc
import weakref

from regionproxy._forks import reset_after_fork
from tests.support import in_child


class Owner:
    def __init__(self, fails=False):
        self.fails = fails
        self.reset = 0

    def _after_fork(self):
        self.reset += 1
        if self.fails:
            raise RuntimeError("this owner cannot reset")


def test_every_owner_is_reset_in_a_child_and_only_there():
    owners = [Owner() for _ in range(3)]
    for owner in owners:
        reset_after_fork(owner)

    def check():
        assert [owner.reset for owner in owners] == [1, 1, 1]

    in_child(check)
    assert [owner.reset for owner in owners] == [0, 0, 0]  # the parent is not reset


def test_an_owner_that_fails_to_reset_leaves_the_others_reset():
    owners = [Owner(), Owner(fails=True), Owner(), Owner(fails=True), Owner()]
    for owner in owners:
        reset_after_fork(owner)

    def check():
        assert [owner.reset for owner in owners] == [1] * len(owners)

    in_child(check)


def test_registering_keeps_no_owner_alive():
    owner = Owner()
    reset_after_fork(owner)
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None
