"""A dashboard a lab can share: server-chosen places, roles checked behind every action, fer's own folders
only (never through a link), a restorable trash, an audit log, names as plain text, errors that never
quote a file, sign-in that cannot be guessed, and a worker that never waits on a network call."""
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from fer.config import ConfigError, load_config
from fer.core.auth import Actor, Throttle, hash_secret, verify_secret
from fer.core.settings import PathNotAllowed, SettingsError, load_settings, within
from fer.core.text import check_name, check_tags
from fer.data import DataError, read_fer_csv
from fer.jobs import actions
from fer.jobs.queue import cancel, statuses
from fer.jobs.worker import _Worker
from fer.runs.identity import read_audit, run_identity, trashed_runs
from fer.runs.store import list_runs, read_config, read_status, run_folders
from fer.runs.trash import delete_run, empty_trash, restore_run
from fer.runs.writer import NotARun, create_run, rename_run, set_tags, write_status
from fer.training.validate import check_config

OPERATOR, VIEWER = Actor("alice", "operator"), Actor("bob", "viewer")
SNEAKY = ["bad\x85name", "right\u202eto-left", "zero\u200bwidth", "line\nbreak", "bell\x07"]


def _project_folder(root: Path) -> Path:
    """Somebody's project that happens to hold a config.json: not a run."""
    folder = root / "my-project"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "mine", "lr": 0.1}))
    (folder / "precious.txt").write_text("years of work")
    return folder


def test_settings_come_from_the_server_file_and_environment(tmp_path, monkeypatch):
    settings_file = tmp_path / "fer-studio.toml"
    settings_file.write_text('runs_dirs = ["/srv/a", "/srv/b"]\nray_targets = ["ray:auto"]\n'
                             '[auth]\nmode = "password"\noperators = ["alice"]\n'
                             f'[auth.users]\nalice = "{hash_secret("pw")}"\nbob = "{hash_secret("pw2")}"\n')
    monkeypatch.setenv("FER_SETTINGS", str(settings_file))
    monkeypatch.delenv("FER_RUNS_DIRS", raising=False)
    monkeypatch.delenv("FER_RUNS_DIR", raising=False)
    settings = load_settings()
    assert settings.runs_dirs == ("/srv/a", "/srv/b") and settings.ray_targets == ("ray:auto",)
    assert settings.auth.role_of("alice") == "operator" and settings.auth.role_of("bob") == "viewer"
    monkeypatch.setenv("FER_RUNS_DIRS", os.pathsep.join(["/x", "/y"]))  # what `fer dashboard --runs-dir` sets
    assert load_settings().runs_dirs == ("/x", "/y")
    settings_file.write_text('[auth]\nmode = "password"\n')  # a password mode without users
    with pytest.raises(SettingsError, match=r"needs an \[auth.users\] table"):
        load_settings()
    settings_file.write_text('secret_key = "hunter2"\nrunz_dirs = [1, 2\n')
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert "not valid TOML" in str(e.value) and "hunter2" not in str(e.value)


def test_paths_must_resolve_inside_an_allowed_root(tmp_path):
    root = tmp_path / "weights"
    root.mkdir()
    (root / "resnet18.pth").write_bytes(b"x")
    assert within(root / "resnet18.pth", [root]) == (root / "resnet18.pth").resolve()
    outside = tmp_path / "secret.pth"
    outside.write_bytes(b"x")
    (root / "link.pth").symlink_to(outside)  # a link inside the root that points out of it
    for path in (outside, root / "link.pth", root / ".." / "secret.pth", "/etc/passwd", "", "a\0b"):
        with pytest.raises(PathNotAllowed):
            within(path, [root])


