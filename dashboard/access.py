"""Who is visiting: the sign-in gate every page passes, the visitor's role, and the server's settings.

Local by default: the server listens on 127.0.0.1 and asks for the token printed when it started
(`?token=` in the URL, as Jupyter does) unless the settings turn that off for a one-user laptop.
Shared: a password per user, one shared token, or the lab's identity provider (`st.login`, OIDC).
A session that has not signed in sees the sign-in page and nothing else. Roles come from the server's
settings; `fer.jobs.actions` checks them again behind every button.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sys
import time
from typing import Optional

import streamlit as st

from fer.core.auth import Actor, Throttle, new_token, token_matches, verify_secret
from fer.core.settings import ServerSettings, SettingsError, load_settings

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
SESSION_HOURS = 12  # a password sign-in lasts this long in the URL (page reloads keep it)


def server_settings() -> ServerSettings:
    """The server's settings (read at every rerun: a changed file applies at once); a bad file stops the app."""
    try:
        return load_settings()
    except SettingsError as e:
        st.error(f"The dashboard's settings cannot be used: {e}")
        st.stop()


@st.cache_resource(show_spinner=False)
def start_token() -> str:
    """This server's start token: `fer dashboard` passes the one it printed, else one is made (and printed) now."""
    token = os.environ.get("FER_DASHBOARD_TOKEN") or new_token()
    if not os.environ.get("FER_DASHBOARD_TOKEN"):
        port = st.get_option("server.port")
        print(f"fer-studio: open http://localhost:{port}/?token={token}", file=sys.stderr, flush=True)
    return token


@st.cache_resource(show_spinner=False)
def _throttle() -> Throttle:
    return Throttle()  # one per server process: guesses from every session count together


@st.cache_resource(show_spinner=False)
def _session_key() -> bytes:
    return secrets.token_bytes(32)  # per server start: a restart signs everyone out


def _session_token(identity: str) -> str:
    """A signed, expiring proof of a password sign-in, kept in the URL so a reload does not sign out."""
    body = f"{identity}\n{int(time.time()) + SESSION_HOURS * 3600}".encode()
    mac = hmac.new(_session_key(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + mac).decode()


def _session_identity(token: str) -> Optional[str]:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (ValueError, TypeError):
        return None
    body, mac = raw[:-32], raw[-32:]
    if len(raw) <= 32 or not hmac.compare_digest(mac, hmac.new(_session_key(), body, hashlib.sha256).digest()):
        return None
    identity, _, expires = body.decode(errors="replace").rpartition("\n")
    return identity if expires.isdigit() and int(expires) > time.time() else None


def exposed() -> bool:
    """Whether the server listens beyond this machine (no address set means every interface)."""
    return (st.get_option("server.address") or "") not in LOCAL_ADDRESSES


def actor() -> Actor:
    """The signed-in visitor (the gate has run before any page)."""
    return st.session_state["fer_actor"]


def _signed_in(identity: str, role: str) -> None:
    # No st.rerun(): before st.navigation has run, a rerun forgets which page the URL asked for.
    st.session_state["fer_actor"] = Actor(identity, role)


def _check_secret(key: str, ok: bool) -> None:
    """Count a try against `key`; sign in on success."""
    if ok:
        _throttle().succeeded(key)
    else:
        _throttle().failed(key)
        st.error("That did not match.")


def _token_page(settings: ServerSettings) -> None:
    shared = settings.auth.mode == "token"
    given = st.query_params.get("token") or ""
    if not given:
        with st.form("signin_token"):
            given = st.text_input("Token", type="password", key="signin_token_value",
                                  help="printed by `fer dashboard` when it started" if not shared else None)
            st.form_submit_button("Sign in")
    if not given or _throttle().wait_s("token") > 0:
        if given:
            st.error("Too many failed tries: wait a few minutes.")
        return
    ok = verify_secret(given, settings.auth.token_hash) if shared else token_matches(given, start_token())
    _check_secret("token", ok)
    if not ok and st.query_params.get("token"):
        del st.query_params["token"]  # a wrong token in the URL counts once, not at every rerun
    if ok:
        _signed_in("token holder" if shared else "local token", "operator")


def _password_page(settings: ServerSettings) -> None:
    with st.form("signin_password"):
        name = st.text_input("User", key="signin_user")
        password = st.text_input("Password", type="password", key="signin_password")
        pressed = st.form_submit_button("Sign in")
    if not pressed or not name:
        return
    if (wait := _throttle().wait_s(name)) > 0:
        st.error(f"Too many failed tries for {name}: wait {wait / 60:.0f} min.")
        return
    stored = settings.auth.users.get(name)
    ok = stored is not None and verify_secret(password, stored)
    _check_secret(name, ok)
    if ok:
        st.query_params["session"] = _session_token(name)
        _signed_in(name, settings.auth.role_of(name))


def _oidc_identity() -> Optional[str]:
    user = st.user
    if not user.is_logged_in:
        return None
    return str(user.get("email") or user.get("preferred_username") or user.get("sub") or "")


def gate(settings: ServerSettings) -> Actor:
    """The visitor, signed in; otherwise the sign-in page is drawn and the script stops here."""
    mode = settings.auth.mode
    if exposed() and not (mode in ("token", "password", "oidc")):
        st.error("This dashboard is listening beyond this machine without sign-in, so it serves nothing. "
                 "Configure sign-in in the server's settings (see docs/sharing.md).")
        st.stop()
    if mode == "oidc":
        identity = _oidc_identity()
        if identity:
            st.session_state["fer_actor"] = Actor(identity, settings.auth.role_of(identity))
    elif mode == "none" and not settings.auth.local_token:
        st.session_state["fer_actor"] = Actor("local", "operator")
    elif mode == "password" and (name := _session_identity(st.query_params.get("session") or "")) \
            and name in settings.auth.users:
        st.session_state["fer_actor"] = Actor(name, settings.auth.role_of(name))  # the role as the settings say now
    if "fer_actor" in st.session_state:
        _keep_in_url(settings)
        return actor()
    sign_in_page = st.empty()
    with sign_in_page.container():
        st.title("fer-studio")
        st.subheader("Sign in")
        if mode == "oidc":
            st.button("Sign in with your lab account", on_click=st.login, key="signin_oidc", type="primary")
        elif mode == "password":
            _password_page(settings)
        else:
            _token_page(settings)
    if "fer_actor" not in st.session_state:
        st.stop()
    sign_in_page.empty()  # signed in just now: the page the URL asked for draws in its place
    _keep_in_url(settings)
    return actor()


def _keep_in_url(settings: ServerSettings) -> None:
    """Put the sign-in back into the URL after a page change dropped it, so a reload stays signed in."""
    if settings.auth.mode == "password" and "session" not in st.query_params:
        st.query_params["session"] = _session_token(actor().identity)
    elif settings.auth.mode == "none" and settings.auth.local_token and "token" not in st.query_params:
        st.query_params["token"] = start_token()


def sign_out() -> None:
    """Button callback: forget the visitor (and leave the identity provider's session)."""
    st.session_state.pop("fer_actor", None)
    for key in ("token", "session"):
        if key in st.query_params:
            del st.query_params[key]
    if getattr(st.user, "is_logged_in", False):
        st.logout()
