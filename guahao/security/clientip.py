"""The client's address, for rate limits and the audit log.

X-Forwarded-For is trusted only when the direct peer is a configured proxy (GUAHAO_TRUSTED_PROXIES);
otherwise anyone could rotate a fake header to dodge per-address limits.
"""

from functools import lru_cache
from ipaddress import ip_address, ip_network


def _in(addr: str, nets) -> bool:
    try:
        a = ip_address(addr.strip())
    except ValueError:
        return False
    return any(a in n for n in nets)


@lru_cache(maxsize=16)
def networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ip_network(n, strict=False) for n in cidrs)


def client_address(request) -> str | None:
    client = request.scope.get("client")  # (host, port); Request.client builds an Address per call
    peer = client[0] if client else None
    nets = networks(tuple(request.app.state.settings.trusted_proxies))
    if not peer or not nets or not _in(peer, nets):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    # Walk back from the nearest hop: the first address that is not one of our proxies is the client.
    for hop in reversed(hops):
        if not _in(hop, nets):
            return hop[:64]
    return peer
