"""The OpenAPI document (Services/socket-gateway/Resources/openapi.json) against what the gateway serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e_support import ERROR_CODES, assert_error, assert_status

DOC_PATH = Path(__file__).resolve().parents[2] / "Services" / "socket-gateway" / "Resources" / "openapi.json"
DOC = json.loads(DOC_PATH.read_text(encoding="utf-8"))

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# The routes the gateway serves (docs/auth.md), and whether each takes a Bearer token.
GATEWAY_ROUTES = {
    ("POST", "/api/users"): False,
    ("POST", "/api/login"): False,
    ("POST", "/api/token/refresh"): False,
    ("POST", "/api/logout"): False,
    ("GET", "/api/users/me"): True,
    ("GET", "/api/users/{id}"): True,
    ("PATCH", "/api/users/{id}"): True,
    ("GET", "/api/users"): True,
    ("GET", "/api/threads"): True,
    ("GET", "/api/threads/{threadId}/messages"): True,
    ("POST", "/api/attachments"): True,
    ("GET", "/media/{token}/{name}"): False,
    ("GET", "/.well-known/jwks.json"): False,
    ("GET", "/api/openapi.json"): False,
    ("GET", "/healthz"): False,
    ("GET", "/readyz"): False,
}


def documented_operations() -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path) for path, item in DOC["paths"].items() for method in item if method in HTTP_METHODS
    )


def operation(method: str, path: str) -> dict:
    return DOC["paths"][path][method.lower()]


def needs_bearer(method: str, path: str) -> bool:
    security = operation(method, path).get("security", DOC.get("security", []))
    return any("bearerAuth" in requirement for requirement in security)


def test_served_document_is_the_repository_document(api):
    resp = api.get("/api/openapi.json")
    assert_status(resp, 200)
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    assert resp.json() == DOC


def test_document_is_openapi_3_1():
    assert DOC["openapi"].startswith("3.1.")
    bearer = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"], bearer["bearerFormat"]) == ("http", "bearer", "JWT")
    codes = set(DOC["components"]["schemas"]["ErrorCode"]["enum"])
    assert codes == ERROR_CODES


def test_documented_routes_are_exactly_the_gateway_routes():
    assert set(documented_operations()) == set(GATEWAY_ROUTES)


@pytest.mark.parametrize("method,path", sorted(GATEWAY_ROUTES))
def test_documented_security_matches_docs_auth(method, path):
    assert needs_bearer(method, path) == GATEWAY_ROUTES[(method, path)]


@pytest.mark.parametrize("method,path", documented_operations())
def test_documented_error_responses_use_the_error_schema(method, path):
    responses = operation(method, path)["responses"]
    shared = DOC["components"]["responses"]
    for status, response in responses.items():
        if not status.startswith(("4", "5")) or path == "/readyz":
            continue
        if "$ref" in response:
            response = shared[response["$ref"].rsplit("/", 1)[-1]]
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    if method in ("POST", "PATCH"):
        assert "413" in responses, (method, path)
    if needs_bearer(method, path):
        assert "401" in responses, (method, path)


@pytest.mark.parametrize("method,path", documented_operations())
def test_every_documented_operation_is_served(api, reader, method, path):
    acc = reader  # PATCH {} of oneself changes nothing; POST bodies {} are rejected
    url_path = (
        path.replace("{id}", acc.id).replace("{threadId}", "01a2104b-0000-7000-8000-000000000000")
        .replace("{token}", "0" * 32).replace("{name}", "none.png"))
    body = {} if method in ("POST", "PATCH") else None
    resp = api.request(method, url_path, json_body=body, token=acc.access)
    if "{threadId}" in path or "{token}" in path:  # no such thread or file: the route's own 404, not "no such route"
        assert_error(resp, 404, "not_found")
        assert resp.json()["error"]["message"] != "no such route"
        return
    assert resp.status_code not in (404, 405), f"{method} {url_path} -> {resp.status_code} {resp.text[:300]}"


@pytest.mark.parametrize("method,path", [op for op in sorted(GATEWAY_ROUTES) if GATEWAY_ROUTES[op]])
def test_protected_operations_require_a_bearer_token(api, reader, method, path):
    reg = reader
    body = {} if method in ("POST", "PATCH") else None
    resp = api.request(method, path.replace("{id}", reg.id).replace("{threadId}", reg.id), json_body=body)
    assert_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("path", ["/api/nope", "/api/users/me/extra", "/nope"])
def test_unknown_route_is_404_not_found(api, path):
    assert_error(api.get(path), 404, "not_found")


def test_health_routes(api):
    health = api.get("/healthz")
    assert_status(health, 200)
    assert health.json()["status"] == "ok"
    ready = api.get("/readyz")
    assert_status(ready, 200)
    assert ready.json()["status"] == "ready"
