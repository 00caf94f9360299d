"""The service shell: optional subsystems, start/stop order, health, TLS, defaults."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from callcenter import app as app_module
from callcenter.app import Acd, import_optional
from callcenter.config import parse_config

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "callcenter.yaml"


def _config(state_dir: Path, **acd):
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    raw["acd"]["state_dir"] = str(state_dir)
    raw["acd"].update(acd)
    return parse_config(raw, env={})


@pytest.fixture
def fake_pkg(tmp_path, monkeypatch):
    """A package ``ccfake`` with subsystem modules that record what happens to them."""
    pkg = tmp_path / "ccfake"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("EVENTS = []\nPENDING = {}\n")
    sub = textwrap.dedent("""
        from twisted.internet import defer
        import ccfake
        class Sub:
            def __init__(self, acd):
                self.listening = [("{name}", "tcp://127.0.0.1:1/{name}")]
            def start(self):
                ccfake.EVENTS.append("start {name}")
                {start_result}
            def stop(self):
                ccfake.EVENTS.append("stop {name}")
                {stop_result}
        def make_subsystem(acd):
            return Sub(acd)
    """)
    for name, start_result, stop_result in (
        ("first", "return None", "return None"),
        ("second", "return None", "return defer.Deferred()  # never fires"),
        ("standby", "return defer.Deferred()  # waits for a lease that never comes", "return None"),
    ):
        (pkg / f"{name}.py").write_text(sub.format(name=name, start_result=start_result, stop_result=stop_result))
    (pkg / "broken.py").write_text("import ccfake_no_such_dependency\n")
    (pkg / "raises.py").write_text("raise RuntimeError('bug at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    import sys

    for name in [m for m in sys.modules if m == "ccfake" or m.startswith("ccfake.")]:
        del sys.modules[name]


def test_import_optional_skips_only_absent_modules(fake_pkg):
    assert import_optional("ccfake.absent") is None
    assert import_optional("ccfake_absent_package.service") is None
    assert import_optional("ccfake.first").make_subsystem
    with pytest.raises(ModuleNotFoundError, match="ccfake_no_such_dependency"):
        import_optional("ccfake.broken")
    with pytest.raises(RuntimeError, match="bug at import"):
        import_optional("ccfake.raises")


def _health(acd) -> tuple[int, bytes]:
    request = DummyRequest([b""])
    body = acd.http_root.children[b"healthz"].render_GET(request)
    return request.responseCode or 200, body


def test_subsystems_start_in_order_and_stop_in_reverse_within_budget(fake_pkg, tmp_path, monkeypatch):
    import ccfake

    monkeypatch.setattr(app_module, "SUBSYSTEM_MODULES", ("ccfake.first", "ccfake.absent", "ccfake.second"))
    clock = MemoryReactorClock()
    acd = Acd(_config(tmp_path / "state"), clock)
    assert _health(acd)[0] == 503

    started = acd.start()
    assert started.called and not isinstance(started.result, Exception)
    assert ccfake.EVENTS == ["start first", "start second"]
    assert ("first", "tcp://127.0.0.1:1/first") in acd.listening
    assert [label for label, _ in acd.listening][:3] == ["admin HTTP", "/healthz", "/metrics"]
    code, body = _health(acd)
    assert (code, json.loads(body)["status"]) == (200, "ok")  # plus dev_mode: the example config is a dev one

    stopped = acd.stop()
    assert ccfake.EVENTS[-1] == "stop second"  # second's stop never fires ...
    assert _health(acd)[0] == 503
    assert not stopped.called
    clock.advance(app_module.SUBSYSTEM_STOP_MAX_S)  # ... so its budget runs out, and first is stopped
    assert ccfake.EVENTS[-1] == "stop first"
    assert stopped.called
    assert acd.phase == "stopped"


def test_a_subsystem_still_starting_is_stopped_at_shutdown(fake_pkg, tmp_path, monkeypatch):
    import ccfake

    monkeypatch.setattr(app_module, "SUBSYSTEM_MODULES", ("ccfake.first", "ccfake.standby", "ccfake.second"))
    acd = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    started = acd.start()
    assert ccfake.EVENTS == ["start first", "start standby"]
    assert acd.health_status() == "starting"

    stopped = acd.stop()
    assert stopped.called
    assert ccfake.EVENTS[2:] == ["stop standby", "stop first"]
    assert "start second" not in ccfake.EVENTS and not started.called


def test_a_failing_subsystem_start_fails_the_start(fake_pkg, tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "SUBSYSTEM_MODULES", ("ccfake.first", "ccfake.raises"))
    acd = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    failures = []
    acd.start().addErrback(failures.append)
    assert failures and failures[0].check(RuntimeError)
    assert acd.health_status() != "ok"
    acd.stop()


def test_default_database_is_sqlite_under_state_dir(tmp_path):
    acd = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    assert acd.database_url == f"sqlite:///{tmp_path / 'state' / 'callcenter.db'}"
    configured = Acd(_config(tmp_path / "state", database_url="sqlite:////srv/x.db"), MemoryReactorClock())
    assert configured.database_url == "sqlite:////srv/x.db"


def test_dev_tls_certificate_is_generated_once_for_localhost(tmp_path):
    acd = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    assert acd.tls_context_factory().getContext() is not None
    cert_file = tmp_path / "state" / "tls" / "dev-cert.pem"
    first = cert_file.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]

    again = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    again.tls_context_factory()
    assert cert_file.read_bytes() == first

    configured = Acd(_config(tmp_path / "other", tls={"cert": str(cert_file),
                                                      "key": str(cert_file.with_name("dev-key.pem"))}),
                     MemoryReactorClock())
    assert configured.tls_context_factory().getContext() is not None
    assert not (tmp_path / "other" / "tls").exists()


def test_the_lock_refuses_a_second_acd_on_the_same_state_dir(tmp_path):
    from callcenter.pidlock import AlreadyRunning

    first = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    first.lock()
    second = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    with pytest.raises(AlreadyRunning, match="already running"):
        second.lock()
    first.close()
    second.lock()
    second.close()


def test_stop_is_idempotent(tmp_path):
    acd = Acd(_config(tmp_path / "state"), MemoryReactorClock())
    d1, d2 = acd.stop(), acd.stop()
    assert d1 is d2
    assert isinstance(d1, defer.Deferred)
