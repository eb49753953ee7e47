// The simulated board: the accelerator's Verilog, compiled by Verilator, speaking the link's byte
// stream on stdin (host -> device) and stdout (device -> host), like a UART behind a serial port.
//
// Each cycle the harness offers the next received link word on link_rx and takes any word on
// link_tx (the host side of the pipe is always ready). It stands in for a memory feeding the
// device at full rate: when the device's receive FIFO runs empty (its rx_empty status output) and
// no input is waiting, the clock stops for up to 2 ms while the host answers (a host that lets
// that pass is taken to be idle until it sends again, e.g. while it waits for results). While
// the host is idle the harness looks for input every POLL_CYCLES cycles, so the clock stops again
// as soon as the host sends. When the device has neither taken nor given a word for
// SLOW_CYCLES cycles (it is most likely idle, waiting for a host that is computing), it runs only
// SLOW_BATCH cycles per millisecond of waiting for input, so an idle device does not take a core
// from the host; after QUIET_CYCLES it blocks on stdin. On EOF it lets the device finish and
// exits, printing cycle statistics to stderr.
//
// Build: see sim/board.py (LINK_BYTES is defined on the command line). Verilator escapes the
// double underscore of Amaranth port names ("link_rx__valid") as "___05F".

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "Vboard.h"
#include "verilated.h"

#ifndef LINK_BYTES
#error "LINK_BYTES must be defined"
#endif

static const uint64_t QUIET_CYCLES = 1u << 18;
static const uint64_t SLOW_CYCLES = 1u << 16;
static const int SLOW_BATCH = 256;
static const int POLL_CYCLES = 64;

template <typename T>
static void set_word(T &port, const uint8_t *bytes) {
    uint64_t value = 0;
    std::memcpy(&value, bytes, LINK_BYTES < 8 ? LINK_BYTES : 8);
    port = static_cast<T>(value);
}

template <std::size_t N>
static void set_word(VlWide<N> &port, const uint8_t *bytes) {
    for (std::size_t i = 0; i < N; i++) {
        uint32_t word;
        std::memcpy(&word, bytes + 4 * i, 4);
        port[i] = word;
    }
}

template <typename T>
static void get_word(const T &port, uint8_t *bytes) {
    uint64_t value = static_cast<uint64_t>(port);
    std::memcpy(bytes, &value, LINK_BYTES < 8 ? LINK_BYTES : 8);
}

template <std::size_t N>
static void get_word(const VlWide<N> &port, uint8_t *bytes) {
    for (std::size_t i = 0; i < N; i++) {
        uint32_t word = port[i];
        std::memcpy(bytes + 4 * i, &word, 4);
    }
}

static bool write_all(int fd, const uint8_t *data, size_t size) {
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Vboard>(context.get());

    std::vector<uint8_t> in_buf;     // received bytes not yet offered to the device
    size_t in_pos = 0;
    std::vector<uint8_t> out_buf;    // device bytes not yet written to stdout
    bool eof = false;
    uint64_t cycles = 0, quiet = 0, busy_cycles = 0;
    double busy_seconds = 0;
    auto started = std::chrono::steady_clock::now();

    auto tick = [&]() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        cycles++;
    };

    top->rst = 1;
    top->link_rx___05Fvalid = 0;
    top->link_tx___05Fready = 1;
    for (int i = 0; i < 4; i++) tick();
    top->rst = 0;

    uint8_t chunk[1 << 16];
    bool host_idle = false;     // the host left the last stall unanswered
    for (;;) {
        // Everything the device said goes out first: the host may be waiting for credit.
        if (!out_buf.empty()) {
            if (!write_all(1, out_buf.data(), out_buf.size())) break;  // host went away
            out_buf.clear();
        }
        bool starved = in_buf.size() - in_pos < LINK_BYTES;
        bool quiet_now = quiet >= QUIET_CYCLES;
        if (eof && starved && quiet_now) break;
        if (!eof) {
            // Block when the device is quiet; while it is hungry, wait briefly for the host
            // with the clock stopped (the harness stands in for a memory feeding at full rate).
            bool slow = quiet >= SLOW_CYCLES;
            int wait_ms = !starved ? 0 : quiet_now ? -1
                          : (top->rx_empty && (!host_idle || slow)) ? (slow ? 1 : 2) : 0;
            struct pollfd pfd = {0, POLLIN, 0};
            int ready = poll(&pfd, 1, wait_ms);
            if (ready > 0) {
                ssize_t n = read(0, chunk, sizeof chunk);
                if (n > 0) {
                    if (in_pos > (1 << 20)) {
                        in_buf.erase(in_buf.begin(), in_buf.begin() + in_pos);
                        in_pos = 0;
                    }
                    in_buf.insert(in_buf.end(), chunk, chunk + n);
                    quiet = 0;
                    host_idle = false;
                    continue;
                } else if (n == 0 || errno != EINTR) {
                    eof = true;
                }
            } else if (wait_ms > 0) {
                host_idle = true;
            }
        }

        // Run cycles until the input runs out (then look for more) or a batch is done.
        auto t0 = std::chrono::steady_clock::now();
        uint64_t batch_start = cycles;
        int batch = quiet >= SLOW_CYCLES ? SLOW_BATCH : 4096;
        for (int i = 0; i < batch; i++) {
            bool have = in_buf.size() - in_pos >= LINK_BYTES;
            if (!have && !starved) break;   // had input at the start of the batch: refill first
            if (!have && top->rx_empty && !host_idle) break;   // hungry: ask the host first
            if (!have && !eof && i % POLL_CYCLES == POLL_CYCLES - 1) {
                struct pollfd pfd = {0, POLLIN, 0};
                if (poll(&pfd, 1, 0) > 0) break;     // the host sent something: take it
            }
            top->link_rx___05Fvalid = have;
            if (have) set_word(top->link_rx___05Fpayload, in_buf.data() + in_pos);
            top->clk = 0;
            top->eval();
            bool took = have && top->link_rx___05Fready;
            bool gave = top->link_tx___05Fvalid;
            if (gave) {
                uint8_t word[LINK_BYTES > 4 ? LINK_BYTES : 4];
                get_word(top->link_tx___05Fpayload, word);
                out_buf.insert(out_buf.end(), word, word + LINK_BYTES);
            }
            top->clk = 1;
            top->eval();
            cycles++;
            if (took) in_pos += LINK_BYTES;
            if (took || gave) quiet = 0; else quiet++;
            if (quiet >= QUIET_CYCLES) break;
        }
        busy_cycles += cycles - batch_start;
        busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    if (!out_buf.empty()) write_all(1, out_buf.data(), out_buf.size());
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "systolica-board: %llu cycles, %.3f s simulating (%.0f cycles/s), "
                 "%.3f s wall\n", (unsigned long long)cycles, busy_seconds,
                 busy_seconds > 0 ? busy_cycles / busy_seconds : 0.0, wall);
    top->final();
    return 0;
}
