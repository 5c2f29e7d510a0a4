"""Whole training runs on the simulated core, side by side with the golden model.

:func:`simulate` generates the core for a configuration and runs :func:`run_host` against it:
in this process through :class:`~bitprop.sim.native.NativePort` (the Verilated core in a C++
harness; the default of ``bitprop sim``), inside a cocotb simulation on Verilator or Icarus
(:mod:`bitprop.sim.flow`, :mod:`bitprop.sim.core_bench`), or on a board over its serial
port (``serial=``). The host driver loads the golden model's initial weights
and classifiers into the core, then for every mini-batch sets the run-time registers, streams
the batch, trains the golden model on the same batch, reads back every hidden weight and the
binary-weight memory and counts the differences. At the end both classify the test samples.

The training loop is the one of :func:`bitprop.model.train.train` on a training subset of
``samples`` examples: per epoch the same sample order, ``begin_epoch`` with the previous
epoch's accuracy (reinforcement thresholds), ``end_epoch`` (group-size schedule), one
generator step per batch.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bitprop.model.config import RunConfig
from bitprop.model.errors import ConfigError

__all__ = ["simulate", "run_host"]

CHUNK = 64      # command / reply words per harness transfer
SIM_UART_DIVISOR = 4    # clock cycles a UART bit in native-serial simulations (the fastest)

# C++ optimisation of the Verilated model and runtime (verilated.mk compiles both with -Os):
# measured +20-30% simulated cycles/s with -O2 and no compile-time change beyond the noise
# (15-20 s either way on 2 loaded cores); -O3 measured no better than -O2.
_MAKE_ARGS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")


def run_host(port, spec):
    """Train on the device behind ``port`` and on the golden model; return the comparison."""
    from bitprop.boards.driver import Device, binary_image
    from bitprop.model.mlp import BinaryMLP
    from bitprop.model.train import epoch_order
    from bitprop.rtl.plan import REGION_HIDDEN, CorePlan

    cfg = RunConfig.from_dict(spec["config"])
    plan = CorePlan.from_config(cfg, batch_max=spec["batch_max"])
    arrays = np.load(spec["data"])
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    model = BinaryMLP(cfg)
    dev = Device(port, plan)
    status0 = dev.check()
    dev.load(model.hidden, model.classifiers)
    n = x_train.shape[0]
    step, acc_prev = 0, 0.0
    mismatches = binary_mismatches = correct_mismatches = 0
    checks, records = 0, np.zeros(plan.n_layers, dtype=np.int64)
    update_weights = reinforced_weights = 0
    history, first_diffs = [], []
    train_seconds = train_cpu_seconds = train_sim_cycles = 0.0
    # The simulator's CPU clock: its own process's (native harness), else this process's
    # (cocotb: the host program runs inside the simulator).
    cpu_clock = getattr(port, "cpu_seconds", time.process_time)
    t0 = time.perf_counter()
    for epoch in range(spec["epochs"]):
        model.begin_epoch(epoch, acc_prev)
        order = epoch_order(cfg.seed, epoch, n)
        correct = 0
        for start in range(0, n, cfg.batch):
            idx = order[start:start + cfg.batch]
            dev.configure(cfg, step=step, thresholds=model.thresholds, gammas=model.gammas)
            t_batch, cpu_batch = time.perf_counter(), cpu_clock()
            clock_batch = getattr(port, "cycles", 0.0)
            got = dev.train_batch(x_train[idx], y_train[idx])
            train_seconds += time.perf_counter() - t_batch
            train_cpu_seconds += cpu_clock() - cpu_batch
            train_sim_cycles += getattr(port, "cycles", 0.0) - clock_batch
            want = model.train_batch(x_train[idx], y_train[idx], step)
            step += 1
            correct += want
            correct_mismatches += int(got["n_correct"] != want)
            records += got["records"]
            for l, r in enumerate(got["records"]):
                update_weights += r * plan.sizes[l]
                if r and model.thresholds[l]:
                    reinforced_weights += plan.sizes[l] * plan.sizes[l + 1]
            batch_no = start // cfg.batch + 1
            last = epoch == spec["epochs"] - 1 and start + cfg.batch >= n
            every = spec.get("check_every", 1)
            if not (last or (every and batch_no % every == 0)):
                continue
            hidden = dev.read_hidden()
            mismatches += sum(int((h != m).sum()) for h, m in zip(hidden, model.hidden))
            binary = dev.read_binary()
            want = binary_image(plan, model.hidden, model.classifiers)
            for addr, (a, b) in enumerate(zip(binary, want)):
                if a != b:
                    binary_mismatches += 1
                    if len(first_diffs) < 8:
                        first_diffs.append([checks, addr, hex(a), hex(b)])
            checks += 1
        acc = correct / n
        model.end_epoch(epoch, acc)
        acc_prev = acc
        history.append({"epoch": epoch + 1, "train_accuracy": 100.0 * acc})
    # Busy cycles of the whole run (training, and reinforcement sweeps not hidden behind the
    # next batch); the hidden-weight read-back above has waited for the last sweep.
    dev.read(REGION_HIDDEN, 0, 1)
    status1 = dev.status()
    cycles = (status1["work_cycles"] - status0["work_cycles"]) & 0xFFFF_FFFF
    load_cycles = (status1["load_cycles"] - status0["load_cycles"]) & 0xFFFF_FFFF
    pred_dev = dev.infer(x_test)
    pred_model = model.predict(x_test)
    samples = spec["epochs"] * n
    ideal = plan.ideal_cycles(samples, update_weights, reinforced_weights)
    return {
        "config": cfg.to_dict(),
        "plan": plan.to_dict(),
        "samples": samples,
        "batches": step,
        "checks": checks,
        "mismatches": mismatches,
        "binary_mismatches": binary_mismatches,
        "first_binary_differences": first_diffs,
        "n_correct_mismatches": correct_mismatches,
        "records": records.tolist(),
        "cycles": cycles,
        "cycles_per_sample": cycles / samples if samples else 0.0,
        "ideal_cycles_per_sample": ideal / samples if samples else 0.0,
        "cycles_over_ideal": cycles / ideal if ideal else 0.0,
        "load_cycles_per_sample": load_cycles / samples if samples else 0.0,
        "compute_cycles_per_sample": (cycles - load_cycles) / samples if samples else 0.0,
        "compute_cycles_over_ideal": (cycles - load_cycles) / ideal if ideal else 0.0,
        "bit_operations_per_sample": plan.bit_operations(),
        "test_samples": int(x_test.shape[0]),
        "test_accuracy_device": 100.0 * float((pred_dev == y_test).mean()) if len(y_test)
        else 0.0,
        "test_accuracy_model": 100.0 * float((pred_model == y_test).mean()) if len(y_test)
        else 0.0,
        "prediction_mismatches": int((pred_dev != pred_model).sum()),
        "history": history,
        "host_seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "train_cycles_per_second": cycles / train_seconds if train_seconds else 0.0,
        # The simulator's own speed: clock cycles simulated (busy or not) while it ran the
        # batches, per wall and per CPU second of the simulation process (the CPU figure
        # is steadier on a loaded machine).
        "train_sim_cycles": int(train_sim_cycles),
        "train_cpu_seconds": train_cpu_seconds,
        "train_sim_cycles_per_second": train_sim_cycles / train_seconds if train_seconds
        else 0.0,
        "train_sim_cycles_per_cpu_second": train_sim_cycles / train_cpu_seconds
        if train_cpu_seconds else 0.0,
    }


def _public_ports(top, name):
    """Return a Verilator control file that makes only the ports of ``top`` public.

    Inputs are ``public_flat_rw`` (cocotb writes them), outputs ``public_flat_rd``: Verilator
    treats a public *writable* signal as set from outside at any time, so it evaluates the
    logic that reads it on every evaluation (see :func:`~bitprop.sim.harness.registered_top`),
    and an output port can be the very register of the harness that drives it.
    """
    from amaranth.lib import wiring

    lines = ["`verilator_config"]
    for port in ("clk", "rst", *top.signature.members):
        flow = top.signature.members[port].flow if port in top.signature.members \
            else wiring.In
        kind = "public_flat_rw" if flow == wiring.In else "public_flat_rd"
        lines.append(f'{kind} -module "{name}" -var "{port}"')
    return "\n".join(lines) + "\n"


def simulate(cfg, data, *, samples, test_samples=200, epochs=1, simulator="verilator",
             batch_max=None, check_every=1, workdir=None, serial=None, baud=115200,
             spram_model=False):
    """Run :func:`run_host` on the simulated core; return its result dict.

    Parameters
    ----------
    cfg : RunConfig
        With ``input_dim`` and ``n_classes`` of ``data`` (rules ``local`` or ``bep``).
    data : Dataset
        ±1 data; the first ``samples`` training and ``test_samples`` test examples are used.
    samples : int
        Training examples per epoch.
    epochs : int
        Passes over them.
    simulator : {"native", "native-serial", "verilator", "icarus"}
        ``native``: the Verilated core in the C++ harness of :mod:`bitprop.sim.native`;
        ``native-serial``: the same with the core behind the board's UART link
        (:class:`~bitprop.boards.top.SerialCore`, ``SIM_UART_DIVISOR`` cycles a bit), reached
        through the host link stack as a board is; the others: cocotb on that simulator (the
        host program runs inside it).
    batch_max : int, optional
        Batch buffer of the generated core (default ``cfg.batch``).
    check_every : int
        Read back and compare all weights every this many batches (0: after the last only).
    serial : str, optional
        Instead of a simulator, the serial port of a board programmed with this
        configuration's bitstream (``bitprop build --board``), at ``baud``.
    spram_model : bool or None
        Native simulators only: build the core with the UP5K's memories (``spram=True``:
        hidden weights, and the input archive where it fits, in ``SB_SPRAM256KA`` tiles),
        each tile simulated by its behavioural model. None: exactly when a native simulator
        runs.
    """
    from bitprop.model.bits import pack
    from bitprop.rtl.plan import CorePlan
    from bitprop.sim.harness import ChunkedHost, registered_top
    from bitprop.boards.board import LINK_MAX_PAYLOAD
    from bitprop.boards.top import SerialCore
    from bitprop.rtl.core import TrainingCore
    from bitprop.sim.flow import run_cocotb
    from bitprop.sim.native import NativePort, NativeUartTransport, SerialSimPort
    from bitprop.sim.native import build as build_native

    cfg = cfg.replace(input_dim=data.x_train.shape[1], n_classes=data.n_classes)
    plan = CorePlan.from_config(cfg, batch_max=batch_max)
    if not 1 <= samples <= data.x_train.shape[0]:
        raise ConfigError(f"samples must be in 1..{data.x_train.shape[0]} (the training "
                          f"split); got {samples}")
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1; got {epochs}")
    test_samples = min(int(test_samples), data.x_test.shape[0])
    # Native builds happen here; cocotb builds inside run_cocotb; a board needs none.
    native = simulator in ("native", "native-serial") and serial is None
    if spram_model is None:
        spram_model = native
    if spram_model and not native:
        raise ConfigError("spram_model needs a native simulator (native, native-serial)")
    memories = dict(spram=True, spram_model=True) if spram_model else {}
    tag = f"{plan.signature:08x}" + ("_spram" if spram_model else "")
    if native and simulator == "native-serial":
        device = SerialCore(plan=plan, divisor=SIM_UART_DIVISOR, max_payload=LINK_MAX_PAYLOAD,
                            **memories)
        exe = build_native(device, name=f"serial_{tag}", uart_divisor=SIM_UART_DIVISOR)
    elif native:
        exe = build_native(TrainingCore(plan=plan, **memories), name=f"core_{tag}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "data.npz", x_train=pack(data.x_train[:samples]),
                 y_train=data.y_train[:samples], x_test=pack(data.x_test[:test_samples]),
                 y_test=data.y_test[:test_samples])
        spec = {"config": cfg.to_dict(), "batch_max": plan.batch_max,
                "data": str(tmp / "data.npz"), "epochs": int(epochs),
                "result": str(tmp / "result.json"), "check_every": int(check_every),
                "chunk": CHUNK}
        if serial is not None:
            return _on_board(spec, serial, baud)
        if native:
            t0 = time.perf_counter()
            if simulator == "native-serial":
                sim = NativeUartTransport(exe)
                port = SerialSimPort(sim, max_payload=LINK_MAX_PAYLOAD)
            else:
                sim = port = NativePort(exe)
            with sim:
                result = run_host(port, spec)
            wall = time.perf_counter() - t0
            result.update(sim_cycles=int(port.cycles), sim_seconds=wall,
                          sim_cycles_per_second=port.cycles / wall if wall > 0 else 0.0,
                          simulator=simulator, wall_seconds=wall)
            return result
        core = registered_top(ChunkedHost(plan=plan, chunk=CHUNK))
        name = f"core_{plan.signature:08x}"
        t0 = time.perf_counter()
        error = None
        try:
            run_cocotb(core, name=name, test_module="bitprop.sim.core_bench",
                       simulator=simulator, extra_env={"BITPROP_SESSION": json.dumps(spec)},
                       verilator_args=("--no-public-flat-rw",),
                       verilator_config=_public_ports(core, name), make_args=_MAKE_ARGS)
        except AssertionError as e:
            error = str(e)
        if not (tmp / "result.json").is_file():
            raise RuntimeError(f"the simulated run produced no result: {error}")
        result = json.loads((tmp / "result.json").read_text())
    result["simulator"] = simulator
    result["wall_seconds"] = time.perf_counter() - t0
    if error and not result["mismatches"] and not result["prediction_mismatches"]:
        raise RuntimeError(f"the simulated run failed: {error}")
    return result


def _on_board(spec, serial, baud):
    """Run :func:`run_host` on a board over its serial port (see ``boards/board.py``)."""
    from bitprop.boards.board import LINK_MAX_PAYLOAD
    from bitprop.boards.driver import FramePort
    from bitprop.boards.link import Link, SerialTransport

    transport = SerialTransport(serial, baud)
    try:
        t0 = time.perf_counter()
        result = run_host(FramePort(Link(transport, max_payload=LINK_MAX_PAYLOAD)), spec)
    finally:
        transport.close()
    result.update(simulator=None, board_port=serial, baud=baud,
                  wall_seconds=time.perf_counter() - t0)
    return result
