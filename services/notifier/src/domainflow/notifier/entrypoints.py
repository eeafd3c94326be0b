"""The notifier's one subscription: domain status changes."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DomainStatusChanged
from domainflow.kit.messaging import Redelivery, subscribe
from domainflow.notifier.handlers import CONSUMER, NotifierHandlers
from domainflow.notifier.settings import NotifierSettings


def build_router(
    handlers: NotifierHandlers, settings: NotifierSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    queue = subscribe(
        router,
        CONSUMER,
        DomainStatusChanged,
        handlers.on_status_changed,
        redelivery=Redelivery.of(settings),
    )
    return router, [queue]
