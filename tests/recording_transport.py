"""A transport that records what an HTTP protocol writes (tests of guahao/serving.py's protocol)."""

import asyncio


class Recorder(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def connect(app, http, server_state=None):
    """A connection of uvicorn's `http` protocol to `app`, writing into a Recorder (on the running loop):
    (protocol, its transport)."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, http=http, lifespan="off", access_log=False)
    config.load()
    proto = config.http_protocol_class(config=config, server_state=server_state or ServerState(), app_state={},
                                       _loop=asyncio.get_running_loop())
    transport = Recorder()
    proto.connection_made(transport)
    return proto, transport
