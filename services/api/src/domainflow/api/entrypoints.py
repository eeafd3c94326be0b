"""The api's subscriptions: answers from the provisioner and verifier."""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.api.handlers import CONSUMER, ApiHandlers
from domainflow.api.settings import ApiSettings
from domainflow.contracts import (
    DomainDeprovisioned,
    DomainProvisioned,
    ProvisioningRolledBack,
    VerificationCompleted,
)
from domainflow.kit.messaging import subscribe


def build_router(
    handlers: ApiHandlers, settings: ApiSettings
) -> tuple[RabbitRouter, list[RabbitQueue]]:
    router = RabbitRouter()
    limit, backoff = settings.delivery_limit, settings.redelivery_backoff_max
    queues = [
        subscribe(
            router,
            CONSUMER,
            DomainProvisioned,
            handlers.on_provisioned,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
        subscribe(
            router,
            CONSUMER,
            ProvisioningRolledBack,
            handlers.on_rolled_back,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
        subscribe(
            router,
            CONSUMER,
            VerificationCompleted,
            handlers.on_verification_completed,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
        subscribe(
            router,
            CONSUMER,
            DomainDeprovisioned,
            handlers.on_deprovisioned,
            delivery_limit=limit,
            backoff_max=backoff,
        ),
    ]
    return router, queues
