"""The provisioner's subscribers: domain requested and deletion requested, each to its runner."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DeletionRequested, DomainRequested
from domainflow.kit.messaging import Redelivery, subscribe
from domainflow.provisioner.handlers import CONSUMER, SagaRunner
from domainflow.provisioner.settings import ProvisionerSettings


def build_router(
    runner: SagaRunner, settings: ProvisionerSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    queues = [
        subscribe(
            router,
            CONSUMER,
            DomainRequested,
            runner.on_domain_requested,
            redelivery=Redelivery.of(settings),
        ),
        subscribe(
            router,
            CONSUMER,
            DeletionRequested,
            runner.on_deletion_requested,
            redelivery=Redelivery.of(settings),
        ),
    ]
    return router, queues
