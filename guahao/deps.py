"""FastAPI dependencies as Annotated aliases: database, clock, current account.

Writes open their transaction in the route (`with db.transaction() as s`) so the commit happens
before the answer is sent; reads may use the ReadSession dependency.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from guahao.accounts.security import read_token
from guahao.clock import Clock
from guahao.db import Database
from guahao.errors import DomainError
from guahao.staff.service import Staff, from_claims

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


# CPU-only dependencies are `async def`: FastAPI runs a sync dependency in the thread pool, and that hop
# costs more than the work (measured: bench/asgi_cost.py).
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


async def get_now(request: Request) -> datetime:
    return request.app.state.clock.now()


def read_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.reading() as s:
        yield s


def account_id_of(request: Request, token: str | None) -> int:
    if not token:
        raise DomainError("UNAUTHORIZED")
    claims = read_token(token, "account", request.app.state.clock.now())
    return int(claims["sub"])


async def current_account_id(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> int:
    return account_id_of(request, token)


DB = Annotated[Database, Depends(get_db)]
Now = Annotated[datetime, Depends(get_now)]
ReadSession = Annotated[Session, Depends(read_session)]
AccountId = Annotated[int, Depends(current_account_id)]


def staff_of_token(request: Request, token: str | None) -> Staff:
    token = token or request.cookies.get("staff_token")
    if not token:
        raise DomainError("UNAUTHORIZED")
    return from_claims(read_token(token, "staff", request.app.state.clock.now()))


async def current_staff(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Staff:
    return staff_of_token(request, token)


async def client_ip(request: Request) -> str | None:
    from guahao.security.clientip import client_address

    return client_address(request)


CurrentStaff = Annotated[Staff, Depends(current_staff)]
ClientIp = Annotated[str | None, Depends(client_ip)]
