"""Side effects of a workflow: publishing completion records and dead letters."""

from __future__ import annotations

from tombstone_common.kafka import AsyncProducer
from tombstone_common.messages import Headers
from tombstone_common.messages import ProcessedRecord
from tombstone_common.settings import TopicSettings


class Publisher:
    def __init__(self, producer: AsyncProducer, topics: TopicSettings) -> None:
        self._producer = producer
        self.topics = topics

    async def processed(self, record: ProcessedRecord, headers: Headers = ()) -> None:
        await self._producer.send(
            self.topics.topic_processed, record.to_value(), key=record.id, headers=headers
        )

    async def dead_letter(self, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        await self._producer.send(self.topics.topic_dlq, value, key=key, headers=headers)
