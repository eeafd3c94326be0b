"""Email through Amazon SES: one SendEmail (SES v1) with a text and an HTML part.

Each send takes a slot of the account's shared sending budget first, and is sent again in a
later slot when SES refuses it for rate (a refused mail was not sent). Other failures are
raised as botocore raised them, not as `SesError`: whether a failed send may have gone out
depends on exactly which exception it was (`adapters.ses_outcome.verdict`).
"""

from __future__ import annotations

import uuid

from types_aiobotocore_ses.type_defs import MessageTagTypeDef

from domainflow.kit.aws import SesAdapter
from domainflow.kit.ses_budget import Quota

CHARSET = "UTF-8"


class SesMailer(SesAdapter):
    """Sends mail from a verified SES identity; an async context manager keeps clients open."""

    async def send(
        self,
        sender: str,
        to: list[str] | str,
        subject: str,
        text: str,
        html: str,
        region: str,
        *,
        transition_id: uuid.UUID | None = None,
    ) -> str:
        """Send one mail to `to`; SES's MessageId.

        `transition_id` travels as a message tag, so SES's sending events (bounces,
        deliveries) name the transition a mail was about.
        """
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            raise ValueError("an email needs at least one recipient")
        tags: list[MessageTagTypeDef] = []
        if transition_id is not None:
            tags.append({"Name": "transition_id", "Value": str(transition_id)})
        async with self._clients.ses(region) as ses:
            answer = await self._budget.call(
                region,
                lambda: ses.send_email(
                    Source=sender,
                    Destination={"ToAddresses": recipients},
                    Message={
                        "Subject": {"Data": subject, "Charset": CHARSET},
                        "Body": {
                            "Text": {"Data": text, "Charset": CHARSET},
                            "Html": {"Data": html, "Charset": CHARSET},
                        },
                    },
                    Tags=tags,
                ),
                quota=Quota.SEND,
            )
        return answer["MessageId"]