def test_secrets_are_hashed_compared_safely_and_guessing_is_braked():
    stored = hash_secret("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_secret("correct horse", stored) and not verify_secret("correct hors", stored)
    assert not verify_secret("x", "scrypt$not-a-hash") and not verify_secret("x", "")
    throttle = Throttle(attempts=3, window_s=60)
    for i in range(3):
        assert throttle.wait_s("bob", now=100.0 + i) == 0
        throttle.failed("bob", now=100.0 + i)
    assert throttle.wait_s("bob", now=103.0) == pytest.approx(57.0)  # the fourth try waits
    assert throttle.wait_s("alice", now=103.0) == 0  # others are not held up
    assert throttle.wait_s("bob", now=161.0) == 0  # the window passes


@pytest.mark.parametrize("name", SNEAKY + ["n" * 201])
def test_names_with_controls_bidi_or_zero_width_are_refused(name):
    with pytest.raises(ValueError):
        check_name(name)
    cfg = load_config(None, [])
    cfg.name = name
    with pytest.raises(ConfigError, match="a run name"):  # before any run folder: check_config says so
        check_config(cfg)


def test_tags_are_capped_and_never_hold_a_comma(trained_run, tmp_path):
    assert check_tags([" a ", "", "b"]) == ["a", "b"]
    for bad in (["a,b"], ["t" * 65], [f"t{i}" for i in range(33)], ["zero\u200bwidth"]):
        with pytest.raises(ValueError):
            check_tags(bad)
    run = create_run(read_config(trained_run), tmp_path)
    with pytest.raises(ValueError):
        set_tags(run, ["fine", "not,fine"])
    with pytest.raises(ValueError):
        rename_run(run, "right\u202eto-left")
    set_tags(run, ["fine", "also fine"])
    assert read_config(run).tags == ["fine", "also fine"]


def test_a_foreign_folder_is_listed_but_never_written_deleted_or_trained(trained_run, tmp_path):
    project = _project_folder(tmp_path)
    assert run_identity(project) == "foreign" and project not in run_folders(tmp_path)
    board = list_runs(tmp_path)
    assert "not a run folder fer wrote" in board.loc[board["run_id"] == "my-project", "problem"].iloc[0]
    for act in (lambda: delete_run(project), lambda: cancel(project), lambda: write_status(project, "queued"),
                lambda: rename_run(project, "mine")):
        with pytest.raises(NotARun):
            act()
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "precious.txt"]  # no CANCEL, no status
    assert json.loads((project / "config.json").read_text()) == {"model": "mine", "lr": 0.1}


def test_a_symlinked_run_is_never_trained_or_written_through(trained_run, tmp_path):
    elsewhere = create_run(read_config(trained_run), tmp_path / "elsewhere")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert run_identity(runs / "linked") == "foreign" and run_folders(runs) == []
    worker = _Worker(runs)
    worker.start_ready(statuses(runs), ["cpu:0"])
    assert worker.running == {}  # the queued run behind the link is not trained from here
    with pytest.raises(NotARun):
        write_status(runs / "linked", "cancelled")
    assert read_status(elsewhere)["state"] == "queued"


def test_an_older_run_folder_is_recognised_and_stamped_once(trained_run, tmp_path):
    run = create_run(read_config(trained_run), tmp_path)
    status = json.loads((run / "status.json").read_text())
    del status["format"], status["run_id"]  # as runs were written before the stamp existed
    (run / "status.json").write_text(json.dumps(status))
    assert run_identity(run) == "legacy" and run in run_folders(tmp_path)
    write_status(run, "cancelled")
    assert run_identity(run) == "run" and read_status(run)["format"] == "fer-run/1"


def test_delete_goes_to_a_restorable_trash_that_empties_after_its_retention(trained_run, tmp_path):
    run = create_run(read_config(trained_run), tmp_path)
    write_status(run, "cancelled")
    trashed = delete_run(run)
    assert not run.exists() and trashed.parent.name == ".trash" and (trashed / "config.json").is_file()
    assert [r["run_id"] for r in trashed_runs(tmp_path)] == [run.name] and run.name not in list(list_runs(tmp_path)["run_id"])
    assert restore_run(tmp_path, run.name) == run and (run / "config.json").is_file()
    assert "deleted_at" not in read_status(run)
    delete_run(run)
    assert empty_trash(tmp_path, older_than_days=1) == 0  # deleted just now: kept
    assert empty_trash(tmp_path, older_than_days=0) == 1 and trashed_runs(tmp_path) == []
    # The dashboard's delete empties what outstayed the server's retention, and records it.
    older, newer = (create_run(read_config(trained_run), tmp_path) for _ in range(2))
    for r in (older, newer):
        write_status(r, "cancelled")
    delete_run(older)
    status = read_status(tmp_path / ".trash" / older.name)
    status["deleted_at"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / ".trash" / older.name / "status.json").write_text(json.dumps(status))
    actions.delete(OPERATOR, newer, keep_days=7)
    assert [r["run_id"] for r in trashed_runs(tmp_path)] == [newer.name]
    assert [r["action"] for r in read_audit(tmp_path)] == ["empty_trash", "delete"]
    with pytest.raises(ValueError, match="no run"):
        restore_run(tmp_path, "../../etc")


def test_roles_are_checked_behind_every_action_and_recorded(trained_run, small_folder, tmp_path):
    settings = load_settings()
    checked = check_config(load_config(None, [f"data.path={small_folder}", "train.epochs=1"]))
    run = create_run(read_config(trained_run), tmp_path)
    write_status(run, "cancelled")
    for act in (lambda a: actions.launch(a, checked, str(tmp_path), settings, str(small_folder)),
                lambda a: actions.cancel(a, run), lambda a: actions.resume(a, run),
                lambda a: actions.edit(a, run, "x", []), lambda a: actions.delete(a, run),
                lambda a: actions.steer_queue(a, tmp_path, "pause")):
        with pytest.raises(actions.NotAllowed, match="needs the operator role"):
            act(VIEWER)
    assert read_audit(tmp_path) == []  # nothing a viewer tried happened
    actions.edit(OPERATOR, run, "renamed", ["kept"])
    actions.steer_queue(OPERATOR, tmp_path, "pause")
    trashed = actions.delete(OPERATOR, run)
    actions.restore(OPERATOR, tmp_path, trashed.name)
    log = read_audit(tmp_path)
    assert [r["action"] for r in log] == ["restore", "delete", "queue_pause", "edit"]  # newest first
    assert all(r["who"] == "alice" and r["role"] == "operator" and r["at"] for r in log)


