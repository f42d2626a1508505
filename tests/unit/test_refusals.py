"""A workflow whose steps the server refuses is given up on after a bounded number of refusals."""

from __future__ import annotations

from resonate.error import ServerError

from tests.unit.fakes import RecordingPublisher, giving_up_via
from tests.unit.test_workflow import job
from tombstone_common.messages import DeadLetterHeader
from tombstone_processor.refusals import StepRefusals, StepRefused


class RecordingPromises:
    def __init__(self):
        self.rejected = []

    async def reject(self, promise_id, value):
        self.rejected.append((promise_id, value.data))


async def test_the_third_refusal_dead_letters_the_tombstone_and_rejects_its_workflow():
    publisher, promises = RecordingPublisher(), RecordingPromises()
    refusals = StepRefusals(3, giving_up_via(publisher))
    refusals.bind(promises)
    refused = ServerError(400, "Promise ID must be prefixed by resonate:origin")
    for _ in range(2):
        await refusals.refused(job("r"), refused)
    assert publisher.dead_letters == [] and promises.rejected == []
    await refusals.refused(job("r"), refused)

    ((key, _, headers),) = publisher.dead_letters
    assert key == b"r" and headers[DeadLetterHeader.ATTEMPTS] == b"3"
    assert b"refused a workflow step 3 times" in headers[DeadLetterHeader.REASON]
    ((promise_id, rejection),) = promises.rejected
    assert promise_id == "r" and isinstance(rejection, StepRefused)


async def test_transient_failures_are_not_refusals():
    publisher, promises = RecordingPublisher(), RecordingPromises()
    refusals = StepRefusals(1, giving_up_via(publisher))
    refusals.bind(promises)
    for error in (ServerError(503, "unavailable"), ServerError(429, "slow down"), TimeoutError()):
        await refusals.refused(job("t"), error)
    assert publisher.dead_letters == [] and promises.rejected == []


async def test_the_rejected_promise_is_the_workflows_own_id():
    """A dotted tombstone id in its second replay: the workflow's promise is ``a~db~g2``."""
    import dataclasses

    publisher, promises = RecordingPublisher(), RecordingPromises()
    refusals = StepRefusals(1, giving_up_via(publisher))
    refusals.bind(promises)
    await refusals.refused(dataclasses.replace(job("a.b"), generation=2), ServerError(400, "no"))
    ((promise_id, _),) = promises.rejected
    assert promise_id == "a~db~g2"
    ((_, _, headers),) = publisher.dead_letters
    assert headers[DeadLetterHeader.GENERATION] == b"2"
