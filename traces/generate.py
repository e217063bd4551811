#!/usr/bin/env python3
"""Regenerates the load traces of `shoal simulate` (python3, standard library only).

    python3 traces/generate.py            # writes every traces/*.csv

business-day.csv and spiky.csv: load is in requests per second of a service whose replica
serves about 100 of them at 100% utilization, so with `shoal simulate --capacity 100` the peaks
need about 6 replicas at the threshold policy's 75% (about 7-8 at the target policy's 60%),
within examples/autoscale.yaml's max_replicas 8.

flash-crowd.csv, sawtooth.csv, slow-ramp.csv, noisy-double-peak.csv: load is in replicas'
worth (one load unit is what one replica serves at 100%): simulate them with `--capacity 1`.
They are the adversarial cases of BENCHMARKS.md ("Issue 10"): a sudden jump, a load that
invites flapping, a ramp slow enough that every step is small, and two peaks under heavy noise.
Their peaks (4.5, or 4.0 plus noise) need 8 replicas at the HPA reference's 60% target, within
max_replicas 8, as the two traces above are sized for the target policy.

The noise is a fixed formula (a few sines plus an integer hash of the point's index), so the
output is the same on every run; no random numbers are drawn.
"""

import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def jitter(i, seed):
    """Deterministic noise in [-1, 1] from an integer hash of (i, seed)."""
    x = (i * 2654435761 + seed * 40503 + 12345) & 0xFFFFFFFF
    for _ in range(2):
        x ^= x >> 16
        x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    return x / 0xFFFFFFFF * 2.0 - 1.0


def interpolate(keys, x):
    """Cosine interpolation through (x, y) keyframes: smooth, no overshoot."""
    if x <= keys[0][0]:
        return keys[0][1]
    for (x0, y0), (x1, y1) in zip(keys, keys[1:]):
        if x <= x1:
            f = (1 - math.cos(math.pi * (x - x0) / (x1 - x0))) / 2
            return y0 + (y1 - y0) * f
    return keys[-1][1]


# Hour of the day -> requests per second, before noise.
BUSINESS_DAY = [
    (8.00, 30),   # quiet start
    (8.50, 45),
    (9.00, 110),  # morning ramp
    (9.50, 240),
    (10.00, 340),
    (10.50, 385),
    (11.00, 400),  # late-morning peak
    (11.50, 390),
    (12.00, 300),  # lunch dip
    (12.33, 210),
    (12.67, 205),
    (13.00, 270),
    (13.50, 330),  # afternoon plateau
    (14.00, 340),
    (15.00, 335),
    (15.50, 330),
    (16.00, 300),  # evening decline
    (16.50, 230),
    (17.00, 150),
    (17.50, 85),
    (18.00, 40),
]


def business_day():
    """08:00-18:00 as seconds 0..36000, a point every 60 s."""
    rows = []
    for i, t in enumerate(range(0, 10 * 3600 + 1, 60)):
        base = interpolate(BUSINESS_DAY, 8 + t / 3600)
        wobble = 0.04 * math.sin(2 * math.pi * t / 1380 + 0.7) + 0.025 * math.sin(
            2 * math.pi * t / 517 + 2.1
        )
        load = base * (1 + wobble + 0.035 * jitter(i, 1))
        rows.append((t, max(0.0, load)))
    return rows


# (start minute, length in minutes, height in requests per second above the base)
SPIKES = [
    (18, 1, 300),
    (41, 3, 370),
    (67, 2, 250),
    (95, 5, 360),
    (128, 1, 380),
    (139, 4, 290),
    (163, 2, 340),
]


def spike(t):
    """Trapezoids: 15 s rise, plateau, 30 s fall; the whole spike lasts its length."""
    total = 0.0
    for start, length, height in SPIKES:
        a, b = start * 60, (start + length) * 60
        if a <= t < a + 15:
            total += height * (t - a + 15) / 30  # half height at the first point
        elif a + 15 <= t < b - 30:
            total += height
        elif b - 30 <= t < b:
            total += height * (b - t) / 30
    return total


def spiky():
    """About 3 hours, a point every 15 s: a low base with short sharp spikes."""
    rows = []
    for i, t in enumerate(range(0, 3 * 3600 + 1, 15)):
        base = 50 + 10 * math.sin(2 * math.pi * t / 2700) + 2.5 * jitter(i, 2)
        spike_load = spike(t)
        load = base + spike_load * (1 + 0.04 * jitter(i, 3))
        rows.append((t, max(0.0, load)))
    return rows