def test_a_visitor_cannot_point_a_run_at_places_or_servers_the_server_does_not_offer(small_folder, tmp_path):
    settings = load_settings()
    source = str(Path(small_folder).resolve())
    ok = check_config(load_config(None, [f"data.path={small_folder}", "train.epochs=1"]))
    actions.check_places(ok.config, settings, source, str(tmp_path), "local")
    for override, target in (("tracking.mlflow_uri=http://internal.example/api", "local"),
                             ("model.kwargs={weights_path: /etc/passwd}", "local"),
                             ("runs_dir=/tmp/elsewhere", "local"), ("data.ferplus_path=/etc/shadow", "local"),
                             ("name=ok", "ray:10.0.0.5:6379")):
        cfg = load_config(None, [f"data.path={small_folder}", override])
        with pytest.raises(PathNotAllowed):
            actions.check_places(cfg, settings, source, str(tmp_path), target)
    other = load_config(None, [f"data.path={tmp_path}"])
    with pytest.raises(PathNotAllowed, match="chosen in the sidebar"):
        actions.check_places(other, settings, source, str(tmp_path), "local")


def test_errors_name_the_file_and_the_problem_never_its_contents(tmp_path):
    secret = tmp_path / "environ"
    secret.write_bytes(b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\0PATH=/usr/bin\0")
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    for path, leak in ((secret, "wJalrXUtnFEMI"), (passwd, "root:x:0")):
        with pytest.raises(DataError) as e:
            read_fer_csv(path)
        assert leak not in str(e.value) and str(path) in str(e.value)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train:\n  epochs: 3\napi_key: [sk-live-1234567890\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad_yaml)
    assert "sk-live" not in str(e.value) and "line" in str(e.value)


@pytest.mark.slow
def test_the_worker_keeps_starting_local_jobs_while_a_ray_address_hangs(trained_run, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    listener = socket.socket()  # accepts connections and never says a word
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()) for _ in range(16)], daemon=True).start()
    monkeypatch.setenv("FER_RAY_CONNECT_TIMEOUT_S", "15")
    hanging = create_run(read_config(trained_run), tmp_path, target=f"ray:127.0.0.1:{listener.getsockname()[1]}")
    local = create_run(read_config(trained_run), tmp_path)
    worker = _Worker(tmp_path)
    try:
        started = time.monotonic()
        assert worker.poll() and time.monotonic() - started < 5  # one round of the loop, not a network wait
        assert local in worker.running  # the local job started at once
        assert read_status(hanging)["waiting"].startswith("connecting to the Ray cluster at 127.0.0.1:")
        while read_status(hanging)["state"] == "queued" and time.monotonic() - started < 60:
            worker.poll()
            time.sleep(0.5)
        status = read_status(hanging)
        assert status["state"] == "failed" and "cannot reach the Ray cluster" in status["error"]
        assert time.monotonic() - started < 40  # given up after its time limit, not after minutes
    finally:
        for proc in worker.running.values():
            proc.kill()
            proc.wait()
        listener.close()


# --- the dashboard ----------------------------------------------------------------------------------------------

def _password_settings() -> str:
    return ('[auth]\nmode = "password"\noperators = ["alice"]\n[auth.users]\n'
            f'alice = "{hash_secret("alice-pw")}"\nbob = "{hash_secret("bob-pw")}"\n')


def _sign_in(at, user: str, password: str):
    at.text_input(key="signin_user").set_value(user)
    at.text_input(key="signin_password").set_value(password)
    return at.button(key="FormSubmitter:signin_password-Sign in").click().run()


def _buttons(at) -> set:
    return {b.key for b in at.button}


def test_a_visitor_who_has_not_signed_in_sees_only_the_sign_in_page(open_page, trained_run):
    for page in (None, "runs", "train", "predict"):
        at = open_page(page, runs_dir=trained_run.parent, settings=_password_settings())
        assert not at.exception and [s.value for s in at.subheader] == ["Sign in"]
        assert not at.dataframe and not at.sidebar.selectbox and "runs_edit_delete" not in _buttons(at)


