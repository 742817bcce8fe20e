"""The events hub: "something was committed" wake-ups between the runtime's parts.

A part that commits work another part waits for publishes the topic after the
commit; the parts that act on it subscribe. A wake-up carries no data: the
woken part reads what is waiting from the store, so a wake-up that arrives
twice, or for work another pass already did, costs one empty look.

With replicas, a ``relay`` carries each publication to the others too
(``store.replicas``: NOTIFY), and theirs come back through ``deliver``.
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
    REFUSED = "refused"  # a delivery was answered 5xx: GitHub will list it failed


class Events:
    def __init__(self) -> None:
        self._subscribers: defaultdict[Topic, list[Callable[[], None]]] = defaultdict(list)
        self.relay: Callable[[Topic], None] | None = None

    def subscribe(self, topic: Topic, wake: Callable[[], None]) -> None:
        self._subscribers[topic].append(wake)

    def publish(self, topic: Topic) -> None:
        self.deliver(topic)
        if self.relay is not None:
            self.relay(topic)

    def deliver(self, topic: Topic) -> None:
        """Wake this process's subscribers only (a publication from another replica)."""
        for wake in self._subscribers[topic]:
            wake()

    def publisher(self, topic: Topic) -> Callable[[], None]:
        """A callback that publishes ``topic``: what a part is handed to announce a commit."""
        return lambda: self.publish(topic)
