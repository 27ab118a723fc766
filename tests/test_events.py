"""Events to frames: integration against counts written out per event, both split modes, resize, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2tdpt.data.events import resize_frames, sensor_size_of, to_frames

DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])


def make_events(n: int, w: int, h: int, seed: int = 0, shuffled: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=DTYPE)
    ev["t"] = np.sort(rng.integers(0, 10_000, n))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)
    return ev[rng.permutation(n)] if shuffled else ev


def manual_frames(ev: np.ndarray, w: int, h: int, n_frames: int, split_by: str) -> np.ndarray:
    """Each event added to its frame one by one, the frame chosen from the definition of the split."""
    ev = ev[np.argsort(ev["t"], kind="stable")]
    n, frames = len(ev), np.zeros((n_frames, 2, h, w), dtype=np.float32)
    t0, t1 = ev["t"][0], ev["t"][-1]
    for k, e in enumerate(ev):
        if split_by == "number":  # floor(n / T) per slice, the remainder in the last
            i = min(k // (n // n_frames), n_frames - 1)
        else:  # t0 + i·Δ <= t < t0 + (i + 1)·Δ, the last slice closed
            i = next(j for j in range(n_frames) if j == n_frames - 1 or e["t"] < t0 + (t1 - t0) * (j + 1) / n_frames)
        frames[i, 1 if e["p"] > 0 else 0, e["y"], e["x"]] += 1
    return frames


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("n, n_frames", [(103, 4), (1000, 7), (16, 16)])
def test_frames_equal_a_count_per_event(split_by, n, n_frames):
    w, h = 9, 6
    ev = make_events(n, w, h, seed=n, shuffled=True)
    frames = to_frames(ev, (w, h), n_frames, split_by)
    assert frames.shape == (n_frames, 2, h, w) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, manual_frames(ev, w, h, n_frames, split_by))
    assert frames.sum() == n and frames[:, 0].sum() > 0 and frames[:, 1].sum() > 0  # both polarities present


def test_number_split_puts_the_remainder_in_the_last_frame_and_time_split_follows_the_clock():
    ev = np.zeros(10, dtype=DTYPE)
    ev["t"] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 100]  # one late event
    by_number = to_frames(ev, (1, 1), 3, "number").sum(axis=(1, 2, 3))
    by_time = to_frames(ev, (1, 1), 3, "time").sum(axis=(1, 2, 3))
    assert by_number.tolist() == [3, 3, 4]
    assert by_time.tolist() == [9, 0, 1]  # slices [0, 33.3), [33.3, 66.7), [66.7, 100]


def test_polarity_as_minus_one_plus_one_counts_like_zero_one():
    ev = make_events(200, 5, 5)
    signed = ev.copy()
    signed["p"] = np.where(ev["p"] > 0, 1, -1)
    np.testing.assert_array_equal(to_frames(ev, (5, 5), 4), to_frames(signed, (5, 5), 4))


def test_area_resize_averages_blocks():
    frames = to_frames(make_events(500, 8, 8), (8, 8), 2)
    small = resize_frames(frames, 4)
    # written out: mean of each 2 × 2 block
    expected = frames.reshape(2, 2, 4, 2, 4, 2).mean(axis=(3, 5))
    torch.testing.assert_close(small, torch.from_numpy(expected))
    assert resize_frames(frames, (8, 8)).shape == (2, 2, 8, 8)


def test_sensor_size_and_bad_input_are_named():
    ev = make_events(50, 7, 3)
    assert sensor_size_of(ev) <= (7, 3)
    with pytest.raises(ValueError, match="x coordinates span 0..6 but the sensor is 4 × 3"):
        to_frames(ev, (4, 3), 2)
    with pytest.raises(ValueError, match=r"fields \('t', 'x', 'y', 'p'\).*missing \['p'\]"):
        to_frames(np.zeros(3, dtype=[("t", int), ("x", int), ("y", int)]), (4, 3), 2)
    with pytest.raises(ValueError, match="split_by must be one of"):
        to_frames(ev, (7, 3), 2, "count")
    with pytest.raises(ValueError, match="at least 1"):
        to_frames(ev, (7, 3), 0)


def test_emulated_events_follow_the_contrast_threshold_by_hand():
    from s2tdpt.data.emulate import events_from_log_intensity

    # one pixel, log intensity 0 → 0.5 → 0.1 → 0.1, C = 0.2: step 1 two ON events (R 0 → 0.4), step 2 one OFF
    # event (0.1 − 0.4 = −0.3: R → 0.2), step 3 none (|0.1 − 0.2| < C)
    ev = events_from_log_intensity(np.array([0.0, 0.5, 0.1, 0.1]).reshape(4, 1, 1), threshold=0.2, dt=100)
    assert ev["p"].tolist() == [1, 1, 0] and ev["t"].tolist() == [100, 150, 200]
    assert ev["x"].tolist() == [0, 0, 0] and ev["y"].tolist() == [0, 0, 0]


def test_a_moving_edge_emits_on_where_light_arrives_and_off_where_it_leaves():
    from s2tdpt.data.emulate import emulate_events

    flat = emulate_events(np.full((8, 8), 0.5))
    assert len(flat) == 0  # nothing moves in a uniform image
    img = np.zeros((8, 8), dtype=np.uint8)
    img[:, 4:] = 255  # bright right half; the first saccade moves the image right and down by up to 2, 1 pixels
    ev = emulate_events(img, amplitude=2.0)
    assert len(ev) > 0 and np.all(np.diff(ev["t"]) >= 0)
    assert ev["x"].max() < 8 and ev["y"].max() < 8 and set(np.unique(ev["p"])) == {0, 1}
    first = ev[ev["t"] < 11 * 1000]  # the first saccade (views 1..10): the edge moves right: pixels darken
    assert set(first["p"].tolist()) == {0} and set(first["x"].tolist()) <= {4, 5}
    np.testing.assert_array_equal(ev, emulate_events(img.astype(np.float64) / 255.0))  # uint8 = float input
    frames = to_frames(ev, (8, 8), 4)
    assert frames[:, 0].sum() > 0 and frames[:, 1].sum() > 0
