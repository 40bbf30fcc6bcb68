"""A bare MCP SDK server with one echo tool: the floor our server is compared with.

Run over stdio (the default) or streamable HTTP:

    python benchmarks/echo_server.py
    python benchmarks/echo_server.py --http --port-file PATH [--stateless]

Over HTTP it binds 127.0.0.1 on a free port and writes the port number to
PATH once it accepts connections.
"""

import argparse
import logging
import socket
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-echo", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


def _serve_http(port_file: Path, stateless: bool) -> None:
    import anyio
    import uvicorn

    app = server.streamable_http_app(stateless_http=stateless, host="127.0.0.1")
    # IPPROTO_TCP explicitly, so asyncio sets TCP_NODELAY on accepted connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=1024)
    http_server = uvicorn.Server(config)

    async def serve() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(http_server.serve, [sock])
            while not http_server.started:
                await anyio.sleep(0.01)
            port_file.write_text(str(sock.getsockname()[1]))

    anyio.run(serve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP")
    parser.add_argument(
        "--port-file", type=Path, help="file to write the HTTP port number to"
    )
    parser.add_argument(
        "--stateless", action="store_true", help="serve HTTP in stateless mode"
    )
    args = parser.parse_args()
    logging.getLogger("mcp").setLevel(logging.WARNING)
    if args.http:
        if args.port_file is None:
            parser.error("--http needs --port-file")
        _serve_http(args.port_file, args.stateless)
    else:
        server.run()


if __name__ == "__main__":
    main()
