from typing import Annotated

from fastapi import Depends, Request

from guahao.billing.providers import PaymentProvider, SandboxProvider


def get_provider(request: Request) -> PaymentProvider:
    """app.state.payment_provider if set (tests inject faults there), else the sandbox keyed from settings."""
    p = getattr(request.app.state, "payment_provider", None)
    if p is None:
        p = SandboxProvider(request.app.state.settings.payment_sandbox_key)
        request.app.state.payment_provider = p
    return p


Provider = Annotated[PaymentProvider, Depends(get_provider)]
