"""The api's subscriptions: answers from the provisioner and verifier, handled by `ApiHandlers`.

Which events the api consumes is the subscription table's (`contracts/topology.py`); this
module only says which handler takes each.
"""

from faststream.rabbit import RabbitQueue, RabbitRouter

from domainflow.api.handlers import CONSUMER, ApiHandlers
from domainflow.api.settings import ApiSettings
from domainflow.api.unit_of_work import UnitOfWork
from domainflow.contracts import (
    ClaimChecked,
    DomainDeprovisioned,
    DomainProvisioned,
    ProvisioningRolledBack,
    SagaNeedsOperator,
    VerificationCompleted,
)
from domainflow.kit.messaging import Redelivery, subscribe_all


def build_router(uow: UnitOfWork, settings: ApiSettings) -> tuple[RabbitRouter, list[RabbitQueue]]:
    handlers = ApiHandlers(uow, settings)
    router = RabbitRouter()
    queues = subscribe_all(
        router,
        CONSUMER,
        {
            DomainProvisioned.TYPE: handlers.on_provisioned,
            ProvisioningRolledBack.TYPE: handlers.on_rolled_back,
            SagaNeedsOperator.TYPE: handlers.on_needs_operator,
            VerificationCompleted.TYPE: handlers.on_verification_completed,
            ClaimChecked.TYPE: handlers.on_claim_checked,
            DomainDeprovisioned.TYPE: handlers.on_deprovisioned,
        },
        redelivery=Redelivery.of(settings),
    )
    return router, queues
