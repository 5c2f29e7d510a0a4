// Native Verilator harness of the training core: the simulated device behind a pipe.
//
// Built by bitprop.sim.native (Verilator --cc --exe --build) around the Verilog of a
// TrainingCore behind registered inputs (bitprop.sim.harness.registered_top), whose
// Verilated class is the macro VTOP and its header VTOP_HEADER. The process reads requests on stdin and writes replies on stdout,
// all little-endian 32-bit words:
//
//   request : n_words, n_reply, then n_words command words
//   reply   : status (0 done, 1 the core did not move for the idle limit), cycles low,
//             cycles high (clock cycles simulated since reset), then n_reply reply words
//             (on status 1: as many as had arrived, then zero padding)
//
// For each request the clock runs until every command word has been taken (cmd.valid &
// cmd.ready at a rising edge) and n_reply reply words have been collected (rsp.ready is
// held only while more are wanted, so surplus words wait inside the core, as on a link).
// A request with n_words = 0xFFFFFFFF ends the process. The clock runs only inside a
// request, like cocotb's host coroutine, which holds simulated time still between messages.
//
// argv[1], optional: the idle limit in cycles (default 50,000,000).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "verilated.h"
#include VTOP_HEADER

// Amaranth names the stream ports cmd__valid, ...; Verilator escapes the second underscore.
#define CMD_VALID top->cmd___05Fvalid
#define CMD_READY top->cmd___05Fready
#define CMD_PAYLOAD top->cmd___05Fpayload
#define RSP_VALID top->rsp___05Fvalid
#define RSP_READY top->rsp___05Fready
#define RSP_PAYLOAD top->rsp___05Fpayload

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
    const uint64_t idle_limit = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 50000000ULL;
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<VTOP>(context.get(), "core");
    uint64_t cycles = 0;

    auto tick = [&]() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    };
    CMD_VALID = 0;
    RSP_READY = 0;
    top->rst = 1;
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;

    bool valid_q = false, ready_q = false;  // the core's registered cmd.valid, rsp.ready
    std::vector<uint32_t> words, reply;
    for (;;) {
        uint32_t head[2];
        if (!read_words(head, 2) || head[0] == 0xFFFFFFFFu) break;
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
            top->clk = 0;
            top->eval();
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
            top->clk = 1;
            top->eval();
            ++cycles;
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
    top->final();
    return 0;
}
