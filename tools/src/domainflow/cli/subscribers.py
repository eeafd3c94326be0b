"""`domainflow subscribers add <name>`: a platform team's read-only RabbitMQ login and queue."""

from __future__ import annotations

import json
import sys

from domainflow.kit.policies import PolicyRefusedError
from domainflow.kit.settings import ServiceSettings
from domainflow.kit.subscribers import SubscriberNameError, add_subscriber


async def add(name: str, max_length: int) -> int:
    settings = ServiceSettings()
    try:
        subscriber = await add_subscriber(
            settings.broker.amqp_url,
            name,
            management_url=settings.broker.management_url,
            max_length=max_length,
        )
    except SubscriberNameError as bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    except PolicyRefusedError as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    # The password is shown once, here; RabbitMQ keeps only its hash.
    print(
        json.dumps(
            {
                "user": subscriber.user,
                "password": subscriber.password,
                "queue": subscriber.queue,
            },
            indent=2,
        )
    )
    return 0
