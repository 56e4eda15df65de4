"""Sign-in and roles in a real headless Chromium: passwords, a lab's identity provider (a small OIDC
provider served by this test with Authlib, so no network is needed), and the websocket's Origin check."""
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fer.core.auth import hash_secret

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason="Debian chromium is not installed (apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(runs: Path, data: Path, settings: str, tmp: Path, extra_args=()) -> tuple:
    """A dashboard server as `streamlit run` starts it, with these settings; (process, base URL)."""
    port = _free_port()
    (tmp / "fer-studio.toml").write_text(settings)
    env = {**os.environ, "FER_SETTINGS": str(tmp / "fer-studio.toml"), "FER_RUNS_DIRS": str(runs),
           "FER_DATA_SOURCES": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless=true", f"--server.port={port}", *extra_args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the dashboard did not start")


@pytest.fixture(scope="module")
def runs(trained_run):
    return trained_run.parent


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield browser
        browser.close()


def _page(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    return page


def _wait_text(page, text: str, timeout_s: float = 60) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout_s * 1000)


def _nav(page, timeout_s: float = 30) -> str:
    """The sidebar's page list, once drawn (it comes a moment after the sidebar's sign-in line)."""
    nav = page.locator("[data-testid='stSidebarNav']")
    try:
        nav.first.wait_for(timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - no list at all: the caller's assertion says what was expected
        return ""
    return nav.first.inner_text()


def _session(page) -> str:
    """The signed session the dashboard put into the URL after sign-in."""
    deadline = time.time() + 30
    while time.time() < deadline:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))
        if query.get("session"):
            return query["session"]
        time.sleep(0.3)
    raise AssertionError(f"no session in {page.url}")


def _sign_in(page, user: str, password: str) -> None:
    page.get_by_label("User").fill(user)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_anonymous_sees_sign_in_a_viewer_cannot_launch_or_delete_an_operator_can(browser, runs, small_folder,
                                                                                  tmp_path):
    settings = ('[auth]\nmode = "password"\noperators = ["alice"]\n[auth.users]\n'
                f'alice = "{hash_secret("alice-pw")}"\nbob = "{hash_secret("bob-pw")}"\n')
    proc, url = _serve(runs, small_folder, settings, tmp_path)
    try:
        anonymous = _page(browser, f"{url}/runs")
        _wait_text(anonymous, "Sign in")
        assert anonymous.locator("h1", has_text="Runs").count() == 0 and "Runs" not in _nav(anonymous, timeout_s=3)

        viewer = _page(browser, f"{url}/runs")
        _wait_text(viewer, "Sign in")
        _sign_in(viewer, "bob", "bob-pw")
        _wait_text(viewer, "bob (viewer)")
        session = _session(viewer)  # the signed sign-in the URL keeps, so reloads stay signed in
        viewer.goto(f"{url}/runs?session={session}")
        viewer.locator("h1", has_text="Runs").wait_for(timeout=60_000)
        assert "Train" not in _nav(viewer) and "Sweeps" not in _nav(viewer)
        assert viewer.get_by_text("Rename, tag or delete a run").count() == 0
        viewer.goto(f"{url}/train?session={session}")  # typed by hand: a viewer's pages do not include it
        viewer.locator("h1", has_text="fer-studio").wait_for(timeout=60_000)  # the default page instead
        assert viewer.locator("h1", has_text="Train").count() == 0
        assert viewer.get_by_role("button", name="Launch training").count() == 0

        operator = _page(browser, f"{url}/runs")
        _wait_text(operator, "Sign in")
        _sign_in(operator, "alice", "alice-pw")
        _wait_text(operator, "alice (operator)")
        session = _session(operator)
        operator.goto(f"{url}/runs?session={session}")
        operator.get_by_text("Rename, tag or delete a run").first.click()
        operator.get_by_role("button", name="Delete").first.wait_for(timeout=30_000)
        operator.goto(f"{url}/train?session={session}")
        operator.locator("h1", has_text="Train").wait_for(timeout=60_000)
        operator.get_by_role("button", name="Launch training").wait_for(timeout=60_000)  # drawn after the title
        assert operator.get_by_role("button", name="Launch training").count() == 1
        forged = session[:-4] + ("AAAA" if not session.endswith("AAAA") else "BBBB")
        operator.goto(f"{url}/train?session={forged}")  # a tampered sign-in is no sign-in
        _wait_text(operator, "Sign in")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_websocket_refuses_a_foreign_origin(runs, small_folder, tmp_path):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect as ws_connect

    proc, url = _serve(runs, small_folder, '[auth]\nlocal_token = false\n', tmp_path)
    ws_url = url.replace("http", "ws") + "/_stcore/stream"

    def connect(origin: str) -> str:
        try:
            with ws_connect(ws_url, origin=origin, subprotocols=["streamlit"], open_timeout=10):
                return "open"
        except InvalidStatus as e:
            return f"refused {e.response.status_code}"

    try:
        assert connect(url) == "open"  # the page's own origin
        assert connect("http://evil.example") == "refused 403"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- a small OIDC provider --------------------------------------------------------------------------------------

class _Provider:
    """Discovery, authorize (signs in `self.email` at once), token (an RS256 id_token), JWKS and userinfo."""

    def __init__(self) -> None:
        from authlib.jose import JsonWebKey

        self.key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "test-key"})
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.email = "carol@lab.example"
        self.codes: dict = {}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parsed = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                if parsed.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif parsed.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(is_private=False)]})
                elif parsed.path == "/authorize":
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"nonce": query.get("nonce"), "client_id": query["client_id"]}
                    target = f"{query['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif parsed.path == "/userinfo":
                    self._json({"sub": "carol", "email": provider.email})
                else:
                    self.send_response(404)
                    self.end_headers()

            def do_POST(self):
                body = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                grant = provider.codes.pop(body.get("code"), None)
                if grant is None:
                    self.send_response(400)
                    self.end_headers()
                    return
                self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 3600,
                            "id_token": provider.id_token(grant)})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def discovery(self) -> dict:
        return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256"]}

    def id_token(self, grant: dict) -> str:
        from authlib.jose import jwt

        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "carol", "aud": grant["client_id"], "iat": now, "exp": now + 3600,
                  "email": self.email, "email_verified": True, **({"nonce": grant["nonce"]} if grant["nonce"] else {})}
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key).decode()

    def close(self) -> None:
        self.server.shutdown()


def test_signing_in_through_the_labs_identity_provider(browser, runs, small_folder, tmp_path, dashboard_server):
    pytest.importorskip("authlib")
    provider = _Provider()
    port = _free_port()
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                            f'cookie_secret = "{secrets.token_hex(16)}"\nclient_id = "fer-studio"\n'
                            f'client_secret = "{secrets.token_hex(16)}"\n'
                            f'server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"\n')
    settings = '[auth]\nmode = "oidc"\noperators = ["carol@lab.example"]\n'
    (tmp_path / "fer-studio.toml").write_text(settings)
    env = {**os.environ, "FER_SETTINGS": str(tmp_path / "fer-studio.toml"), "FER_RUNS_DIRS": str(runs),
           "FER_DATA_SOURCES": str(small_folder)}
    try:
        with dashboard_server(env, f"--secrets.files={secrets_file}", port=port) as url:
            page = _page(browser, url)
            page.get_by_role("button", name="Sign in with your lab account").click()  # to the provider and back
            _wait_text(page, "carol@lab.example (operator)", timeout_s=90)
            assert "Train" in _nav(page)
            page.get_by_role("button", name="Sign out").click()
            _wait_text(page, "Sign in with your lab account")
    finally:
        provider.close()
