"""The deployment docs/administrator.md describes: ``deploy/nginx.conf`` (TLS, the headers Streamlit cannot
set, ``/_stcore/metrics`` kept inside), ``.streamlit/config.toml``, the secrets example and the
guide's provider blocks.

nginx is not installed here, so its configuration is parsed (a small reader of nginx's syntax)
and its location matching is replayed by nginx's documented rules (exact ``=``, then the longest
prefix, ``^~`` stopping the search; no regular-expression locations are used). The content
security policy is then tried for real: Chromium loads the app with that header added to every
response, and no resource may be refused.
"""

from __future__ import annotations

import re
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT
from playwright.sync_api import sync_playwright
from serving import CHROMIUM_ARGS, chromium_path, serve

from study import signin

NGINX = ROOT / "deploy" / "nginx.conf"
GUIDE = ROOT / "docs" / "administrator.md"


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = field(default=None)

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} {self.args}: {len(found)} {name} directives"
        return found[0]


TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'|(#[^\n]*)|([{};])|([^\s{};"\'#]+)')


def parse_nginx(text: str) -> Directive:
    """nginx's syntax: ``name args;`` and ``name args { ... }``, # comments, quoted strings."""
    text = "\n".join(
        line.split("#", 1)[0] if '"' not in line else line for line in text.splitlines()
    )
    root = Directive("main", [], [])
    stack, words = [root], []
    for match in TOKEN.finditer(text):
        double, single, comment, punct, bare = match.groups()
        if comment is not None:
            continue
        if punct == ";":
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif punct == "{":
            child = Directive(words[0], words[1:], [])
            stack[-1].block.append(child)
            stack.append(child)
            words = []
        elif punct == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(double if double is not None else single if single is not None else bare)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def test_the_reader_reads_what_nginx_reads() -> None:
    conf = parse_nginx(
        'http { server { add_header X "a; b" always; # note\n location = /x { return 404; } } }'
    )
    server = conf.one("http").one("server")
    assert server.one("add_header").args == ["X", "a; b", "always"]
    assert server.one("location").args == ["=", "/x"]


@pytest.fixture(scope="module")
def conf() -> Directive:
    return parse_nginx(NGINX.read_text(encoding="utf-8"))


def tls_server(conf: Directive) -> Directive:
    (server,) = [s for s in conf.all("server") if any("ssl" in d.args for d in s.all("listen"))]
    return server


def location_for(server: Directive, uri: str) -> Directive:
    """The location nginx picks for ``uri`` (prefix and exact locations only)."""
    uri = re.sub("/+", "/", uri.split("?", 1)[0])  # merge_slashes on; the query is no part
    locations = server.all("location")
    assert all(loc.args[0] in {"=", "^~"} or loc.args[0].startswith("/") for loc in locations), (
        "a regular-expression location would need nginx's full matching rules here"
    )
    for loc in locations:
        if loc.args[0] == "=" and loc.args[1] == uri:
            return loc
    prefixes = [loc for loc in locations if loc.args[0] != "=" and uri.startswith(loc.args[-1])]
    return max(prefixes, key=lambda loc: len(loc.args[-1]))


def headers(server: Directive) -> dict[str, list[str]]:
    return {d.args[0].lower(): d.args[1:] for d in server.all("add_header")}


def csp(server: Directive) -> dict[str, list[str]]:
    policy = headers(server)["content-security-policy"][0]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_plain_http_only_redirects_to_https(conf: Directive) -> None:
    (plain,) = [s for s in conf.all("server") if s is not tls_server(conf)]
    assert {d.args[0] for d in plain.all("listen")} <= {"80", "[::]:80"}
    assert plain.one("return").args == ["301", "https://$host$request_uri"]
    assert not plain.all("location") and not plain.all("proxy_pass")


def test_tls_only_in_current_versions(conf: Directive) -> None:
    server = tls_server(conf)
    assert set(server.one("ssl_protocols").args) == {"TLSv1.2", "TLSv1.3"}
    assert server.one("ssl_certificate").args and server.one("ssl_certificate_key").args


def test_the_headers_streamlit_cannot_set_are_added_everywhere(conf: Directive) -> None:
    server = tls_server(conf)
    added = headers(server)
    for name in ("strict-transport-security", "x-frame-options", "content-security-policy"):
        assert added[name][-1] == "always", f"{name} must be sent on error pages too"
    assert added["x-frame-options"][0] == "DENY"
    assert "max-age=31536000" in added["strict-transport-security"][0]
    policy = csp(server)
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert "'unsafe-eval'" not in policy["script-src"]
    # nginx drops the server's add_header in a location that has its own: none may
    for location in server.all("location"):
        assert not location.all("add_header"), location.args


