"""``run --once``'s exit code for the alert sinks, one rule an admin can script against
(docs/operations.md, "Exit codes"), each case against a real receiver on loopback:

0  every notification due was delivered, or there was nothing to send
4  not all delivered: kept in the spool, retried by the next run or the daemon
1  notifications dropped (the receiver refused them; retrying cannot help)
2  a sink's configuration is refused (a redirect, a secret file, credentials)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.alerts.components import Received, alertmanager, am_alerts, free_port, receiver
from tests.conftest import run_cli
from tests.daemon.conftest import write_config
from tests.daemon.test_wiring import ALERT, kubelet_journal, wait_for

SPOOL = "alert-spool.json"


def config(tmp_path: Path, url: str, *, match: bool = True, **am: Any) -> Path:
    """An eviction in real journal files (one alert to send) unless ``match`` is off."""
    if match:
        kubelet_journal(tmp_path / "journal")
    alerts = {
        "alertmanager": {"url": url, **am},
        "textfile": None,
        "journald": False,
        "delivery": {"attempts": 1},
    }
    return write_config(tmp_path / "ng.yaml", tmp_path, alerts=alerts)


def once(conf: Path) -> tuple[int, dict[str, Any], str]:
    result = run_cli("-c", conf, "--no-dropins", "run", "--once", "--json")
    return result.code, json.loads(result.out)["parts"]["alerts"], result.err


def spooled(tmp_path: Path) -> int:
    doc = json.loads((tmp_path / "state" / SPOOL).read_text())
    return len(doc["data"]["queues"]["alertmanager"]["items"])


def test_all_delivered_to_a_real_alertmanager_exits_0(tmp_path: Path) -> None:
    with alertmanager(tmp_path / "am") as url:
        code, alerts, err = once(config(tmp_path, url))
        assert code == 0, (alerts, err)
        assert alerts["sent"] == {"alertmanager": 1}
        wait_for(lambda: am_alerts(url, ALERT), 10, "the alert at Alertmanager")


def test_nothing_to_send_exits_0_even_with_the_receiver_down(tmp_path: Path) -> None:
    code, alerts, err = once(config(tmp_path, f"http://127.0.0.1:{free_port()}", match=False))
    assert code == 0, (alerts, err)
    assert alerts["sent"] == {} and alerts["failed"] == {}


def test_a_receiver_down_or_failing_exits_4_and_keeps_the_alert_spooled(tmp_path: Path) -> None:
    with receiver(received=Received(status=503)) as (url, got):
        code, alerts, err = once(config(tmp_path, url))
    assert code == 4, (alerts, err)
    assert alerts["kept"] == ["alertmanager"] and alerts["dropped"] == [], alerts
    assert len(got.bodies) == 1 and spooled(tmp_path) == 1
    # Later runs exit 4 while it waits out its backoff; the one that delivers it (to a
    # real Alertmanager now) exits 0.
    with alertmanager(tmp_path / "am") as am_url:
        conf = config(tmp_path, am_url, match=False)
        codes = runs_until_sent(conf)
        assert set(codes[:-1]) <= {4} and codes[-1] == 0, codes
        wait_for(lambda: am_alerts(am_url, ALERT), 10, "the spooled alert at Alertmanager")
    assert spooled(tmp_path) == 0


def runs_until_sent(conf: Path) -> list[int]:
    codes = []
    for _ in range(40):
        code, alerts, err = once(conf)
        codes.append(code)
        if alerts["sent"]:
            return codes
        assert alerts["queued"] == {"alertmanager": 1}, (alerts, err)
        time.sleep(0.25)
    raise AssertionError(f"never sent: {codes}")


def test_a_refused_request_exits_1_and_drops_the_notifications(tmp_path: Path) -> None:
    with receiver(received=Received(status=400)) as (url, _):
        code, alerts, err = once(config(tmp_path, url))
    assert code == 1, (alerts, err)
    assert alerts["dropped"] == ["alertmanager"] and alerts["refused"] == [], alerts
    assert spooled(tmp_path) == 0


def test_a_redirect_is_a_configuration_refusal_and_exits_2(tmp_path: Path) -> None:
    with receiver(received=Received(status=302)) as (url, _):
        code, alerts, err = once(config(tmp_path, url))
    assert code == 2, (alerts, err)
    assert alerts["refused"] == ["alertmanager"], alerts
    assert "redirect to" in alerts["failed"]["alertmanager"]


def test_a_refused_secret_file_exits_2_and_keeps_the_alert_for_when_it_is_fixed(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)  # readable by others: refused
    with alertmanager(tmp_path / "am") as url:
        conf = config(tmp_path, url, token_file=str(token))
        code, alerts, err = once(conf)
        assert code == 2, (alerts, err)
        assert alerts["refused"] == ["alertmanager"] and alerts["kept"] == ["alertmanager"]
        assert "refused" in alerts["failed"]["alertmanager"]
        assert am_alerts(url, ALERT) == [] and spooled(tmp_path) == 1
        token.chmod(0o600)
        codes = runs_until_sent(config(tmp_path, url, match=False, token_file=str(token)))
        assert set(codes[:-1]) <= {4} and codes[-1] == 0, codes
        wait_for(lambda: am_alerts(url, ALERT), 10, "the alert once the secret is fixed")


def test_a_dropped_sink_outranks_a_spooled_one_and_a_failed_part_is_never_hidden() -> None:
    from nodeguard.exitcodes import Exit, worst

    assert worst([Exit.UNDELIVERED, Exit.FAILED]) == Exit.FAILED
    assert worst([Exit.OK, Exit.UNDELIVERED]) == Exit.UNDELIVERED
    assert worst([Exit.USAGE, Exit.UNDELIVERED, Exit.FAILED]) == Exit.USAGE
    assert worst([Exit.LOCKED, Exit.USAGE]) == Exit.LOCKED
    assert worst([]) == Exit.OK
