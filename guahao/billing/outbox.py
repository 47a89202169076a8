"""Refunds leave after the commit: a refund's provider call never runs inside the transaction that records it.

Called inside, a provider that refunded for a transaction that then rolled back (a later statement failed,
the commit itself failed) would have paid out money the ledger never recorded, and the retry could not
know: its refund number went with the rollback, and a new number is a second refund. So the transaction
records the refund as `requested`, with its number, and commits; then each refund it recorded is sent
in a unit of work of its own (`service.send_refund`), under that number, which the provider honours once
(idempotent per out_refund_no). A refund that was never sent — the process stopped in between — stays
`requested`, and `service.retry_refunds` sends it once it is older than `service.UNSENT_AFTER`.
"""

import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("guahao.billing")
_TO_SEND = "guahao_refunds_to_send"


def send_after_commit(s: Session, refund_id: int, provider, now) -> None:
    """Send refund `refund_id` once `s`'s transaction has committed (nothing, if it rolls back)."""
    s.info.setdefault(_TO_SEND, []).append((refund_id, provider, now))


@event.listens_for(Session, "after_commit")
def _send(s: Session) -> None:
    todo = s.info.pop(_TO_SEND, None)
    if not todo:
        return
    from guahao.billing.service import send_refund

    engine = s.get_bind()
    for refund_id, provider, now in todo:
        try:
            with Session(engine) as unit, unit.begin():
                send_refund(unit, now, provider, refund_id)
        except Exception:  # the caller's transaction has committed: its answer stands, the retry sends it
            log.exception("refund %s: not sent after its commit; the retry job will send it", refund_id)


@event.listens_for(Session, "after_rollback")
def _forget(s: Session) -> None:
    s.info.pop(_TO_SEND, None)
