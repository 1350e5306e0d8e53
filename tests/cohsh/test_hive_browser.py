"""``cohsh hive`` in a real headless browser against the host run mode (issue 21 acceptance 1–3).

Debian's ``chromium`` is driven through its ``chromium-driver`` by selenium. The system is booted in
this process (``root_task.host.start_in_process``: real NineDoor, real worker processes) and the hive
reads it through its 9P listener exactly as ``cohsh hive`` would. The page must: show ``worker-1``
after a spawn from its form, with a heartbeat count that rises within 3 s; show a ctl error with the
SPEC errno text; remove the worker after a kill from its row. A screenshot is kept under
out/test-logs/. The QEMU variant is tests/qemu/test_hive_guest.py.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from cohsh.hive.cli import Hive
from cohsh.pool import Pool, PoolPolicy

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "out" / "test-logs"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")

pytestmark = pytest.mark.promised


def make_browser():
    """A headless Chromium (fresh profile) through the system chromedriver, or a skip naming the tool."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian packages chromium and chromium-driver not installed (toolchain/setup.sh)")
    profile = tempfile.mkdtemp(prefix="hive-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    return browser, profile


def open_hive(browser, hive: Hive) -> None:
    browser.get(hive.url)                          # token once in the URL → cookie → redirect to /
    assert "token=" not in browser.current_url
    wait_for(lambda: browser.find_element("id", "conn").text == "live", 10, "the event stream")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:      # the element may be re-rendered between find and read
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last})")


def beats(browser, wid: str) -> int:
    row = browser.find_element("css selector", f'[data-worker="{wid}"]')
    return int(row.find_element("css selector", ".beats").text)


def drive(browser, hive: Hive, shot: str, spawn_timeout: float = 5.0) -> None:
    """The acceptance walk-through: spawn → appears and beats → ctl error → kill → gone."""
    open_hive(browser, hive)
    ticks = browser.find_element("id", "hb-ticks")
    ticks.clear()
    ticks.send_keys("100000")
    browser.find_element("id", "spawn-heartbeat-btn").click()
    wait_for(lambda: browser.find_elements("css selector", '[data-worker="worker-1"]'), spawn_timeout,
             "worker-1 to appear")
    first_seen = time.monotonic()
    start = beats(browser, "worker-1")
    wait_for(lambda: beats(browser, "worker-1") > start, 3.0, f"worker-1's heartbeat count to rise from {start}")
    assert time.monotonic() - first_seen <= 3.0 + 0.2

    # a ctl error from the page: kill of a worker that is not live → ENOENT with its SPEC text
    field = browser.find_element("id", "kill-worker")
    field.send_keys("worker-99")
    browser.find_element("id", "kill-btn").click()
    status = wait_for(lambda: (lambda el: el if "ENOENT" in el.text else None)(
        browser.find_element("id", "action-status")), 5, "the ctl error")
    assert status.text == "write /queen/ctl: no such file or directory (ENOENT)"
    assert "error" in status.get_attribute("class")

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(LOG_DIR / shot))

    row = browser.find_element("css selector", '[data-worker="worker-1"]')
    row.find_element("css selector", "button.act-kill").click()
    wait_for(lambda: not browser.find_elements("css selector", '[data-worker="worker-1"]'), 5,
             "worker-1 to disappear")
    log = wait_for(lambda: (lambda t: t if "revoked worker-1: killed by queen" in t else None)(
        browser.find_element("id", "log").text), 5, "the kill in /log/queen.log")
    assert "spawned worker-1 ticks=100000" in log and "killed worker-1" in log


@pytest.fixture(scope="module")
def host_hive():
    from root_task.host import start_in_process

    system = start_in_process(str(REPO / "configs" / "root_task.toml"))

    def make_pool(control: int) -> Pool:
        return Pool("127.0.0.1", system.ninep_port, secret="bootstrap", env={},
                    policy=PoolPolicy(control=control, telemetry=1))

    hive = Hive(make_pool, "127.0.0.1", 0).start()
    yield hive, system
    hive.stop()
    system.stop()


def test_page_spawns_shows_beats_reports_errno_and_kills_on_the_host(host_hive):
    hive, _ = host_hive
    browser, profile = make_browser()
    try:
        drive(browser, hive, "hive-host.png")
        assert (LOG_DIR / "hive-host.png").stat().st_size > 1000
        # the ingest plots and the GPU panel are on the page (the shipped IR's two mock GPUs)
        assert len(browser.find_elements("css selector", "#plots .uplot")) == 4
        gpus = browser.find_element("id", "gpus").text
        assert "GPU-0 Mock 4090" in gpus and "GPU-1 Mock 4060" in gpus
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_browser_without_the_token_gets_403_and_no_page(host_hive):
    hive, _ = host_hive
    browser, profile = make_browser()
    try:
        browser.get(f"http://127.0.0.1:{hive.port}/")
        assert "Cohesix hive" not in browser.page_source
        assert browser.find_elements("id", "workers") == []
        browser.get(f"http://127.0.0.1:{hive.port}/?token=wrong")
        assert browser.find_elements("id", "workers") == []
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def gpu_sharded_ir(dest: Path) -> Path:
    """The shipped IR with the mock GPUs (SPEC §9.1) and width-2 sharding without the legacy alias."""
    import re

    text = (REPO / "configs" / "root_task.toml").read_text()
    text = re.sub(r'(\[gpu\][^\[]*?)backend = "none"', r'\1backend = "mock"', text, flags=re.S)
    text = re.sub(r"(\[sharding\][^\[]*?)enable = false", r"\1enable = true", text, flags=re.S)
    text = re.sub(r"legacy_worker_alias = true", "legacy_worker_alias = false", text)
    ir = dest / "root_task.toml"
    ir.write_text(text)
    return ir


