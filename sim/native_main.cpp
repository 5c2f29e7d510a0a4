// Native Verilator harness: the simulated device behind a pipe.
//
// Built by bitprop.sim.native (Verilator --cc --exe --build) around the Verilog of a device
// behind registered inputs (bitprop.sim.harness.registered_top); VTOP is the Verilated class
// and VTOP_HEADER its header. The process reads requests on stdin and writes replies on
// stdout, all little-endian 32-bit words. The clock runs only inside a request (like
// cocotb's host coroutine, which holds simulated time still between messages). A request
// whose first word is 0xFFFFFFFF ends the process.
//
// Word mode (the TrainingCore's cmd / rsp streams):
//
//   request : n_words, n_reply, then n_words command words
//   reply   : status, cycles low, cycles high (clock cycles since reset), then n_reply reply
//             words (on status 1, as many as had arrived, then zero padding)
//
//   The clock runs until every command word has been taken (cmd.valid & cmd.ready at a
//   rising edge) and n_reply reply words have been collected (rsp.ready is held only while
//   more are wanted, so surplus words wait inside the core, as on a link). Status 1: no
//   handshake for the idle limit (argv[1], default 50,000,000 cycles).
//
// UART mode (compiled with -DBITPROP_UART; the SerialCore's rx / tx pins, 8N1 at
// UART_DIVISOR clock cycles a bit):
//
//   request : n_bytes, max_cycles, then ceil(n_bytes / 4) words of bytes to send
//   reply   : n_out, cycles low, cycles high, then ceil(n_out / 4) words of received bytes
//
//   The clock runs until every byte has been sent on rx and then either at least one byte has
//   come back on tx and tx has stayed idle for two byte times (a reply burst is complete),
//   or max_cycles have passed since the request began (0: stop once the bytes are sent).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "verilated.h"
#include VTOP_HEADER

namespace {

bool read_words(uint32_t* dst, size_t n) {
    return std::fread(dst, sizeof(uint32_t), n, stdin) == n;
}

void write_words(const uint32_t* src, size_t n) {
    if (n && std::fwrite(src, sizeof(uint32_t), n, stdout) != n) {
        std::exit(3);
    }
}

}  // namespace

int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<VTOP>(context.get(), "device");
    uint64_t cycles = 0;
    auto half_low = [&]() { top->clk = 0; top->eval(); };
    auto half_high = [&]() { top->clk = 1; top->eval(); ++cycles; };

#ifndef BITPROP_UART
    // Amaranth names the stream ports cmd__valid, ...; Verilator escapes the second '_'.
#define CMD_VALID top->cmd___05Fvalid
#define CMD_READY top->cmd___05Fready
#define CMD_PAYLOAD top->cmd___05Fpayload
#define RSP_VALID top->rsp___05Fvalid
#define RSP_READY top->rsp___05Fready
#define RSP_PAYLOAD top->rsp___05Fpayload
    const uint64_t idle_limit = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 50000000ULL;
    CMD_VALID = 0;
    RSP_READY = 0;
    top->rst = 1;
    for (int i = 0; i < 4; ++i) { half_low(); half_high(); }
    top->rst = 0;

    bool valid_q = false, ready_q = false;  // the core's registered cmd.valid, rsp.ready
    std::vector<uint32_t> words, reply;
    for (;;) {
        uint32_t head[2];
        if (!read_words(head, 1) || head[0] == 0xFFFFFFFFu || !read_words(head + 1, 1)) break;
        const uint32_t n_words = head[0], n_reply = head[1];
        words.resize(n_words);
        if (!read_words(words.data(), n_words)) return 2;
        reply.clear();
        // The core sees its inputs through registers (harness.registered_top): what is set
        // before a rising edge reaches it one cycle later. So a handshake at an edge pairs
        // the inputs set before the previous edge (valid_q, ready_q) with the outputs now.
        size_t taken = 0;          // command words the core has taken
        uint64_t idle = 0;
        uint32_t status = 0;
        while (taken < n_words || reply.size() < n_reply) {
            half_low();
            const bool took = valid_q && CMD_READY;
            const bool got = ready_q && RSP_VALID;
            if (took) ++taken;
            if (got) reply.push_back(static_cast<uint32_t>(RSP_PAYLOAD & 0xFFFFFFFFu));
            // Inputs for the next cycle: the next word not yet taken (the same word again
            // if it was not), and ready only while more reply words are wanted.
            valid_q = taken < n_words;
            ready_q = reply.size() < n_reply;
            CMD_VALID = valid_q;
            CMD_PAYLOAD = valid_q ? words[taken] : 0;
            RSP_READY = ready_q;
            half_high();
            idle = (took || got) ? 0 : idle + 1;
            if (idle >= idle_limit) {
                status = 1;
                break;
            }
        }
        const uint32_t out[3] = {status, static_cast<uint32_t>(cycles),
                                 static_cast<uint32_t>(cycles >> 32)};
        write_words(out, 3);
        reply.resize(n_reply, 0);
        write_words(reply.data(), n_reply);
        std::fflush(stdout);
    }
