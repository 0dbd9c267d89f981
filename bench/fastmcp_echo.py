#!/usr/bin/env python3
"""The tutorial's MCP server, as the benchmark's row (A): FastMCP (PyPI ``fastmcp``, pinned in
bench/requirements.txt) checking tokens in the application, with ``RemoteAuthProvider`` around a
``JWTVerifier`` that fetches the same JWKS and expects the same issuer and audience as the filter.

Written here from FastMCP's documentation: the tutorial's ``echo`` tool, served over Streamable
HTTP at ``/mcp`` with FastMCP's defaults (sessions, SSE responses), the way the tutorial runs it.

    python bench/fastmcp_echo.py --port 18000 --jwks-uri http://127.0.0.1:18003/certs \\
        --issuer http://localhost:8080/realms/my-realm --audience echo-mcp-server
"""
from __future__ import annotations

import argparse
from typing import Annotated

from fastmcp import FastMCP
from fastmcp.server.auth import RemoteAuthProvider
from fastmcp.server.auth.providers.jwt import JWTVerifier
from pydantic import Field


def build(base_url: str, jwks_uri: str, issuer: str, audience: str) -> FastMCP:
    verifier = JWTVerifier(jwks_uri=jwks_uri, issuer=issuer, audience=audience, algorithm="RS256")
    auth = RemoteAuthProvider(token_verifier=verifier, authorization_servers=[issuer],
                              base_url=base_url, resource_name="MCP Echo Server")
    mcp = FastMCP("MCP Echo Server", auth=auth)

    @mcp.tool
    def echo(
        message: Annotated[str, Field(description="Message to echo")],
        repeat_count: Annotated[int, Field(ge=1, le=10, description="Number of times to repeat the message")] = 3,
    ) -> str:
        """Echo a message a specified number of times."""
        return message * repeat_count

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jwks-uri", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--log-level", default="info", help="uvicorn's log level (info: one line per request)")
    args = parser.parse_args()
    base_url = f"http://127.0.0.1:{args.port}"
    mcp = build(base_url, args.jwks_uri, args.issuer, args.audience)
    mcp.run(transport="http", host="127.0.0.1", port=args.port, path="/mcp", log_level=args.log_level,
            show_banner=False)


if __name__ == "__main__":
    main()
