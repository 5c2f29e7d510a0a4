"""Stimulus and expected results for the RTL blocks, from the golden model.

Shared by the Amaranth-simulator tests (``tests/rtl/test_*.py``) and the cocotb modules
(``tests/rtl/cocotb_*.py``), so both drive identical cycle streams and compare with the same
golden-model values. The expected values always come from ``bitprop.model`` (``bits``,
``ops``); nothing here re-implements them. Every stream is a list of per-cycle dicts of flat
integers (wide ports as one integer, lane ``r`` at bits ``r·width …``), which both simulators
can set directly.
"""

import numpy as np

from bitprop.model import bits, ops


def bools_to_int(bits01):
    """Return the integer whose bit ``i`` is ``bits01[i]`` (little-endian)."""
    packed = np.packbits(np.asarray(bits01, dtype=bool), bitorder="little")
    return int.from_bytes(packed.tobytes(), "little")


def join(values, width):
    """Return lanes ``values`` packed into one integer, lane ``r`` at bit ``r·width``."""
    out = 0
    for r, v in enumerate(values):
        out |= (int(v) & ((1 << width) - 1)) << (r * width)
    return out


def split(value, width, lanes, *, signed=False):
    """Return the ``lanes`` fields of ``width`` bits of ``value`` (two's complement if signed)."""
    out = []
    for r in range(lanes):
        v = (int(value) >> (r * width)) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def _pick_k(rng, simd, k_max):
    special = [1, k_max, min(simd, k_max), max(1, simd - 1), min(simd + 1, k_max)]
    if rng.random() < 0.4:
        return int(rng.choice(special))
    return int(rng.integers(1, k_max + 1))


def _pm1(rng, shape, bias=0.5):
    return np.where(rng.random(shape) < bias, 1, -1).astype(np.int8)


# --------------------------------------------------------------------------------------------
# XnorPopcountArray


def xnor_case(rng, *, pe, simd, max_words):
    """Return one random matrix case: activations, weights, K, threshold and expected z.

    Shapes are random (K not a multiple of SIMD, K < SIMD, K = 1, rows not a multiple of PE),
    thresholds include 0 and the largest representable value; some rows copy the activation
    or its complement (z = ±K), some weight rows are biased to produce ties (z = 0).
    """
    k_max = max_words * simd
    k = _pick_k(rng, simd, k_max)
    rows = int(rng.integers(1, 2 * pe + 2))
    samples = int(rng.integers(1, 3))
    a = _pm1(rng, (samples, k))
    w = _pm1(rng, (rows, k), bias=float(rng.choice([0.5, 0.1, 0.9])))
    if rows > 1:
        w[0] = a[0]
        w[-1] = -a[0]
    t_max = (1 << k_max.bit_length()) - 1
    threshold = int(rng.choice([0, t_max, k, ops.gate_threshold(float(rng.random()), k),
                                int(rng.integers(0, t_max + 1))]))
    z = ops.forward(bits.pack(a), bits.pack(w), k)
    return {"a": a, "w": w, "k": k, "threshold": threshold, "z": z,
            "sign": ops.sign(z), "gate": ops.gate(z, threshold)}


def xnor_stream(case, rng, *, pe, simd, idle=0.2, holes=False):
    """Return (cycles, expected) for one case.

    ``cycles``: per-cycle input dicts (valid, first, last, mask, activation, weights); idle
    cycles (valid = 0, random data) are sprinkled in with probability ``idle``. Masked-out
    bits of both operands are random, so they must not count. Rows beyond the matrix in the
    last block of PE are random. By default words follow the packed layout (full words, the
    last one padded at the top); with ``holes`` each word holds a random number of the
    vector's elements at random positions (the model still sees the plain K-element vectors).
    ``expected``: one entry per dot-product pass, in output order: (index of the pass's last
    cycle, rows used, z list, sign bits, gate bits) from the golden model.
    """
    a, w, k = case["a"] > 0, case["w"] > 0, case["k"]
    if holes:
        sizes = []
        while sum(sizes) < k:
            sizes.append(min(int(rng.integers(0, simd + 1)), k - sum(sizes)))
    else:
        sizes = [min(simd, k - j) for j in range(0, k, simd)]
    layout = []  # per word: (positions in the word, first element index)
    start = 0
    for size in sizes:
        pos = np.sort(rng.choice(simd, size=size, replace=False)) if holes else np.arange(size)
        layout.append((pos, start))
        start += size
    rows = w.shape[0]
    cycles, expected = [], []
    for n in range(a.shape[0]):
        for base in range(0, rows, pe):
            used = min(pe, rows - base)
            for j, (pos, lo) in enumerate(layout):
                while rng.random() < idle:
                    cycles.append({"valid": 0, "first": int(rng.integers(2)),
                                   "last": int(rng.integers(2)),
                                   "mask": int(rng.integers(1 << min(simd, 62))),
                                   "activation": int(rng.integers(1 << min(simd, 62))),
                                   "weights": 0})
                hi = lo + len(pos)
                junk = rng.random((pe + 1, simd)) < 0.5
                act = junk[pe].copy()
                act[pos] = a[n, lo:hi]
                mask = np.zeros(simd, dtype=bool)
                mask[pos] = True
                words = []
                for r in range(pe):
                    row = junk[r].copy()
                    if r < used:
                        row[pos] = w[base + r, lo:hi]
                    words.append(bools_to_int(row))
                cycles.append({"valid": 1, "first": int(j == 0),
                               "last": int(j == len(layout) - 1), "mask": bools_to_int(mask),
                               "activation": bools_to_int(act), "weights": join(words, simd)})
            z = case["z"][n, base:base + used]
            expected.append((len(cycles) - 1, used, [int(v) for v in z],
                             [int(v > 0) for v in case["sign"][n, base:base + used]],
                             [int(v) for v in case["gate"][n, base:base + used]]))
    return cycles, expected


