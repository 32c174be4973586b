"""Sign-in configuration and session rules, in plain Python (the app does the Streamlit part).

Streamlit's native sign-in (``st.login``/``st.user``/``st.logout``, on Authlib) reads the
``[auth]`` block of ``.streamlit/secrets.toml``: ``redirect_uri`` and ``cookie_secret``, and per
provider ``client_id``, ``client_secret`` and ``server_metadata_url``, either directly in
``[auth]`` (one provider) or in ``[auth.NAME]`` blocks (one or several). ``read_auth`` checks that
block before anyone presses "Sign in", so that a misconfiguration is one clear message instead of
Streamlit's exception at the first click. ``session_problem`` enforces the maximum session age
that Streamlit does not (its identity cookie lasts 30 days, whatever the token's expiry).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from study.errors import ConfigError

PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
"""What every provider needs, as Streamlit's ``st.login`` requires it."""

MIN_COOKIE_SECRET_CHARS = 32
"""Shortest ``cookie_secret`` accepted: the key that signs the identity cookie (32 random
characters; ``python -c "import secrets; print(secrets.token_hex(32))"`` makes 64)."""

DEFAULT_PROVIDER = "default"
"""Streamlit's name for the provider configured directly in ``[auth]``."""

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True, slots=True)
class Provider:
    """One identity provider: ``name`` as ``st.login`` takes it (``"default"`` for the one set
    directly in ``[auth]``), the ``label`` its button shows, its metadata URL."""

    name: str
    label: str
    server_metadata_url: str


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """A checked ``[auth]`` block: the providers in the order written, the redirect URI."""

    providers: tuple[Provider, ...]
    redirect_uri: str

    def button_label(self, provider: Provider) -> str:
        """ "Sign in" alone with one provider; with several, "Sign in with <label>"."""
        return "Sign in" if len(self.providers) == 1 else f"Sign in with {provider.label}"


def read_auth(section: Mapping[str, Any] | None) -> AuthConfig | None:
    """The checked ``[auth]`` block, or None when there is none (the app is then a demo).

    Raises ``ConfigError`` naming every key that is missing or wrong: no ``redirect_uri`` (or
    not an absolute http(s) URL ending in ``/oauth2callback``), no ``cookie_secret`` (or one
    shorter than ``MIN_COOKIE_SECRET_CHARS``), no provider, a provider without ``client_id``,
    ``client_secret`` or an absolute ``server_metadata_url``, a provider name with ``_``
    (Streamlit refuses those). http is accepted only for localhost.
    """
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError("[auth] in .streamlit/secrets.toml must be a table of settings.")
    problems: list[str] = []
    redirect = section.get("redirect_uri")
    if not isinstance(redirect, str) or not redirect.strip():
        problems.append("redirect_uri is missing")
    elif not _is_url(redirect.replace("{port}", "8501")) or not redirect.rstrip().endswith(
        "/oauth2callback"
    ):
        problems.append(
            f"redirect_uri {redirect!r} must be the app's absolute URL ending in /oauth2callback"
        )
    secret = section.get("cookie_secret")
    if not isinstance(secret, str) or not secret:
        problems.append("cookie_secret is missing")
    elif len(secret) < MIN_COOKIE_SECRET_CHARS:
        problems.append(
            f"cookie_secret is {len(secret)} characters; use {MIN_COOKIE_SECRET_CHARS} or more "
            "random ones"
        )
    providers = []
    named = {k: v for k, v in section.items() if isinstance(v, Mapping) and k != "client_kwargs"}
    if any(key in section for key in PROVIDER_KEYS):
        providers.append((DEFAULT_PROVIDER, section))
    providers.extend(named.items())
    if not providers:
        problems.append(
            "no provider: give client_id, client_secret and server_metadata_url in [auth], or "
            "in an [auth.NAME] block per provider"
        )
    checked = []
    for name, block in providers:
        where = "[auth]" if name == DEFAULT_PROVIDER else f"[auth.{name}]"
        if "_" in name:
            problems.append(f"{where}: a provider's name may not contain '_'")
        missing = [k for k in PROVIDER_KEYS if not _text(block.get(k))]
        if missing:
            problems.append(f"{where} lacks {', '.join(missing)}")
            continue
        url = str(block["server_metadata_url"]).strip()
        if not _is_url(url):
            problems.append(
                f"{where}: server_metadata_url {url!r} must be an absolute https URL "
                "(http only for localhost)"
            )
            continue
        label = name.replace("-", " ").title() if name != DEFAULT_PROVIDER else "your account"
        checked.append(Provider(name, label, url))
    if problems:
        raise ConfigError(
            "The [auth] block of .streamlit/secrets.toml is not usable: "
            + "; ".join(problems)
            + "."
        )
    return AuthConfig(tuple(checked), str(redirect).strip())


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_url(text: str) -> bool:
    parsed = urlparse(text.strip())
    if parsed.scheme == "https":
        return bool(parsed.netloc)
    return parsed.scheme == "http" and parsed.hostname in _LOCAL_HOSTS


def session_problem(claims: Mapping[str, Any], *, now: float, max_hours: float) -> str | None:
    """Why the signed-in session in ``claims`` (``st.user``) must sign in again, or None.

    Its age runs from the ID token's ``iat`` (seconds since 1970, UTC), which every OpenID
    Connect ID token carries: the moment the provider vouched for the person. A session without
    a usable ``iat``, or one issued in the future (beyond a minute of clock skew), is refused
    too. ``now`` in the same unit.
    """
    issued = claims.get("iat")
    if isinstance(issued, bool) or not isinstance(issued, int | float) or not math.isfinite(issued):
        return "Your sign-in carries no time of issue, so its age cannot be checked."
    if issued > now + 60:
        return "Your sign-in was issued in the future; check the server's clock."
    if now - issued > max_hours * 3600:
        shown = f"{max_hours:g} hour" + ("" if max_hours == 1 else "s")
        return f"Your session is older than {shown}, the longest this installation allows."
    return None


def provider_problem(url: str, *, timeout: float = 5.0) -> str | None:
    """Why the provider whose metadata is at ``url`` cannot be used now, or None.

    Fetches the OpenID configuration as Authlib will at "Sign in", so that an unreachable or
    misbehaving provider is a sentence for the person instead of Streamlit's bare
    "Authentication error" page. The sentence names no host or path.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked scheme)
            metadata = json.loads(response.read(1_000_000).decode("utf-8"))
    except (urllib.error.URLError, OSError, TimeoutError):
        return "The sign-in service cannot be reached right now."
    except (ValueError, UnicodeDecodeError):
        return "The sign-in service answered with something that is not its configuration."
    if not isinstance(metadata, dict) or "authorization_endpoint" not in metadata:
        return "The sign-in service answered with something that is not its configuration."
    return None


def identity_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The claims the sign-in step takes from ``st.user``: issuer, subject, email,
    email_verified, display_name (``name``).

    ``email_verified`` is True only for the JSON ``true`` of the standard claim, or of Microsoft
    Entra ID's optional ``xms_edov`` ("email domain owner verified"), which Entra issues in its
    place (Entra's tokens carry no ``email_verified``).
    """
    name = claims.get("name")
    return {
        "issuer": claims.get("iss"),
        "subject": claims.get("sub"),
        "email": claims.get("email") if isinstance(claims.get("email"), str) else None,
        "email_verified": claims.get("email_verified") is True or claims.get("xms_edov") is True,
        "display_name": name if isinstance(name, str) else None,
    }