def flash_crowd():
    """One hour, a point every 5 s: 0.5 replicas' worth, then at 10:00 a jump to 4.5 for
    20 minutes (a link on a busy site), then back."""
    rows = []
    for i, t in enumerate(range(0, 3600 + 1, 5)):
        base = 0.5 + 0.05 * jitter(i, 4)
        if 600 <= t < 1800:
            base = 4.5 * (1 + 0.03 * jitter(i, 5))
        rows.append((t, max(0.0, base)))
    return rows


def sawtooth():
    """Two hours, a point every 5 s: a ramp from 0.5 to 4.5 over 8 minutes, a drop back to
    0.5, repeated. Each drop tempts a policy to scale down shortly before the next ramp needs
    the replicas again."""
    rows = []
    period = 480
    for i, t in enumerate(range(0, 120 * 60 + 1, 5)):
        phase = (t % period) / period
        load = 0.5 + 4.0 * phase
        rows.append((t, load * (1 + 0.02 * jitter(i, 6))))
    return rows


def slow_ramp():
    """Four hours, a point every 30 s: from 0.5 up to 4.5 over three hours, then down to 0.5
    over the last hour."""
    rows = []
    for i, t in enumerate(range(0, 4 * 3600 + 1, 30)):
        if t <= 3 * 3600:
            base = 0.5 + 4.0 * t / (3 * 3600)
        else:
            base = 4.5 - 4.0 * (t - 3 * 3600) / 3600
        rows.append((t, max(0.0, base * (1 + 0.02 * jitter(i, 7)))))
    return rows


DOUBLE_PEAK = [(0.0, 0.6), (0.5, 0.8), (1.25, 3.6), (1.75, 3.4), (2.25, 1.4), (2.75, 1.2),
               (3.5, 4.0), (4.0, 3.8), (4.75, 1.0), (5.0, 0.7)]


def noisy_double_peak():
    """Five hours, a point every 10 s: two peaks (3.6 and 4.0 replicas' worth) under heavy
    noise (about ±15%, changing at every point)."""
    rows = []
    for i, t in enumerate(range(0, 5 * 3600 + 1, 10)):
        base = interpolate(DOUBLE_PEAK, t / 3600)
        noise = 0.12 * jitter(i, 8) + 0.04 * math.sin(2 * math.pi * t / 300)
        rows.append((t, max(0.0, base * (1 + noise))))
    return rows


def write(name, comment, rows):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# Generated by traces/generate.py; edit that, not this file.\n")
        for line in comment:
            f.write(f"# {line}\n")
        f.write("time,load\n")
        for t, load in rows:
            f.write(f"{t},{load:.1f}\n")
    print(f"{path}: {len(rows)} points, peak {max(l for _, l in rows):.1f}")


def main():
    write(
        "business-day.csv",
        [
            "A business day, 08:00-18:00, as seconds from 0 (a point every 60 s); requests/s.",
            "Quiet start, morning ramp, late-morning peak, lunch dip 12:00-13:00,",
            "afternoon plateau, evening decline.",
        ],
        business_day(),
    )
    write(
        "spiky.csv",
        [
            "Three hours of a low base with short sharp spikes (1-5 minutes; a point every 15 s);",
            "requests/s.",
        ],
        spiky(),
    )
    write(
        "flash-crowd.csv",
        [
            "A flash crowd: 0.5 replicas' worth, 4.5 from 10:00 to 30:00, then 0.5 again",
            "(a point every 5 s). Load unit: one replica at 100% (--capacity 1).",
        ],
        flash_crowd(),
    )
    write(
        "sawtooth.csv",
        [
            "A sawtooth that invites flapping: 0.5 -> 4.5 over 8 minutes, back to 0.5, for 2 hours",
            "(a point every 5 s). Load unit: one replica at 100% (--capacity 1).",
        ],
        sawtooth(),
    )
    write(
        "slow-ramp.csv",
        [
            "A slow ramp: 0.5 -> 4.5 over three hours, back to 0.5 over one (a point every 30 s).",
            "Load unit: one replica at 100% (--capacity 1).",
        ],
        slow_ramp(),
    )
    write(
        "noisy-double-peak.csv",
        [
            "Two peaks (3.6 and 4.0) under about ±15% noise over five hours (a point every 10 s).",
            "Load unit: one replica at 100% (--capacity 1).",
        ],
        noisy_double_peak(),
    )


if __name__ == "__main__":
    main()