def xnor_check(expected, got, latency):
    """Assert that results ``got`` (cycle, z list, sign list, gate list) match ``expected``.

    ``cycle`` is the index of the cycle in which ``out_valid`` was high, counted like the
    stream's cycles; it must be the pass's last cycle plus ``latency``.
    """
    assert len(got) == len(expected), f"{len(got)} results, expected {len(expected)}"
    for i, ((at, used, z, s, g), (cycle, gz, gs, gg)) in enumerate(zip(expected, got)):
        assert cycle == at + latency, f"result {i} at cycle {cycle}, expected {at + latency}"
        assert gz[:used] == z, f"result {i}: z {gz[:used]} != model {z}"
        assert gs[:used] == s, f"result {i}: sign {gs[:used]} != model {s}"
        assert gg[:used] == g, f"result {i}: gate {gg[:used]} != model {g}"


def xnor_decode(out, *, pe, z_width):
    """Return (z list, sign list, gate list) from raw integer outputs ``out``."""
    return (split(out["z"], z_width, pe, signed=True), split(out["sign"], 1, pe),
            split(out["gate"], 1, pe))


def idle(n):
    """Return ``n`` idle cycles (valid = 0)."""
    return [{"valid": 0} for _ in range(n)]


def read(handle):
    """Return a cocotb handle's value as an unsigned int (1-bit ports read as ``Logic``)."""
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


# --------------------------------------------------------------------------------------------
# BackProjection


def backproject_case(rng, *, simd, max_rows):
    """Return one random layer case: W, gate and desired bits of a few samples, and the model.

    Gates are random, all zero or all one; K_out includes 1 and ``max_rows``; K_in is often
    below SIMD or not a multiple of it.
    """
    k_out = int(rng.choice([1, max_rows, int(rng.integers(1, max_rows + 1))]))
    k_in = int(rng.choice([1, simd - 1 or 1, simd + 1, int(rng.integers(1, 3 * simd + 1))]))
    samples = int(rng.integers(1, 3))
    w = _pm1(rng, (k_out, k_in), bias=float(rng.choice([0.5, 0.2, 0.8])))
    kind = rng.choice(["random", "none", "all"])
    gate = {"random": rng.random((samples, k_out)) < 0.5,
            "none": np.zeros((samples, k_out), dtype=bool),
            "all": np.ones((samples, k_out), dtype=bool)}[str(kind)]
    desired = _pm1(rng, (samples, k_out))
    sums = bits.project_back(bits.pack(w.T), bits.pack_bits01(gate), bits.pack(desired), k_out)
    return {"w": w, "gate": gate, "desired": desired, "sums": sums, "sign": ops.sign(sums)}


