"""Claims: every state of the holder × every answer of the DNS × mailboxes, against the rule."""

from __future__ import annotations

import pytest

from domainflow.api.domain.claims import MOVES, ClaimVerdict, Holder, claim_verdict, explain
from domainflow.api.domain.state import DomainState
from domainflow.contracts import CheckOutcome, DomainStatus

S = DomainStatus
C = CheckOutcome
V = ClaimVerdict


def expected(
    status: DomainStatus | None, proven: bool, holder_txt: C, claimant_txt: C, mailboxes: int
) -> ClaimVerdict:
    """The issue's rule, written out case by case."""
    if claimant_txt is C.INCONCLUSIVE:
        return V.INCONCLUSIVE  # nothing is known of the claimant's proof
    if claimant_txt is C.FAIL:
        return V.TXT_MISSING  # refused with the expected record
    if status in (None, S.DELETED):
        return V.GRANTED  # nobody holds it any more
    if status in (S.PROVISIONING, S.DELETING):
        return V.HOLDER_BUSY
    holder_keeps = proven and holder_txt is C.PASS
    if holder_keeps:
        return V.HOLDER_PROVEN
    if proven and holder_txt is C.INCONCLUSIVE:
        return V.INCONCLUSIVE  # whether the holder's proof still stands is unknown
    return V.WAITS_FOR_MAILBOXES if mailboxes else V.GRANTED


@pytest.mark.parametrize("status", [None, *S], ids=str)
@pytest.mark.parametrize("proven", [False, True], ids=["unproven", "proven"])
@pytest.mark.parametrize("holder_txt", list(C), ids=lambda c: f"holder_{c}")
@pytest.mark.parametrize("claimant_txt", list(C), ids=lambda c: f"claimant_{c}")
@pytest.mark.parametrize("mailboxes", [0, 2], ids=["no_mailboxes", "mailboxes"])
def test_every_holder_state_and_dns_answer_comes_to_the_verdict_the_rule_says(
    status: DomainStatus | None, proven: bool, holder_txt: C, claimant_txt: C, mailboxes: int
) -> None:
    holder = None if status is None else Holder(DomainState(status), proven, mailboxes)
    verdict = claim_verdict(holder, claimant_txt=claimant_txt, holder_txt=holder_txt)
    assert verdict is expected(status, proven, holder_txt, claimant_txt, mailboxes)


@pytest.mark.parametrize("status", [S.PENDING, S.VERIFIED, S.FAILED])
def test_a_squatter_that_never_proved_the_name_loses_it_even_with_its_txt_up(
    status: DomainStatus,
) -> None:
    # "A has not verified ... and B's TXT is present: the name moves to B."
    squatter = Holder(DomainState(status), proven=False)
    assert claim_verdict(squatter, claimant_txt=C.PASS, holder_txt=C.PASS) is V.GRANTED


def test_a_proven_holder_whose_txt_is_gone_loses_the_name() -> None:
    holder = Holder(DomainState(S.VERIFIED), proven=True)
    assert claim_verdict(holder, claimant_txt=C.PASS, holder_txt=C.FAIL) is V.GRANTED
    assert claim_verdict(holder, claimant_txt=C.PASS, holder_txt=C.PASS) is V.HOLDER_PROVEN


def test_only_the_moving_verdicts_move_the_name() -> None:
    assert {V.GRANTED, V.WAITS_FOR_MAILBOXES} == MOVES


@pytest.mark.parametrize("verdict", list(V))
def test_every_verdict_is_explained_without_naming_the_holder(verdict: ClaimVerdict) -> None:
    sentence = explain(verdict, "acme.com", active_mailboxes=2)
    assert sentence
    assert "team_" not in sentence
