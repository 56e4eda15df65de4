"""`fer dashboard`: start the Streamlit dashboard, local by default, and print the URL to open.

    fer dashboard                          # http://127.0.0.1:8501/?token=… (a new token at every start)
    fer dashboard --runs-dir A --runs-dir B --data data/   # what the sidebar offers
    fer dashboard --host 0.0.0.0           # beyond this machine: refused unless sign-in is configured
    fer dashboard --hash-password          # a hash for the settings file's [auth] (reads the secret)

Imports no PyTorch: it only checks the settings and starts `streamlit run dashboard/app.py`.
"""
from __future__ import annotations

import argparse
import getpass
import os
import socket
import subprocess
import sys
from pathlib import Path

from fer.core.auth import hash_secret, new_token
from fer.core.errors import UserError
from fer.core.settings import load_settings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


# The dashboard's Streamlit settings, given on the command line so they hold wherever `fer dashboard` is
# started (Streamlit reads .streamlit/config.toml only from the current folder); a test keeps the
# checkout's .streamlit/config.toml equal to them.
STREAMLIT_OPTIONS = {"browser.gatherUsageStats": "false", "server.maxUploadSize": "50", "server.headless": "true",
                     "server.enableCORS": "true", "server.enableXsrfProtection": "true", "theme.base": "light",
                     "theme.primaryColor": "#3b6ea8", "client.toolbarMode": "minimal"}


def dashboard_app() -> Path:
    """dashboard/app.py, beside the package (a checkout, or where pip installed both)."""
    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    if not app.is_file():
        raise UserError(f"the dashboard is missing ({app}): reinstall fer-studio")
    return app


def _environment(args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    if args.settings:
        env["FER_SETTINGS"] = str(Path(args.settings).resolve())
    if args.runs_dir:
        env["FER_RUNS_DIRS"] = os.pathsep.join(str(Path(p).resolve()) for p in args.runs_dir)
    if args.data:
        env["FER_DATA_SOURCES"] = os.pathsep.join(str(Path(p).resolve()) for p in args.data)
    return env


def _cmd_dashboard(args: argparse.Namespace) -> int:
    if args.hash_password:
        secret = getpass.getpass("Password or token to hash: ") if sys.stdin.isatty() else sys.stdin.readline()
        print(hash_secret(secret.rstrip("\n")))
        return 0
    env = _environment(args)
    os.environ.update({k: v for k, v in env.items() if k.startswith("FER_")})  # the settings read below see them
    settings = load_settings()
    exposed = args.host not in LOCAL_HOSTS
    if exposed and settings.auth.mode == "none":
        raise UserError(f"--host {args.host} exposes the dashboard beyond this machine: configure sign-in first "
                        "(auth.mode = password, token or oidc in the settings file), and put TLS in front")
    url_host = socket.gethostname() if exposed else "127.0.0.1" if args.host == "localhost" else args.host
    url = f"http://{url_host}:{args.port}/"
    if settings.auth.mode == "none" and settings.auth.local_token and not args.no_token:
        env["FER_DASHBOARD_TOKEN"] = new_token()
        url += f"?token={env['FER_DASHBOARD_TOKEN']}"
    elif args.no_token:
        env["FER_NO_TOKEN"] = "1"
    command = [sys.executable, "-m", "streamlit", "run", str(dashboard_app()), "--server.address", args.host,
               "--server.port", str(args.port), *(f"--{key}={value}" for key, value in STREAMLIT_OPTIONS.items())]
    print(f"fer-studio dashboard: open {url}", flush=True)
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def add_parsers(sub) -> None:
    """Register `fer dashboard`."""
    p = sub.add_parser("dashboard", help="start the dashboard (local by default; prints the URL with its token)",
                       description="Starts streamlit run dashboard/app.py. Local by default: it listens on 127.0.0.1 "
                                   "and the printed URL carries a token made for this start. --host 0.0.0.0 (or any "
                                   "non-local address) needs sign-in configured in the settings file.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--runs-dir", action="append", default=[], metavar="DIR",
                   help="a runs folder the sidebar offers (repeat for several; default: FER_RUNS_DIR or checkpoints/)")
    p.add_argument("--data", action="append", default=[], metavar="SOURCE",
                   help="a FER2013 source the sidebar offers (repeat; default: FER_DATA or data/)")
    p.add_argument("--settings", type=Path, help="the settings file (default: FER_SETTINGS or .streamlit/fer-studio.toml)")
    p.add_argument("--no-token", action="store_true",
                   help="no start token (a one-user laptop); or set auth.local_token = false in the settings")
    p.add_argument("--hash-password", action="store_true",
                   help="print the hash of a password or token (read from the terminal) for the settings file")
    p.set_defaults(func=_cmd_dashboard)
