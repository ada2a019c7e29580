"""A small raw XRPC client for PDS tests: exact statuses, headers and error names."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from atcore import nsids
from tests.pds.stack import Stack


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None

    def ok(self) -> Any:
        assert self.status == 200, (self.status, self.body)
        return self.body


class Xrpc:
    def __init__(self, http: aiohttp.ClientSession, stack: Stack) -> None:
        self.http = http
        self.stack = stack

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        url = self.stack.pds_url + path
        kwargs: dict[str, Any] = {"params": params, "headers": dict(headers or {})}
        if json_body is not None:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
        async with self.http.request(method, url, **kwargs) as response:
            raw = await response.read()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            return Reply(response.status, body, dict(response.headers))

    async def query(
        self, nsid: str, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        return await self.request("GET", nsids.xrpc_path(nsid), params=params, **kwargs)

    async def procedure(self, nsid: str, body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", nsids.xrpc_path(nsid), json_body=body, **kwargs)

    async def login(self, identifier: str, password: str) -> Reply:
        return await self.procedure(
            nsids.SERVER_CREATE_SESSION, {"identifier": identifier, "password": password}
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded
