"""A slow, direct transcription of ALGORITHMS.md sections 2–6 (MLP rules), for testing only.

Plain Python integers and lists, one sample at a time, no packed algebra and no NumPy in the
arithmetic, so that it shares nothing with the model but the generator's documented formula.
"""

import math

from bitprop.model.rng import MASK64, WEYL, mix64, step_key


def sgn(v):
    return 1 if v >= 0 else -1


def binary(h):
    return 1 if h > 0 else -1


def dot(row, a):
    return sum(binary(h) * ai for h, ai in zip(row, a))


def draw(seed, step, layer, i):
    key = step_key(seed, step, layer)
    x = mix64((key + (i >> 2) * WEYL) & MASK64)
    return (x >> (16 * (i & 3))) & 0xFFFF


def reference_step(hidden, classifiers, xs, ys, *, rule, gammas, r, nu, hidden_bits, seed,
                   step, thresholds, empty_gate="plus"):
    """Return (new hidden weights, number of correct predictions) after one mini-batch."""
    hmax = 2 ** (hidden_bits - 1) - 1
    n_layers = len(hidden)
    sizes = [len(hidden[0][0])] + [len(h) for h in hidden]
    delta = [[[0] * sizes[l] for _ in range(sizes[l + 1])] for l in range(n_layers)]
    selected = [False] * n_layers
    correct = 0

    def select_and_record(l, z, desired, a_prev):
        g = gammas[l]
        for start in range(0, len(z), g):
            best = None
            for j in range(start, start + g):
                if sgn(z[j]) != desired[j] and (best is None or abs(z[j]) < abs(z[best])):
                    best = j
            if best is not None:
                selected[l] = True
                for i, ai in enumerate(a_prev):
                    delta[l][best][i] += 2 * desired[best] * ai

    def scores_of(q, a):
        return [sum(qc * ai for qc, ai in zip(row, a)) for row in q]

    def margin(s, y):
        return s[y] - max(v for c, v in enumerate(s) if c != y)

    for x, y in zip(xs, ys):
        acts, zs = [list(x)], []
        for l in range(n_layers):
            z = [dot(row, acts[-1]) for row in hidden[l]]
            zs.append(z)
            acts.append([sgn(v) for v in z])
        out = scores_of(classifiers[-1], acts[-1])
        pred = max(range(len(out)), key=lambda c: (out[c], -c))
        correct += pred == y
        if rule in ("local", "cpr"):
            for l in range(n_layers):
                s = scores_of(classifiers[l], acts[l + 1])
                if margin(s, y) < math.floor(r * sizes[l + 1]):
                    select_and_record(l, zs[l], classifiers[l][y], acts[l])
            continue
        if not margin(out, y) < math.floor(r * sizes[-1]):
            continue
        desired = [None] * n_layers
        desired[-1] = list(classifiers[-1][y])
        live = n_layers - 1   # lowest layer that still receives a desired activation
        for l in range(n_layers - 2, -1, -1):
            thr = math.floor(nu * sizes[l + 1])
            gate = [1 if abs(v) <= thr else 0 for v in zs[l + 1]]
            if empty_gate == "skip" and not any(gate):
                break
            proj = [sum(gate[i] * desired[l + 1][i] * binary(hidden[l + 1][i][c])
                        for i in range(sizes[l + 2])) for c in range(sizes[l + 1])]
            desired[l] = [sgn(p) for p in proj]
            live = l
        for l in range(live, n_layers):
            select_and_record(l, zs[l], desired[l], acts[l])

    new = []
    for l in range(n_layers):
        rows = []
        for j, row in enumerate(hidden[l]):
            rows.append([max(-hmax, min(hmax, h + d)) for h, d in zip(row, delta[l][j])])
        if selected[l] and thresholds[l]:
            k_in = sizes[l]
            for j in range(len(rows)):
                for i in range(k_in):
                    if draw(seed, step, l, j * k_in + i) < thresholds[l]:
                        h = rows[j][i]
                        rows[j][i] = max(-hmax, min(hmax, h + 2 * binary(h)))
        new.append(rows)
    return new, correct
