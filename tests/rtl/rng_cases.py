"""Cases for the hardware generator, shared by the Amaranth and cocotb tests.

The references are ``bitprop.model.rng.step_key``, ``draws`` and ``events``.
"""

import numpy as np

from bitprop.model import rng

__all__ = ["generator_cases", "check_sweep"]


def generator_cases(seed, step_width=32, layer_width=8, n=6):
    """Return dicts (seed, step, layer, threshold, words) covering the edge cases.

    Thresholds 0 (never), 65535 (all but a draw of 65535), 1, a random one, and one equal to
    a draw of the sweep (the comparison is strict); seeds 0 and 2^64-1; the largest step and
    layer the ports carry.
    """
    g = np.random.default_rng(seed)
    cases = [
        {"seed": 0, "step": 0, "layer": 0, "threshold": 0},
        {"seed": (1 << 64) - 1, "step": (1 << step_width) - 1,
         "layer": (1 << layer_width) - 1, "threshold": 65535},
        {"seed": 42, "step": 7, "layer": 1, "threshold": 1},
    ]
    while len(cases) < n:
        cases.append({"seed": _bits(g, 64), "step": _bits(g, step_width),
                      "layer": _bits(g, layer_width),
                      "threshold": int(g.integers(0, 65536))})
    for c in cases:
        c["words"] = int(g.integers(5, 24))
    # A threshold equal to one of the sweep's own draws: that draw must not fire.
    last = cases[-1]
    key = rng.step_key(last["seed"], last["step"], last["layer"])
    last["threshold"] = int(rng.draws(key, 4 * last["words"])[3])
    return cases


def _bits(g, width):
    """Return a uniform random integer of ``width`` bits (up to 64)."""
    value = int(g.integers(0, 1 << 32)) << 32 | int(g.integers(0, 1 << 32))
    return value & ((1 << width) - 1)


def check_sweep(case, key, hashes, events):
    """Compare a sweep's key, hash words and 4-bit event words with the model."""
    want_key = rng.step_key(case["seed"], case["step"], case["layer"])
    assert key == want_key, f"key {key:#x} != {want_key:#x} for {case}"
    n = len(hashes)
    draws = rng.draws(want_key, 4 * n)
    got_draws = np.array([(h >> (16 * lane)) & 0xFFFF for h in hashes for lane in range(4)],
                         dtype=np.uint16)
    np.testing.assert_array_equal(got_draws, draws)
    want_events = rng.events(case["seed"], case["step"], case["layer"], 4 * n,
                             case["threshold"])
    got_events = np.array([(e >> lane) & 1 for e in events for lane in range(4)], dtype=bool)
    np.testing.assert_array_equal(got_events, want_events)