def backproject_stream(case, rng, *, simd, idle=0.2):
    """Return (cycles, expected): one pass per (sample, SIMD-column block) of ``case``.

    Columns beyond K_in in the last block carry random weights. Passes are separated by the
    one idle cycle the block requires, plus random ones. ``expected`` entries are (index of
    the pass's last cycle, columns used, sums, sign bits) from the golden model.
    """
    w, gate, desired = case["w"] > 0, case["gate"], case["desired"] > 0
    k_out, k_in = w.shape
    cycles, expected = [], []
    for n in range(gate.shape[0]):
        for base in range(0, k_in, simd):
            used = min(simd, k_in - base)
            if cycles:
                cycles.append({"valid": 0, "first": 1, "last": 1, "gate": 1, "desired": 1,
                               "weights": int(rng.integers(1 << min(simd, 62)))})
            for i in range(k_out):
                while rng.random() < idle:
                    cycles.append({"valid": 0, "first": int(rng.integers(2)),
                                   "last": int(rng.integers(2)), "gate": 1, "desired": 1,
                                   "weights": int(rng.integers(1 << min(simd, 62)))})
                row = rng.random(simd) < 0.5
                row[:used] = w[i, base:base + used]
                cycles.append({"valid": 1, "first": int(i == 0), "last": int(i == k_out - 1),
                               "weights": bools_to_int(row), "gate": int(gate[n, i]),
                               "desired": int(desired[n, i])})
            expected.append((len(cycles) - 1, used,
                             [int(v) for v in case["sums"][n, base:base + used]],
                             [int(v > 0) for v in case["sign"][n, base:base + used]]))
    return cycles, expected


def backproject_pe_case(rng, *, pe, simd, max_rows, gates=None):
    """Return one random layer case for a PE-row-per-beat stream (see ``backproject_case``).

    K_out (within 1 … ``max_rows``) is often 1, PE − 1, PE, PE + 1 or ``max_rows``, so that
    passes of a single beat and passes whose last beat has padding rows are common. ``gates``
    forces the gate pattern (``"random"``, ``"none"`` or ``"all"``); by default it is drawn.
    """
    special = [1, pe - 1, pe, pe + 1, max_rows]
    k_out = int(rng.choice(special + [int(rng.integers(1, max_rows + 1))] * 2))
    k_out = min(max(k_out, 1), max_rows)
    k_in = int(rng.choice([1, simd - 1 or 1, simd + 1, int(rng.integers(1, 3 * simd + 1))]))
    samples = int(rng.integers(1, 3))
    w = _pm1(rng, (k_out, k_in), bias=float(rng.choice([0.5, 0.2, 0.8])))
    kind = gates or str(rng.choice(["random", "none", "all"]))
    gate = {"random": rng.random((samples, k_out)) < float(rng.choice([0.5, 0.1, 0.9])),
            "none": np.zeros((samples, k_out), dtype=bool),
            "all": np.ones((samples, k_out), dtype=bool)}[kind]
    desired = _pm1(rng, (samples, k_out))
    sums = bits.project_back(bits.pack(w.T), bits.pack_bits01(gate), bits.pack(desired), k_out)
    return {"w": w, "gate": gate, "desired": desired, "sums": sums, "sign": ops.sign(sums)}


