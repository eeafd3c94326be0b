"""The notifier's subscriptions (`contracts/topology.py`): the api's asks to mail owners."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import NotificationRequested
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
        {NotificationRequested.TYPE: handlers.on_notification_requested},
        redelivery=Redelivery.of(settings),
    )
    return router, queues