def test_a_viewer_cannot_launch_or_delete_and_an_operator_can(open_page, trained_run):
    at = _sign_in(open_page("runs", runs_dir=trained_run.parent, settings=_password_settings()), "bob", "bob-pw")
    assert not at.exception and any("bob (viewer)" in c.value for c in at.sidebar.caption)
    assert at.title[0].value == "Runs" and at.dataframe  # viewers look...
    assert not {"runs_edit_delete", "runs_edit_save"} & _buttons(at)  # ...and have no button to change anything
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not among a viewer's pages
        at.switch_page("views/train.py")
    at = _sign_in(open_page("runs", runs_dir=trained_run.parent, settings=_password_settings()), "alice", "alice-pw")
    assert {"runs_edit_delete", "runs_edit_save"} <= _buttons(at)
    at.switch_page("views/train.py").run()
    assert not at.exception and at.title[0].value == "Train"
    at.button(key="sign_out").click().run()
    assert [s.value for s in at.subheader] == ["Sign in"]


def test_wrong_passwords_are_refused_then_braked(open_page, tmp_path):
    at = open_page(runs_dir=tmp_path, settings=_password_settings())
    for _ in range(5):
        at = _sign_in(at, "alice", "guess")
        assert "did not match" in at.error[0].value
    at = _sign_in(at, "alice", "alice-pw")  # even the right one waits now: guessing is braked
    assert "Too many failed tries" in at.error[0].value and [s.value for s in at.subheader] == ["Sign in"]


def test_the_local_default_asks_for_the_start_token(open_page, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DASHBOARD_TOKEN", "start-token-123")  # what `fer dashboard` made and printed
    at = open_page(runs_dir=tmp_path, settings="")  # the shipped defaults: local, with a token
    assert [s.value for s in at.subheader] == ["Sign in"]
    at.text_input(key="signin_token_value").set_value("start-token-12")
    at = at.button(key="FormSubmitter:signin_token-Sign in").click().run()
    assert "did not match" in at.error[0].value
    at.text_input(key="signin_token_value").set_value("start-token-123")
    at = at.button(key="FormSubmitter:signin_token-Sign in").click().run()
    assert not at.exception and at.title[0].value == "fer-studio"
    assert any("local token (operator)" in c.value for c in at.sidebar.caption)


def test_listening_beyond_this_machine_without_sign_in_serves_nothing(open_page, tmp_path):
    from streamlit import config

    previous = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = open_page(runs_dir=tmp_path)  # no sign-in configured
        assert "serves nothing" in at.error[0].value and not at.title
    finally:
        config.set_option("server.address", previous)


def test_the_sidebar_offers_only_the_servers_folders(open_page, trained_run, small_folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    forged = {"runs_dir": str(elsewhere), "data_path": "/etc"}  # what a visitor might put in the session
    at = open_page("runs", runs_dir=trained_run.parent, data_path=small_folder, state=forged)
    runs_box, data_box = at.sidebar.selectbox(key="runs_dir"), at.sidebar.selectbox(key="data_path")
    assert runs_box.options == [str(trained_run.parent)] and runs_box.value == str(trained_run.parent)
    assert data_box.options == [str(small_folder)] and data_box.value == str(small_folder)
    assert not at.sidebar.text_input  # nothing to type a path into


def test_names_show_as_text_and_a_source_never_shows_a_files_contents(open_page, trained_run, small_folder,
                                                                       tmp_path):
    run = create_run(read_config(trained_run), tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["name"] = "![pixel](http://tracker.example/p.png) **loud**"  # written before names were checked
    (run / "config.json").write_text(json.dumps(config))
    write_status(run, "failed", error="RuntimeError: [click](http://evil.example)")
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    assert any("![pixel](http://tracker.example/p.png)" in t.value for t in at.text)  # as text, verbatim
    markdown = [m.value for m in [*at.markdown, *at.error, *at.caption, *at.warning, *at.info]]
    assert not any("](http" in m for m in markdown), markdown  # never a live link or image
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    at = open_page(data_path=passwd, runs_dir=tmp_path)
    assert not at.exception and all("root:x" not in w.value for w in at.warning)


def test_fer_dashboard_refuses_to_expose_without_sign_in_and_hashes_secrets(tmp_path, monkeypatch, capsys):
    import io

    from fer.cli.main import main

    monkeypatch.setenv("FER_SETTINGS", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    assert "configure sign-in first" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("lab-password\n"))
    assert main(["dashboard", "--hash-password"]) == 0
    assert verify_secret("lab-password", capsys.readouterr().out.strip())


@pytest.mark.slow
def test_the_dashboard_started_as_shipped_listens_on_127_0_0_1_only(tmp_path):
    import subprocess
    import sys
    import urllib.request

    import psutil

    root = Path(__file__).resolve().parents[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "FER_SETTINGS"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", f"--server.port={port}"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}  # not *:8501, not :::8501
    finally:
        proc.terminate()
        proc.wait(timeout=20)