@pytest.mark.parametrize(
    "uri", ["/_stcore/metrics", "/_stcore/metrics/", "/_stcore/metrics?format=proto",
            "//_stcore//metrics", "/_stcore/metrics/anything"],
)  # fmt: skip
def test_metrics_are_not_exposed(conf: Directive, uri: str) -> None:
    location = location_for(tls_server(conf), uri)
    assert location.one("return").args == ["404"]
    assert not location.all("proxy_pass")


@pytest.mark.parametrize(
    ("uri", "websocket"),
    [("/", False), ("/rate", False), ("/_stcore/health", False), ("/_stcore/stream", True),
     ("/oauth2callback?code=x&state=y", False), ("/auth/login", False)],
)  # fmt: skip
def test_the_app_and_its_websocket_are_proxied_to_loopback(
    conf: Directive, uri: str, websocket: bool
) -> None:
    location = location_for(tls_server(conf), uri)
    assert location.one("proxy_pass").args == ["http://clinval"]
    (upstream,) = conf.all("upstream")
    assert upstream.args == ["clinval"] and upstream.one("server").args[0].startswith("127.0.0.1:")
    upgrades = {d.args[0]: d.args[1] for d in location.all("proxy_set_header")}
    assert ("Upgrade" in upgrades) is websocket
    if websocket:
        assert upgrades["Connection"] == "upgrade"
        assert location.one("proxy_http_version").args == ["1.1"]


# --- the app's own settings --------------------------------------------------------------------


def test_streamlit_config_hides_errors_and_keeps_xsrf_and_usage_stats_off() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert "address" not in config["server"]  # `make run` binds loopback unless told otherwise


def test_make_run_listens_on_loopback_unless_told_otherwise() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^HOST\s*\?=\s*127\.0\.0\.1$", makefile, re.M)
    run = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "--server.address $(HOST)" in run


FILLED = "0123456789abcdef" * 4


def test_the_secrets_example_is_refused_until_filled_in() -> None:
    example = tomllib.loads(
        (ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8")
    )
    with pytest.raises(Exception, match="cookie_secret is missing"):
        signin.read_auth(example["auth"])
    filled = example["auth"] | {"cookie_secret": FILLED}
    config = signin.read_auth(filled)
    assert [p.name for p in config.providers] == ["microsoft"]


def guide_auths() -> list[dict]:
    """The ``[auth]`` tables of the TOML blocks in the administrator's guide, "Sign-in"."""
    section = GUIDE.read_text(encoding="utf-8").split("\n## Sign-in", 1)[1].split("\n## ", 1)[0]
    parsed = [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", section, re.S)]
    return [p["auth"] for p in parsed if "auth" in p]


@pytest.mark.parametrize("provider", ["microsoft", "google", "okta", "keycloak"])
def test_the_guide_shows_a_working_block_per_provider(provider: str) -> None:
    auths = [a for a in guide_auths() if isinstance(a.get(provider), dict)]
    assert len(auths) == 1, f"{provider}: {len(auths)} blocks"
    config = signin.read_auth(auths[0] | {"cookie_secret": FILLED})
    (found,) = [p for p in config.providers if p.name == provider]
    assert found.server_metadata_url.endswith("/.well-known/openid-configuration")
    assert found.server_metadata_url.startswith("https://")


# --- the policy in a real browser --------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_the_content_security_policy_lets_the_app_work(conf: Directive, tmp_path: Path) -> None:
    policy = headers(tls_server(conf))["content-security-policy"][0]
    refused: list[str] = []
    with serve(tmp_path / "csp.duckdb", tmp_path, demo_on_start=True) as served:
        # what the proxy keeps inside: Streamlit itself answers it
        with urllib.request.urlopen(f"{served.url}/_stcore/metrics", timeout=30) as response:
            assert response.status == 200
        with sync_playwright() as playwright:
            # A document fulfilled by the test counts as a public page for Chromium's local
            # network checks, which would then block its WebSocket to 127.0.0.1.
            browser = playwright.chromium.launch(
                executable_path=chromium_path(),
                args=[*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"],
            )
            try:
                page = browser.new_page()
                page.on(
                    "console",
                    lambda m: (
                        refused.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )

                def with_policy(route):
                    # the document's header is what governs the page (and what nginx adds)
                    if route.request.resource_type != "document":
                        route.continue_()
                        return
                    response = route.fetch()
                    route.fulfill(
                        response=response,
                        headers=response.headers | {"content-security-policy": policy},
                    )

                page.route("**/*", with_policy)
                page.goto(served.url)
                try:
                    page.get_by_role("heading", name="Study overview").wait_for(timeout=90_000)
                except Exception:
                    raise AssertionError(f"no render under the policy: {refused}") from None
                page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1500)
                assert refused == [], refused
                # the control: the policy is in force (connect-src 'self' refuses another host)
                page.evaluate("fetch('http://192.0.2.1/x').catch(() => null)")
                page.wait_for_timeout(500)
                page.unroute_all(behavior="ignoreErrors")
            finally:
                browser.close()
    assert refused and all("192.0.2.1" in message for message in refused), refused