#else
    (void)argc;
    (void)argv;
    const uint32_t d = UART_DIVISOR;
    top->rx = 1;
    top->rst = 1;
    for (int i = 0; i < 4; ++i) { half_low(); half_high(); }
    top->rst = 0;

    // Sender onto the device's rx: the 10-bit frame of the current byte, a bit every d cycles.
    uint32_t send_frame = 0, send_bits = 0, send_count = 0;
    // Receiver of the device's tx: bit (-1 idle, 0 start, 1..8 data, 9 stop) and its clock.
    int recv_bit = -1;
    uint32_t recv_count = 0, recv_byte = 0;
    uint64_t quiet = 0;          // idle cycles since the last received byte's stop bit
    std::vector<uint8_t> in, out;
    std::vector<uint32_t> words;
    for (;;) {
        uint32_t head[2];
        if (!read_words(head, 1) || head[0] == 0xFFFFFFFFu || !read_words(head + 1, 1)) break;
        const uint32_t n_bytes = head[0], max_cycles = head[1];
        words.resize((n_bytes + 3) / 4);
        if (!read_words(words.data(), words.size())) return 2;
        in.assign(reinterpret_cast<uint8_t*>(words.data()),
                  reinterpret_cast<uint8_t*>(words.data()) + n_bytes);
        out.clear();
        size_t sent = 0;
        const uint64_t start = cycles;
        for (;;) {
            const bool sending = sent < in.size() || send_bits;
            if (!sending) {
                if (max_cycles == 0) break;
                if (!out.empty() && recv_bit < 0 && quiet >= 20ULL * d) break;
                if (cycles - start >= max_cycles) break;
            }
            // The device's rx line for this cycle.
            if (!send_bits && sent < in.size()) {
                send_frame = 0x200u | (static_cast<uint32_t>(in[sent++]) << 1);  // stop, data, start
                send_bits = 10;
                send_count = 0;
            }
            top->rx = send_bits ? (send_frame & 1u) : 1u;
            half_low();
            // Sample the device's tx in the middle of each bit.
            const uint32_t line = top->tx & 1u;
            if (recv_bit < 0) {
                ++quiet;
                if (!line) { recv_bit = 0; recv_count = 0; recv_byte = 0; }
            } else if (++recv_count == (recv_bit == 0 ? d / 2 : d)) {
                recv_count = 0;
                if (recv_bit == 0) {
                    if (line) recv_bit = -2;                     // a glitch: back to idle
                } else if (recv_bit <= 8) {
                    recv_byte |= line << (recv_bit - 1);
                } else {
                    out.push_back(static_cast<uint8_t>(recv_byte));
                    quiet = 0;
                    recv_bit = -2;
                }
                ++recv_bit;
            }
            half_high();
            if (send_bits && ++send_count == d) {
                send_count = 0;
                send_frame >>= 1;
                --send_bits;
            }
        }
        const uint32_t head_out[3] = {static_cast<uint32_t>(out.size()),
                                      static_cast<uint32_t>(cycles),
                                      static_cast<uint32_t>(cycles >> 32)};
        write_words(head_out, 3);
        out.resize((out.size() + 3) / 4 * 4, 0);
        write_words(reinterpret_cast<const uint32_t*>(out.data()), out.size() / 4);
        std::fflush(stdout);
    }
#endif
    top->final();
    return 0;
}
