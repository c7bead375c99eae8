"""Harness for the desktop app's end-to-end tests. Runs inside
`scripts/desktop-session.sh` (Xvfb, a D-Bus session bus, dunst). Each test gets the real
app, started by tauri-driver through WebKitWebDriver and driven with Selenium, with its
own data directory and a config that runs the pinned `server-filesystem`. The D-Bus
traffic to the notification server is recorded with dbus-monitor, so tests can see
exactly what was posted. Waits are on conditions with deadlines, never bare sleeps."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

def _relay_harness():
    """The relay tests' helpers (MCP client, waits), loaded under their own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("relay_harness", ROOT / "tests" / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_h = _relay_harness()
connect, start_listening, text_of, until, wait_for = (_h.connect, _h.start_listening, _h.text_of, _h.until,
                                                      _h.wait_for)

BIN = _h.BIN  # COUNTERSIGN_BIN, as the relay tests
APP = Path(os.environ.get("COUNTERSIGN_APP", ROOT / "target" / "debug" / "countersign-app"))
NODE_BIN = ROOT / "fixtures" / "node_modules" / ".bin"
OUT = Path(os.environ.get("COUNTERSIGN_DESKTOP_OUT", ROOT / "target" / "desktop-e2e"))
TAURI_DRIVER = shutil.which("tauri-driver") or str(Path.home() / ".cargo" / "bin" / "tauri-driver")
APPROVAL_TIMEOUT = 8


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def fresh_figures():
    """Each run reports its own figures."""
    (OUT / "figures.json").unlink(missing_ok=True)


class App(_h.CountersignCli):
    """The running desktop app, its WebDriver session and what it wrote."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.files = tmp / "files"
        self.files.mkdir()
        self.config = tmp / "config.toml"
        self.config.write_text(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n"
            f"approval_timeout_secs = {APPROVAL_TIMEOUT}\n"
            "[servers.fs]\n"
            f"command = \"{NODE_BIN / 'mcp-server-filesystem'}\"\n"
            f"args = [\"{self.files}\"]\ntrusted = true\n"
        )
        self.env = {**os.environ, "COUNTERSIGN_HOME": str(self.home), "COUNTERSIGN_CONFIG": str(self.config),
                    "COUNTERSIGN_TEST_OS_MANAGED_DIR": str(tmp / "managed"), "COUNTERSIGN_MANAGED_DIR": str(tmp / "managed"),
                    "COUNTERSIGN_LOG": "info"}
        self.log_path = tmp / "app.log"
        self.bus_log = tmp / "notifications.log"

    def start(self) -> "App":
        from selenium import webdriver
        from selenium.webdriver.common.options import ArgOptions

        self.monitor = subprocess.Popen(
            ["dbus-monitor", "--session", "interface='org.freedesktop.Notifications'"],
            stdout=open(self.bus_log, "wb"), stderr=subprocess.DEVNULL)
        self.log = open(self.log_path, "wb")

        def driver(ports):
            # Its own process group: the driver, WebKitWebDriver and the app end together.
            # The second port is WebKitWebDriver's own, never shared with another run.
            return subprocess.Popen([TAURI_DRIVER, "--port", str(ports[0]), "--native-port", str(ports[1])],
                                    env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        self.driver_proc, (port, _native) = start_listening(driver, ports=2, what="tauri-driver and WebKitWebDriver")
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": str(APP)})

        def session():
            # WebKitWebDriver can drop the very first connection while it settles.
            try:
                return webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
            except Exception as e:  # noqa: BLE001  (retried until the deadline, then reported)
                self.session_error = e
                return None
        self.driver = wait_for(session, timeout=60, what="a WebDriver session with the app")
        runtime = self.home / "gateway.json"
        info = wait_for(lambda: runtime.exists() and json.loads(runtime.read_text()), timeout=60,
                        what="the app's gateway to listen")
        self.addr = info["listen"]
        self.token = self.cli("token", "create", "e2e").stdout.strip()
        return self

    # The relay tests' `connect` expects these.
    def url(self, server: str | None = None) -> str:
        return f"http://{self.addr}/mcp" + (f"/{server}" if server else "")


    def app_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def posted(self) -> list[dict]:
        """Notify calls seen on the bus: summary, body and action labels of each."""
        calls = []
        for block in self.bus_log.read_text(errors="replace").split("method call")[1:]:
            if "member=Notify" not in block.splitlines()[0]:
                continue
            strings = re.findall(r'string "((?:[^"\\]|\\.)*)"', block)
            # app name, icon, summary, body, then the actions as key/label pairs
            calls.append({"app": strings[0], "summary": strings[2], "body": strings[3], "rest": strings[4:]})
        return calls

    def choose(self, label: str):
        """Picks an action of the newest notification through dunst's context menu."""
        (Path(os.environ["XDG_RUNTIME_DIR"]) / "choice").write_text(label)
        subprocess.run(["dunstctl", "context"], check=True, timeout=10)

    def screenshot(self, name: str):
        OUT.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(OUT / f"{name}.png"))

    def latencies(self) -> list[float]:
        return [float(m) for m in re.findall(r"latency_ms=([0-9.]+)", self.app_log())]

    def stop(self):
        import threading

        # A WebDriver session whose window is hidden may never answer `quit`; it gets a
        # few seconds, then the whole process group goes.
        quitter = threading.Thread(target=self._quit, daemon=True)
        quitter.start()
        quitter.join(10)
        try:
            os.killpg(self.driver_proc.pid, signal.SIGTERM)
            self.driver_proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.driver_proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.monitor.terminate()
        self.monitor.wait(10)
        subprocess.run(["dunstctl", "close-all"], timeout=10)
        self.log.close()

    def _quit(self):
        try:
            self.driver.quit()
        except Exception:
            pass


@pytest.fixture
def app(tmp_path):
    a = App(tmp_path).start()
    yield a
    a.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(a.log_path, OUT / f"{os.environ.get('PYTEST_CURRENT_TEST', 'test').split(':')[-1].split(' ')[0]}.log")
