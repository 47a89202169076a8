"""Cookie login for server-rendered pages: `access_token` holds the same bearer JWT as the patient API.

The staff side needs nothing here: deps.current_staff already reads the `staff_token` cookie.
"""

from typing import Annotated

from fastapi import Depends, Request

from guahao.accounts.security import read_token
from guahao.errors import DomainError


def account_from_cookie(request: Request) -> int | None:
    """The logged-in account, or None (pages then send the visitor to log in)."""
    token = request.cookies.get("access_token")
    if not token:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
    if not token:
        return None
    try:
        return int(read_token(token, "account", request.app.state.clock.now())["sub"])
    except DomainError:
        return None


async def current_account_from_cookie(request: Request) -> int | None:
    return account_from_cookie(request)  # a dependency: async, so no thread-pool hop


PageAccount = Annotated[int | None, Depends(current_account_from_cookie)]


def login_redirect(request: Request):
    from fastapi.responses import RedirectResponse

    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
