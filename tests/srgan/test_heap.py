"""glibc heap retention: large blocks come from the heap while it is on, nested uses included,
and a scene is super-resolved with it on (and it is off again afterwards)."""

import platform

import pytest
from heap_probe import large_block_is_mapped

from srgan.heap import retained_heap, set_malloc_retention

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def test_large_blocks_come_from_the_heap_only_while_retained():
    assert large_block_is_mapped()
    with retained_heap():
        assert not large_block_is_mapped()
    assert large_block_is_mapped()


def test_retention_lasts_until_its_last_user_ends():
    set_malloc_retention(True)  # e.g. a fit
    try:
        with retained_heap():  # a scene inside it
            assert not large_block_is_mapped()
        assert not large_block_is_mapped()
    finally:
        set_malloc_retention(False)
    assert large_block_is_mapped()


def test_ending_more_often_than_started_does_not_disturb_a_later_use():
    set_malloc_retention(False)
    with retained_heap():
        assert not large_block_is_mapped()
    assert large_block_is_mapped()
