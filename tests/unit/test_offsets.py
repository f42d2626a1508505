from tombstone_processor.offsets import PartitionOffsets


def test_commit_position_stops_at_the_lowest_open_offset():
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.begin(offset)
    offsets.settle(11)
    offsets.settle(12)
    assert offsets.committable() == 10
    offsets.settle(10)
    assert offsets.committable() == 13


def test_nothing_new_to_commit_returns_none():
    offsets = PartitionOffsets()
    assert offsets.committable() is None
    offsets.begin(0)
    offsets.settle(0)
    assert offsets.committable() == 1
    offsets.mark_committed(1)
    assert offsets.committable() is None


def test_out_of_order_settles_commit_only_the_contiguous_prefix():
    offsets = PartitionOffsets()
    for offset in range(5):
        offsets.begin(offset)
    for offset in (4, 2, 3):
        offsets.settle(offset)
    assert offsets.committable() == 0
    offsets.settle(0)
    assert offsets.committable() == 1
    offsets.settle(1)
    assert offsets.committable() == 5
