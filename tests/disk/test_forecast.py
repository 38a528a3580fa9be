"""The robust forecast: jumps and sawtooth neither cause nor hide a fill."""

from __future__ import annotations

import random

import pytest

from nodeguard.disk.forecast import forecast, rate_of

GIB = 1024**3
HOUR = 3600
FLOOR = 100 * 1024**2  # 0.1% of 100 GiB


def series(hours: float, free_at, step: int = 60, noise: float = 0.0, seed: int = 1):
    rng = random.Random(seed)  # noqa: S311
    return [
        (float(t), free_at(t) + rng.gauss(0, noise)) for t in range(0, int(hours * HOUR) + 1, step)
    ]


def test_linear_fill_gives_the_time_to_full() -> None:
    pts = series(6, lambda t: 40 * GIB - t * GIB / HOUR)
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None and fc.seconds_to_full is not None
    assert fc.seconds_to_full == pytest.approx(34 * HOUR, rel=0.01)
    assert fc.rate * HOUR == pytest.approx(GIB, rel=0.01)


def test_a_one_off_delete_does_not_hide_the_fill() -> None:
    pts = series(6, lambda t: 30 * GIB - t * GIB / HOUR + (8 * GIB if t >= 3 * HOUR else 0))
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None and fc.seconds_to_full is not None
    assert fc.rate * HOUR == pytest.approx(GIB, rel=0.02)
    assert len(fc.jumps) == 1 and fc.recurring_rate == 0


def test_an_image_pull_does_not_cause_a_fill() -> None:
    def free(t: float) -> float:
        return 30 * GIB - min(1.0, max(0.0, (t - 3 * HOUR) / 240)) * 10 * GIB

    pts = series(6, free, noise=20 * 1024**2)
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None
    assert fc.seconds_to_full is None or fc.seconds_to_full > 30 * 24 * HOUR
    assert len(fc.jumps) == 1  # four pull steps merged into one event


def test_rotation_sawtooth_reads_as_flat() -> None:
    pts = series(6, lambda t: 20 * GIB - (t % HOUR) * 2 * GIB / HOUR)
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None
    assert abs(fc.rate) * HOUR < 0.2 * GIB
    assert fc.trend_rate * HOUR == pytest.approx(2 * GIB, rel=0.02)  # between the drops


def test_a_sawtooth_that_still_fills_is_seen() -> None:
    pts = series(6, lambda t: 20 * GIB - int(t // HOUR) * 0.5 * GIB - (t % HOUR) * 2 * GIB / HOUR)
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None and fc.seconds_to_full is not None
    assert fc.rate * HOUR == pytest.approx(0.5 * GIB, rel=0.25)


def test_a_daily_rotation_is_learnt_from_the_coarse_history() -> None:
    def free(t: float) -> float:
        return 35 * GIB - ((t - 6 * HOUR) % (24 * HOUR)) * GIB / HOUR

    history = series(72, free, step=600)
    now = 72 * HOUR
    window = [p for p in series(72, free) if p[0] >= now - 6 * HOUR]
    without = forecast(window, now, 6 * HOUR, FLOOR)
    with_history = forecast(window, now, 6 * HOUR, FLOOR, history)
    assert without is not None and without.seconds_to_full is not None  # looks like a fill
    assert with_history is not None
    assert with_history.seconds_to_full is None or with_history.seconds_to_full > 7 * 24 * HOUR


def test_temp_files_written_and_removed_cancel_out() -> None:
    def free(t: float) -> float:
        burst = any(b <= t < b + 1200 for b in (3600, 9000, 14000))
        return 25 * GIB - (3 * GIB if burst else 0)

    pts = series(6, free, noise=50 * 1024**2)
    fc = forecast(pts, pts[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None
    assert fc.seconds_to_full is None or fc.seconds_to_full > 30 * 24 * HOUR


def test_too_little_history_gives_no_forecast() -> None:
    pts = series(0.5, lambda t: 30 * GIB - t * GIB / HOUR)
    assert forecast(pts, pts[-1][0], 6 * HOUR, FLOOR) is None


def test_a_gap_is_not_a_jump() -> None:
    before = series(2, lambda t: 30 * GIB - t * GIB / HOUR)
    after = [(t + 4 * HOUR, v - 4 * GIB) for t, v in series(2, lambda t: 30 * GIB - t * GIB / HOUR)]
    fc = forecast(before + after, after[-1][0], 6 * HOUR, FLOOR)
    assert fc is not None
    assert fc.jumps == ()
    assert fc.rate * HOUR == pytest.approx(GIB, rel=0.02)


def test_consumer_rate_ignores_its_own_rotation_drops() -> None:
    # a log that grows 100 MiB/h and whose rotated files kubelet deletes: bounded
    pts = series(6, lambda t: 400 * 1024**2 + (t % HOUR) * 100 * 1024**2 / HOUR, step=300)
    rate = rate_of(pts, pts[-1][0], 6 * HOUR, 1024**2)
    assert rate is not None and abs(rate) * HOUR < 20 * 1024**2
    growing = series(6, lambda t: t * 100 * 1024**2 / HOUR, step=300)
    grow_rate = rate_of(growing, growing[-1][0], 6 * HOUR, 1024**2)
    assert grow_rate is not None and grow_rate * HOUR == pytest.approx(100 * 1024**2, rel=0.01)
