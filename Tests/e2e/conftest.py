"""Fixtures of the e2e suite: the gateway client and factories for fresh users.

Every test makes its own users (unique usernames with a uuid suffix), so tests are
independent and can run against a database that already holds data. Registration
and login cost a bcrypt hash each (cost 12, about 0.25 s here): make few users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
import requests

from e2e_support import GATEWAY_URL, Api, do_login, do_register


@dataclass
class Registered:
    """A user created through `POST /api/users`, with the clear-text password."""

    user: dict[str, Any]
    password: str

    @property
    def id(self) -> str:
        return self.user["id"]

    @property
    def username(self) -> str:
        return self.user["username"]

    @property
    def email(self) -> str:
        return self.user["email"]


@dataclass
class Account(Registered):
    """A registered user that has logged in once: `access` / `refresh` are that login's pair."""

    access: str
    refresh: str


@pytest.fixture(scope="session")
def base_url() -> str:
    return GATEWAY_URL


@pytest.fixture(scope="session")
def api(base_url: str) -> Api:
    """The gateway client; every test that needs it fails at once, with one line, when the
    gateway does not answer /healthz."""
    client = Api(base_url)
    try:
        resp = client.get("/healthz")
        problem = "" if resp.status_code == 200 else f"/healthz answered {resp.status_code}"
    except requests.RequestException as exc:
        problem = str(exc)
    if problem:
        pytest.fail(f"gateway at {base_url} is not usable ({problem}); is it running? GATEWAY_URL?", pytrace=False)
    return client


def new_account(api: Api, **kwargs: Any) -> Account:
    """A fresh user, logged in once (for module-scoped fixtures that only read)."""
    user, password = do_register(api, **kwargs)
    pair = do_login(api, user["username"], password)
    assert pair["user"]["id"] == user["id"]
    return Account(user=user, password=password, access=pair["accessToken"], refresh=pair["refreshToken"])


@pytest.fixture
def register(api: Api) -> Callable[..., Registered]:
    """register(username=None, email=None, password=None, display_name=None, **extra) -> Registered.

    Defaults: a fresh username `e2e_<12 hex>`, email `<username>@e2e.example.com`, a random
    password. Asserts 201 and the user's shape (with email)."""

    def _register(**kwargs: Any) -> Registered:
        user, password = do_register(api, **kwargs)
        return Registered(user=user, password=password)

    return _register


@pytest.fixture
def login(api: Api) -> Callable[[str, str], dict[str, Any]]:
    """login(login, password) -> the 200 body (token pair and user); asserts its shape."""

    def _login(login_name: str, password: str) -> dict[str, Any]:
        return do_login(api, login_name, password)

    return _login


@pytest.fixture
def account(api: Api) -> Callable[..., Account]:
    """account(**register_kwargs) -> a fresh user, logged in once."""

    def _account(**kwargs: Any) -> Account:
        return new_account(api, **kwargs)

    return _account


@pytest.fixture(scope="module")
def module_account(api: Api) -> Callable[..., Account]:
    """module_account(**register_kwargs) -> a fresh user, logged in once, for module-scoped
    fixtures (users that several tests of one module share without interfering)."""

    def _account(**kwargs: Any) -> Account:
        return new_account(api, **kwargs)

    return _account


@pytest.fixture(scope="module")
def reader(api: Api) -> Account:
    """One logged-in user per test module, for tests that only read with its access token
    (never change it, never spend its refresh token)."""
    return new_account(api)