def backproject_pe_stream(case, rng, *, pe, simd, idle=0.2):
    """Return (cycles, expected): one pass per (sample, SIMD-column block), PE rows a beat.

    A pass is ``⌈K_out/PE⌉`` beats; beat ``b`` carries rows ``b·PE … b·PE + PE − 1``
    (``weights`` lane ``r``, ``gate`` and ``desired`` bit ``r``). Rows beyond K_out in the last
    beat carry random weights and desired bits with gate 0; columns beyond K_in carry random
    weights. Passes are separated by the one idle cycle the block requires, plus random idle
    cycles (probability ``idle``) anywhere; idle cycles carry random data. ``expected`` entries
    are (index of the pass's last beat, columns used, sums, sign bits) from the golden model.
    """
    w, gate, desired = case["w"] > 0, case["gate"], case["desired"] > 0
    k_out, k_in = w.shape
    beats = -(-k_out // pe)

    def junk():
        return {"valid": 0, "first": int(rng.integers(2)), "last": int(rng.integers(2)),
                "weights": bools_to_int(rng.random(pe * simd) < 0.5),
                "gate": int(rng.integers(1 << pe)), "desired": int(rng.integers(1 << pe))}

    cycles, expected = [], []
    for n in range(gate.shape[0]):
        for base in range(0, k_in, simd):
            used = min(simd, k_in - base)
            if cycles:
                cycles.append(junk())
            for b in range(beats):
                while rng.random() < idle:
                    cycles.append(junk())
                rows, g, d = [], [], []
                for r in range(pe):
                    i = b * pe + r
                    row = rng.random(simd) < 0.5
                    if i < k_out:
                        row[:used] = w[i, base:base + used]
                        g.append(bool(gate[n, i]))
                        d.append(bool(desired[n, i]))
                    else:
                        g.append(False)
                        d.append(bool(rng.integers(2)))
                    rows.append(bools_to_int(row))
                cycles.append({"valid": 1, "first": int(b == 0), "last": int(b == beats - 1),
                               "weights": join(rows, simd), "gate": bools_to_int(g),
                               "desired": bools_to_int(d)})
            expected.append((len(cycles) - 1, used,
                             [int(v) for v in case["sums"][n, base:base + used]],
                             [int(v > 0) for v in case["sign"][n, base:base + used]]))
    return cycles, expected


def backproject_decode(out, *, simd, sum_width):
    """Return (sums list, sign list) from raw integer outputs ``out``."""
    return split(out["sums"], sum_width, simd, signed=True), split(out["sign"], 1, simd)


def backproject_check(expected, got, latency):
    """Assert that results ``got`` (cycle, sums, sign) match ``expected`` (see xnor_check)."""
    assert len(got) == len(expected), f"{len(got)} results, expected {len(expected)}"
    for i, ((at, used, sums, sign), (cycle, gs, gsign)) in enumerate(zip(expected, got)):
        assert cycle == at + latency, f"result {i} at cycle {cycle}, expected {at + latency}"
        assert gs[:used] == sums, f"result {i}: sums {gs[:used]} != model {sums}"
        assert gsign[:used] == sign, f"result {i}: sign {gsign[:used]} != model {sign}"


# --------------------------------------------------------------------------------------------
# Scoring


def scoring_case(rng, *, n_classes, max_k):
    """Return a few samples' class scores, labels, a threshold and the model's answers.

    Scores are real classifier outputs (``ops.forward`` of random ±1 data against a random
    classifier with random K ≤ max_k), some samples copy one score to make ties, and the
    threshold ranges over ``⌊r·K⌋`` for r in [−1, 1] and the representable extremes.
    """
    k = _pick_k(rng, 1, max_k)
    samples = int(rng.integers(1, 5))
    x = _pm1(rng, (samples, k))
    p = _pm1(rng, (n_classes, k))
    scores = ops.forward(bits.pack(x), bits.pack(p), k).astype(np.int64)
    for n in range(samples):
        if rng.random() < 0.5:  # ties, including with the label's own score
            i, j = rng.choice(n_classes, size=2, replace=False)
            scores[n, j] = scores[n, i]
        if rng.random() < 0.2:
            scores[n, :] = scores[n, 0]
    labels = rng.integers(0, n_classes, size=samples)
    span = 1 << (max_k.bit_length() + 1)
    threshold = int(rng.choice([ops.margin_threshold(float(rng.uniform(-1, 1)), k),
                                -span, span - 1, 0, int(rng.integers(-span, span))]))
    margins = ops.margin(scores, labels)
    return {"scores": scores, "labels": labels, "threshold": threshold, "margin": margins,
            "trigger": ops.trigger(margins, threshold), "prediction": ops.predict(scores)}


def scoring_stream(case, rng, *, lanes, score_width, idle=0.3):
    """Return (cycles, expected): ``⌈C/lanes⌉`` beats per sample, padding lanes random.

    ``expected`` entries are (index of the sample's last beat, margin, trigger, prediction).
    """
    scores, labels = case["scores"], case["labels"]
    n_classes = scores.shape[1]
    half = 1 << (score_width - 1)
    cycles, expected = [], []
    for n in range(scores.shape[0]):
        for base in range(0, n_classes, lanes):
            while rng.random() < idle:
                cycles.append({"valid": 0, "label": int(rng.integers(n_classes)),
                               "scores": int(rng.integers(1 << min(62, lanes * score_width)))})
            beat = [int(scores[n, c]) if c < n_classes else int(rng.integers(-half, half))
                    for c in range(base, base + lanes)]
            cycles.append({"valid": 1, "scores": join(beat, score_width),
                           "label": int(labels[n]) if base == 0
                           else int(rng.integers(n_classes))})
        expected.append((len(cycles) - 1, int(case["margin"][n]), int(case["trigger"][n]),
                         int(case["prediction"][n])))
    return cycles, expected


def scoring_decode(out, *, margin_width):
    """Return (margin, trigger, prediction) from raw integer outputs ``out``."""
    return (split(out["margin"], margin_width, 1, signed=True)[0], int(out["trigger"]),
            int(out["prediction"]))


def scoring_check(expected, got, latency):
    """Assert that results ``got`` (cycle, margin, trigger, prediction) match ``expected``."""
    assert len(got) == len(expected), f"{len(got)} results, expected {len(expected)}"
    for i, (exp, res) in enumerate(zip(expected, got)):
        assert res[0] == exp[0] + latency, f"result {i} at cycle {res[0]}, " \
                                           f"expected {exp[0] + latency}"
        assert res[1:] == exp[1:], f"result {i}: (margin, trigger, prediction) {res[1:]} " \
                                   f"!= model {exp[1:]}"
