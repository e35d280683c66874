"""A small client of the approval API, for the officers' CLI (``dagmonitor approvals``)."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

import aiohttp

from services.approval.errors import ApiError


class ApprovalClient:
    """Calls the approval API with a bearer token; errors become ApiError (status, detail)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def list(self, status: str = "pending", limit: int = 100) -> list[dict[str, Any]]:
        body = await self._call("GET", "/v1/requests", params={"status": status, "limit": limit})
        items: list[dict[str, Any]] = body["items"]
        return items

    async def show(self, request_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/requests/{quote(request_id, safe='')}")

    async def decide(self, request_id: str, decision: str, reason: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"decision": decision}
        if reason is not None:
            payload["reason"] = reason
        path = f"/v1/requests/{quote(request_id, safe='')}/decision"
        return await self._call("POST", path, json=payload)

    async def consents(self) -> builtins.list[dict[str, Any]]:
        body = await self._call("GET", "/v1/consents")
        items: builtins.list[dict[str, Any]] = body["items"]
        return items

    async def grant_consent(
        self, category: str, reference: str, valid_until: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"category": category, "reference": reference}
        if valid_until is not None:
            payload["valid_until"] = valid_until
        return await self._call("POST", "/v1/consents", json=payload)

    async def revoke_consent(self, consent_id: str, reason: str) -> dict[str, Any]:
        path = f"/v1/consents/{quote(consent_id, safe='')}/revoke"
        return await self._call("POST", path, json={"reason": reason})

    async def covenant(self) -> dict[str, Any]:
        return await self._call("GET", "/v1/covenant")

    async def renew_covenant(
        self, evaluation_id: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        payload = {k: v for k, v in (("evaluation_id", evaluation_id), ("reason", reason)) if v}
        return await self._call("POST", "/v1/covenant/renewals", json=payload)

    async def end_covenant(
        self, at: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        payload = {k: v for k, v in (("at", at), ("reason", reason)) if v}
        return await self._call("POST", "/v1/covenant/end", json=payload)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout, headers=self._headers) as session,
                session.request(method, self._base + path, **kwargs) as response,
            ):
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if response.status >= 400:
                    detail = body.get("detail") if isinstance(body, dict) else None
                    raise ApiError(response.status, detail or response.reason or "error")
                if not isinstance(body, dict):
                    raise ApiError(response.status, "the answer is not a JSON object")
                return body
        except aiohttp.ClientConnectionError as exc:
            raise ApiError(0, f"cannot reach the approval API at {self._base}: {exc}") from None