def test_gpu_panel_and_shard_groups_on_a_sharded_gpu_system(tmp_path):
    """GPU info/lease/last job from /gpu/<G>/*, workers grouped by their §8 label (/shard only)."""
    from root_task.host import start_in_process

    system = start_in_process(str(gpu_sharded_ir(tmp_path)))
    hive = Hive(lambda control: Pool("127.0.0.1", system.ninep_port, secret="bootstrap", env={},
                                     policy=PoolPolicy(control=control, telemetry=1)), "127.0.0.1", 0).start()
    browser, profile = make_browser()
    try:
        open_hive(browser, hive)
        wait_for(lambda: "Mock 4090" in browser.find_element("id", "gpus").text, 5, "the GPU panel")
        assert "lease: none" in browser.find_element("css selector", '[data-gpu="GPU-1"]').text
        browser.find_element("id", "spawn-heartbeat-btn").click()
        wait_for(lambda: browser.find_elements("css selector", '[data-worker="worker-1"]'), 5, "worker-1")
        browser.find_element("id", "spawn-gpu-btn").click()           # GPU-0, 1024 MiB, 1 stream, 120 s
        gpu0 = wait_for(lambda: (lambda t: t if "last job: " in t and "OK" in t else None)(
            browser.find_element("css selector", '[data-gpu="GPU-0"]').text), 10, "GPU-0's lease and job")
        assert "lease: ACTIVE worker-2 mem=1024 streams=1" in gpu0
        browser.find_element("id", "spawn-gpu-btn").click()           # the GPU is leased: EBUSY
        wait_for(lambda: browser.find_element("id", "action-status").text
                 == "write /queen/ctl: device or resource busy (EBUSY)", 5, "the EBUSY text")
        groups = [el.text for el in browser.find_elements("css selector", "#workers .row.group")]
        assert groups == ["shard 13 (1)", "shard 1c (1)"]                # SPEC §8 vectors of worker-1, -2
        assert "(gpu GPU-0)" in browser.find_element("css selector", '[data-worker="worker-2"]').text
        browser.save_screenshot(str(LOG_DIR / "hive-gpu-sharded.png"))
        browser.find_element("css selector", '[data-worker="worker-2"] button.act-kill').click()
        wait_for(lambda: "RELEASED" in browser.find_element("css selector", '[data-gpu="GPU-0"]').text, 5,
                 "the lease to end")
        assert not browser.find_elements("css selector", '[data-worker="worker-2"]')
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        hive.stop()
        system.stop()


def test_a_thousand_workers_are_virtualised_and_keep_updating():
    """1 024 workers (served by a test double of the collector) render as a few dozen DOM rows, the
    last row is reachable by scrolling, and deltas keep landing while the list is large."""
    import json
    import threading

    from cohsh.hive.actions import ActionResult
    from cohsh.hive.collector import Hub
    from cohsh.hive.server import HiveApp, make_server

    hub = Hub()
    workers = [{"id": f"worker-{i}", "group": f"{i % 16:x}", "kind": "heartbeat", "gpu": None, "beats": i,
                "records": i, "rate": 1.0, "last": [f"heartbeat {i}"]} for i in range(1, 1025)]

    def snapshot():
        with hub.cond:
            return hub.version, json.dumps({"v": hub.version, "snapshot": True, "status": "live", "meta": {},
                                            "workers": workers, "series": [], "fields": [], "log": [],
                                            "gpus": [], "count": len(workers)})

    app = HiveApp("tok", snapshot, hub, lambda a: ActionResult(True, "ok"))
    httpd = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    browser, profile = make_browser()
    try:
        browser.get(f"http://127.0.0.1:{httpd.server_address[1]}/?token=tok")
        wait_for(lambda: browser.find_element("id", "worker-count").text == "1024", 10, "1024 workers")
        rows = browser.find_elements("css selector", "#workers .row")
        assert 10 < len(rows) < 100, len(rows)             # virtualised: only the rows in view exist
        top = next(w for w in workers if w["id"] == "worker-16")   # the first row: group "0", lowest id
        for beat in range(2000, 2010):                     # deltas on the big list still land
            with hub.cond:
                hub.publish_locked({"workers": [{**top, "beats": beat}], "removed": []})
        wait_for(lambda: beats(browser, "worker-16") == 2009, 5, "the last delta")
        browser.execute_script("const l = document.getElementById('workers'); l.scrollTop = l.scrollHeight;")
        last_group = max(w["group"] for w in workers)           # rows: groups sorted, ids numeric
        last = max((w for w in workers if w["group"] == last_group), key=lambda w: w["beats"])["id"]
        assert last == "worker-1023"
        wait_for(lambda: browser.find_elements("css selector", f'[data-worker="{last}"]'), 5,
                 f"{last} (the last row) after scrolling")
        assert len(browser.find_elements("css selector", "#workers .row")) < 100
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        app.stopping.set()
        hub.close()
        httpd.shutdown()
        httpd.server_close()
