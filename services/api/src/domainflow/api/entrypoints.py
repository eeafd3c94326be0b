"""The api's subscriptions: answers from the provisioner and verifier, handled by `ApiHandlers`."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.api.handlers import CONSUMER, ApiHandlers
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork
from domainflow.contracts import (
    DomainDeprovisioned,
    DomainProvisioned,
    ProvisioningRolledBack,
    VerificationCompleted,
)
from domainflow.kit.messaging import Redelivery, subscribe


def build_router(uow: UnitOfWork, settings: ApiSettings) -> tuple[RabbitRouter, list[RabbitQueue]]:
    handlers = ApiHandlers(uow, settings)
    router = RabbitRouter()
    redelivery = Redelivery.of(settings)
    queues = [
        subscribe(
            router, CONSUMER, DomainProvisioned, handlers.on_provisioned, redelivery=redelivery
        ),
        subscribe(
            router, CONSUMER, ProvisioningRolledBack, handlers.on_rolled_back, redelivery=redelivery
        ),
        subscribe(
            router,
            CONSUMER,
            VerificationCompleted,
            handlers.on_verification_completed,
            redelivery=redelivery,
        ),
        subscribe(
            router, CONSUMER, DomainDeprovisioned, handlers.on_deprovisioned, redelivery=redelivery
        ),
    ]
    return router, queues
