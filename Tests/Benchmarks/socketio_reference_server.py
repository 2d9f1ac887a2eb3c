"""The comparison server of `make bench-socket`: a stock python-socketio AsyncServer on aiohttp
that puts every client in one room and, on `POST /broadcast?n=N`, emits N `bench` events to it;
the same broadcast the gateway does for socket-load. Usage: socketio_reference_server.py PORT."""

import sys

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
app = web.Application()
sio.attach(app)


@sio.event
async def connect(sid, environ, auth):
    await sio.enter_room(sid, "all")


async def broadcast(request: web.Request) -> web.Response:
    for index in range(int(request.query.get("n", "20"))):
        await sio.emit("bench", {"n": index}, room="all")
    return web.Response(text="ok")


app.router.add_post("/broadcast", broadcast)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
