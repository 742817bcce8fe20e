"""The events hub: "something was committed" wake-ups between the runtime's parts.

A part that commits work another part waits for publishes the topic after the
commit; the parts that act on it subscribe. A wake-up carries no data: the
woken part reads what is waiting from the store, so a wake-up that arrives
twice, or for work another pass already did, costs one empty look.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from enum import StrEnum


class Topic(StrEnum):
    DELIVERIES = "deliveries"  # stored deliveries wait for processing
    NOTICES = "notices"  # notices wait in the outbox
    DEADLINES = "deadlines"  # a hold, reminder or due time was set: the scheduler looks again
    STATE = "state"  # derived state changed: the summary may read differently


class Events:
    def __init__(self) -> None:
        self._subscribers: defaultdict[Topic, list[Callable[[], None]]] = defaultdict(list)

    def subscribe(self, topic: Topic, wake: Callable[[], None]) -> None:
        self._subscribers[topic].append(wake)

    def publish(self, topic: Topic) -> None:
        for wake in self._subscribers[topic]:
            wake()

    def publisher(self, topic: Topic) -> Callable[[], None]:
        """A callback that publishes ``topic``: what a part is handed to announce a commit."""
        return lambda: self.publish(topic)
