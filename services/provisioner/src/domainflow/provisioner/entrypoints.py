"""The provisioner's subscriptions (the table in `contracts/topology.py`), each to its runner."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.contracts import DeletionRequested, DomainRequested, ReceivingRequested
from domainflow.kit.messaging import Redelivery, subscribe_all
from domainflow.provisioner.handlers import CONSUMER, SagaRunner
from domainflow.provisioner.settings import ProvisionerSettings


def build_router(
    runner: SagaRunner, settings: ProvisionerSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    queues = subscribe_all(
        router,
        CONSUMER,
        {
            DomainRequested.TYPE: runner.on_domain_requested,
            ReceivingRequested.TYPE: runner.on_receiving_requested,
            DeletionRequested.TYPE: runner.on_deletion_requested,
        },
        redelivery=Redelivery.of(settings),
    )
    return router, queues
