"""The notifier's subscriptions (the table in `contracts/topology.py`): status changes."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DomainStatusChanged
from domainflow.kit.messaging import Redelivery, subscribe_all
from domainflow.notifier.handlers import CONSUMER, NotifierHandlers
from domainflow.notifier.settings import NotifierSettings


def build_router(
    handlers: NotifierHandlers, settings: NotifierSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    queues = subscribe_all(
        router,
        CONSUMER,
        {DomainStatusChanged.TYPE: handlers.on_status_changed},
        redelivery=Redelivery.of(settings),
    )
    return router, queues
