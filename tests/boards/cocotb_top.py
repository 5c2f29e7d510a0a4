"""cocotb side of tests/boards/test_top.py: the host driver over FramePort against SerialCore.

Environment: ``BITPROP_TOP`` holds JSON ``{"config", "divisor", "max_payload", "result",
"seed"}``. The host program (:func:`run_host`: Link, FramePort, Device, BinaryMLP) runs as
blocking code in a cocotb bridge thread; its :class:`SimTransport` turns ``write`` and ``read``
into coroutines that drive the ``rx`` pin bit by bit (:class:`UartHost`) and return the bytes
decoded from ``tx``. Link's timeouts are measured in simulated time (``boards.link.time`` is
replaced by :class:`SimClock` for the test), so resends do not depend on the host's speed.

Damage on purpose, each of which the link must recover from: one request frame with a flipped
payload bit (the device drops it, the host resends), the acknowledgement of the first command
frame of the training batch (the host resends, the device must not execute it again) and one
non-empty READ answer (the host resends, the device must answer the same words).
"""

import json
import os
import time
import types

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer

from bitprop.boards import link as link_module
from bitprop.boards.link import END, ESC, FrameDecoder, Transport

PERIOD_NS = 10
TIMEOUT_S = 0.5e-3          # host reply timeout, simulated seconds (50,000 cycles)
LIMIT_S = 20e-3             # the whole host program, simulated seconds


class UartHost:
    """Drive ``dut.rx`` and decode ``dut.tx`` (8N1, ``divisor`` clock cycles per bit).

    Decoded bytes are held back until a frame's closing END, so that :meth:`damage_reply` can
    spoil a chosen reply frame before the host sees it.
    """

    def __init__(self, dut, divisor):
        self.dut = dut
        self.bit_ns = divisor * PERIOD_NS
        self.received = bytearray()
        self.arrived = Event()
        self._frame = bytearray()
        self._decoder = FrameDecoder()
        self._damage = None                 # (reply type, must have a payload)
        self.damaged = []
        dut.rx.value = 1

    async def send(self, data):
        """Put ``data`` on ``rx``: start bit, 8 data bits LSB first, stop bit, per byte."""
        await FallingEdge(self.dut.clk)     # bit edges on falling clock edges: no races
        for byte in bytes(data):
            for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, "ns")

    def damage_reply(self, reply_type, nonempty):
        """Flip a bit of the type byte of the next reply frame of ``reply_type``."""
        self._damage = (reply_type, nonempty)

    async def monitor(self):
        half = self.bit_ns // 2
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(half, "ns")
            if int(self.dut.tx.value):
                continue                    # a glitch
            byte = 0
            for k in range(8):
                await Timer(self.bit_ns, "ns")
                byte |= int(self.dut.tx.value) << k
            await Timer(self.bit_ns, "ns")
            assert int(self.dut.tx.value) == 1, "framing error on tx (stop bit low)"
            self._byte(byte)

    def _byte(self, byte):
        self._frame.append(byte)
        if byte != END or len(self._frame) < 3:
            if byte == END:
                self._frame[:] = bytes([END])      # opening END (or an empty body)
            return
        chunk = bytes(self._frame)
        self._frame.clear()
        frames = self._decoder.feed(chunk)
        if self._damage and frames:
            kind, nonempty = self._damage
            if frames[0].type == kind and (frames[0].length > 0 or not nonempty):
                chunk = bytes([END, chunk[1] ^ 0x20]) + chunk[2:]
                self.damaged.append((frames[0].type, frames[0].seq, frames[0].length))
                self._damage = None
        self.received += chunk
        self.arrived.set()


