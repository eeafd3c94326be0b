"""`domainflow dead-letters list|show|replay`: what the consumers gave up on, and retrying it."""

from __future__ import annotations

import json
import sys

from domainflow.kit import dead_letters
from domainflow.kit.settings import ServiceSettings


async def main(action: str, queue: str | None, limit: int | None) -> int:
    amqp_url = ServiceSettings().broker.urls
    try:
        if action == "list":
            for entry in await dead_letters.parked(amqp_url):
                count = "not declared" if entry.parked is None else str(entry.parked)
                print(f"{entry.dead_letter_queue:<52} {count}")
            return 0
        if queue is None:
            print(f"error: `dead-letters {action}` needs a queue name", file=sys.stderr)
            return 2
        if action == "show":
            for message in await dead_letters.show(amqp_url, queue, limit=limit or 20):
                print(json.dumps(message.as_dict(), default=str))
            return 0
        moved = await dead_letters.replay(amqp_url, queue, limit=limit)
        print(f"replayed {moved} message(s) onto {dead_letters.work_queue(queue)}")
        return 0
    except dead_letters.UnknownQueueError as unknown:
        print(f"error: {unknown.args[0]}", file=sys.stderr)
        return 2