class SimTransport(Transport):
    """The :class:`~bitprop.boards.link.Transport` of the host program, on the simulation.

    ``write`` returns once the bytes are on the line (as a flushed serial port does); ``read``
    lets the simulation run until a byte arrives or ``timeout`` simulated seconds pass.
    """

    def __init__(self, uart):
        self.uart = uart
        self.now = get_sim_time("ns") * 1e-9
        self._damage_request = False
        self.damaged_requests = []

    def clock(self):
        """Simulated seconds (stands in for ``time.monotonic`` in ``boards.link``)."""
        return self.now

    def damage_request(self):
        """Flip one payload bit of the next request frame on the wire."""
        self._damage_request = True

    async def _write(self, data):
        if self._damage_request:
            data = bytearray(data)
            for k in range(len(data) // 2, len(data) - 3):
                if data[k - 1] != ESC and data[k] not in (END, ESC) \
                        and data[k] ^ 0x04 not in (END, ESC):
                    data[k] ^= 0x04
                    self.damaged_requests.append(k)
                    break
            self._damage_request = False
        await self.uart.send(data)
        self.now = get_sim_time("ns") * 1e-9

    async def _read(self, n, timeout):
        if self.now > LIMIT_S:
            raise RuntimeError(f"the host program ran past {LIMIT_S * 1e3:g} ms of simulated "
                               "time (the device hung?)")
        if not self.uart.received:
            self.uart.arrived.clear()
            await First(self.uart.arrived.wait(), Timer(max(1, round(timeout * 1e9)), "ns"))
        data = bytes(self.uart.received[:n])
        del self.uart.received[:len(data)]
        self.now = get_sim_time("ns") * 1e-9
        return data

    def write(self, data):
        resume(self._write)(bytes(data))

    def read(self, n, timeout):
        return resume(self._read)(n, timeout)


def run_host(transport, spec):
    """Check, load, train one batch and read back through FramePort; return the comparison."""
    from bitprop.boards.driver import FRAME_CMD, FRAME_READ, Device, FramePort, binary_image
    from bitprop.boards.link import Link
    from bitprop.model.bits import pack
    from bitprop.model.config import RunConfig
    from bitprop.model.mlp import BinaryMLP
    from bitprop.rtl.plan import CorePlan

    cfg = RunConfig.from_dict(spec["config"])
    plan = CorePlan.from_config(cfg)
    link = Link(transport, max_payload=spec["max_payload"])
    dev = Device(FramePort(link, timeout=TIMEOUT_S), plan)
    status0 = dev.check()
    model = BinaryMLP(cfg)
    initial = [h.copy() for h in model.hidden]
    transport.damage_request()              # the first frame of the binary weights
    dev.load(model.hidden, model.classifiers)
    loaded_ok = all((a == b).all() for a, b in zip(dev.read_hidden(), model.hidden))

    rng = np.random.default_rng(spec["seed"])
    x = pack(rng.choice(np.array([-1, 1], dtype=np.int8), size=(cfg.batch, cfg.input_dim)))
    y = rng.integers(0, cfg.n_classes, cfg.batch)
    model.begin_epoch(0, 0.0)
    dev.configure(cfg, step=0, thresholds=model.thresholds, gammas=model.gammas)
    transport.uart.damage_reply(FRAME_CMD | 0x80, nonempty=False)   # lost ack of TRAIN
    got = dev.train_batch(x, y)
    want = model.train_batch(x, y, 0)
    transport.uart.damage_reply(FRAME_READ | 0x80, nonempty=True)   # lost READ answer
    hidden = dev.read_hidden()
    binary = dev.read_binary()
    status1 = dev.status()
    return {
        "magic": status0["magic"],
        "loaded_ok": bool(loaded_ok),
        "n_correct": [int(got["n_correct"]), int(want)],
        "records": got["records"],
        "hidden_mismatches": int(sum((a != b).sum() for a, b in zip(hidden, model.hidden))),
        "binary_mismatches": int(sum(a != b for a, b in
                                     zip(binary, binary_image(plan, model.hidden,
                                                              model.classifiers)))),
        "trained_layers_changed": int(sum(bool((a != b).any())
                                          for a, b in zip(initial, model.hidden))),
        "status_samples": status1["samples"] - status0["samples"],
        "status_batches": status1["batches"] - status0["batches"],
        "host_resends": link.resends,
        "host_stale_replies": link.stale_replies,
        "host_crc_errors": int(link.decoder.errors["CRC"]),
        "host_other_errors": int(link.decoder.corrupt - link.decoder.errors["CRC"]),
        "damaged_requests": len(transport.damaged_requests),
        "damaged_replies": [list(d) for d in transport.uart.damaged],
    }


@cocotb.test()
async def frame_port_session(dut):
    """Run :func:`run_host` against SerialCore over its UART pins."""
    spec = json.loads(os.environ["BITPROP_TOP"])
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    uart = UartHost(dut, spec["divisor"])
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    cocotb.start_soon(uart.monitor())
    transport = SimTransport(uart)
    saved = link_module.time
    link_module.time = types.SimpleNamespace(monotonic=transport.clock)
    t0 = time.perf_counter()
    try:
        result = await bridge(run_host)(transport, spec)
    finally:
        link_module.time = saved
    result["wall_seconds"] = time.perf_counter() - t0
    result["sim_cycles"] = int(get_sim_time("ns") // PERIOD_NS)
    with open(spec["result"], "w") as f:
        json.dump(result, f, indent=1)
    dut._log.info("result: %s", json.dumps(result))
    assert result["loaded_ok"]
    assert result["hidden_mismatches"] == 0 and result["binary_mismatches"] == 0
    assert result["n_correct"][0] == result["n_correct"][1]
    assert result["status_samples"] == 4 and result["status_batches"] == 1
    assert result["damaged_requests"] == 1 and len(result["damaged_replies"]) == 2
