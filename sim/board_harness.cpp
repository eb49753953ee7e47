// The simulated board: the accelerator's Verilog, compiled by Verilator, speaking the link's byte
// stream like a UART behind a serial port: host -> device on stdin, device -> host on stdout.
//
// Each cycle the harness offers the next received link word on link_rx and takes any word on
// link_tx (the host side is always ready). The clock runs only while the device has input to
// take or the host is waiting for its output, so the cycles the device counts are a property of
// the RTL and the command stream alone, never of how fast or busy the host is: the host is
// modelled as answering in zero cycles.
//
// Paced mode (the default; host/link.py's SimulatedBoardLink speaks it) wraps the host's side of
// stdin in messages:
//   'D' <u32 n> <n bytes>          link bytes for the device
//   'W' <u64 seen> <u32 want>      the host has read `seen` bytes of output and is blocked until
//                                  `want` more arrive
// When the device has taken every byte it was sent, the clock stops and the harness waits for the
// host: more data, or a W. A W whose `seen` is every byte written so far runs the clock until
// `want` more bytes are out, then stops it again; an older W is stale (the host is about to read
// output it has not seen yet, and will answer that) and is ignored.
//
// Raw mode (--raw: stdin is the bare byte stream, e.g. behind a pty) cannot know when the host
// waits, so the clock runs whenever there is input or the device has been active in the last
// QUIET_CYCLES cycles; its cycle counts depend on the host's timing.
//
// In both modes a device that has neither taken nor given a word for QUIET_CYCLES cycles (2**18;
// 2**25 with DRAM, whose reads of a stored range send nothing until they end) blocks
// on stdin (it waits for a reply that is not coming). On EOF the device finishes what it has (until it
// has been quiet for EOF_QUIET_CYCLES) and the harness exits, printing cycle statistics to stderr.
//
// Build: see sim/board.py (LINK_BYTES is defined on the command line; the top is board_top.v). Verilator escapes the
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

// A board with DRAM raises it (sim/board.py): a DRAM_CHECK or GEMM_DRAM reads for millions of
// cycles before it has a word to send.
#ifndef QUIET_CYCLES
#define QUIET_CYCLES (1ull << 18)
#endif
static const uint64_t EOF_QUIET_CYCLES = 1u << 12;   // after EOF: the device has finished
static const int BATCH = 4096;
static const int POLL_CYCLES = 64;     // raw mode: look for input this often while running dry
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

// Splits paced-mode stdin into link bytes and the host's wait marks.
class PacedInput {
  public:
    std::vector<uint8_t> data;   // link bytes not yet offered to the device (from data_pos on)
    size_t data_pos = 0;
    uint64_t run_until = 0;      // run the clock until this many output bytes are written

    void feed(const uint8_t *p, size_t n, uint64_t written) {
        raw_.insert(raw_.end(), p, p + n);
        size_t at = 0;
        for (;;) {
            size_t left = raw_.size() - at;
            if (left < 1) break;
            uint8_t kind = raw_[at];
            if (kind == 'D') {
                if (left < 5) break;
                uint32_t len;
                std::memcpy(&len, &raw_[at + 1], 4);
                if (left < 5 + size_t(len)) break;
                data.insert(data.end(), raw_.begin() + at + 5, raw_.begin() + at + 5 + len);
                at += 5 + len;
            } else if (kind == 'W') {
                if (left < 13) break;
                uint64_t seen;
                uint32_t want;
                std::memcpy(&seen, &raw_[at + 1], 8);
                std::memcpy(&want, &raw_[at + 9], 4);
                if (seen == written) run_until = seen + want;
                at += 13;
            } else {
                std::fprintf(stderr, "systolica-board: bad paced-mode message 0x%02x\n", kind);
                std::exit(2);
            }
        }
        raw_.erase(raw_.begin(), raw_.begin() + at);
        compact();
    }

    void feed_raw(const uint8_t *p, size_t n) {
        data.insert(data.end(), p, p + n);
        compact();
    }

  private:
    std::vector<uint8_t> raw_;

    void compact() {
        if (data_pos > (1 << 20)) {
            data.erase(data.begin(), data.begin() + data_pos);
            data_pos = 0;
        }
    }
};

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    bool raw = argc > 1 && std::strcmp(argv[1], "--raw") == 0;
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    auto top = std::make_unique<Vboard>(context.get());

    PacedInput in;
    std::vector<uint8_t> out_buf;    // device bytes not yet written to stdout
    uint64_t written = 0;            // device bytes written to stdout so far
    bool eof = false;
    uint64_t cycles = 0, quiet = 0;
    double busy_seconds = 0;
    auto started = std::chrono::steady_clock::now();

    auto tick = [&]() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        cycles++;
    };

    top->link_rx___05Fvalid = 0;
    for (int i = 0; i < 8; i++) tick();     // board_top.v holds reset for the first 4 cycles

    static uint8_t chunk[1 << 16];
    auto read_input = [&](int timeout_ms) {
        struct pollfd pfd = {0, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) <= 0) return;
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n > 0) {
            if (raw) in.feed_raw(chunk, size_t(n));
            else in.feed(chunk, size_t(n), written);
        } else if (n == 0 || errno != EINTR) {
            eof = true;
        }
    };
    for (;;) {
        // Everything the device said goes out first: the host may be waiting for it.
        if (!out_buf.empty()) {
            if (!write_all(1, out_buf.data(), out_buf.size())) break;  // host went away
            written += out_buf.size();
            out_buf.clear();
        }
        bool have = in.data.size() - in.data_pos >= LINK_BYTES;
        bool active = quiet < (eof ? EOF_QUIET_CYCLES : QUIET_CYCLES);
        bool waited = raw || eof || written < in.run_until;
        if (!have && !(waited && active)) {
            if (eof) break;
            read_input(-1);
            continue;
        }

        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < BATCH; i++) {
            bool have_word = in.data.size() - in.data_pos >= LINK_BYTES;
            if (!have_word) {
                if (!raw && !eof && !(written + out_buf.size() < in.run_until)) break;
                if (raw && !eof && i % POLL_CYCLES == POLL_CYCLES - 1) {
                    struct pollfd pfd = {0, POLLIN, 0};
                    if (poll(&pfd, 1, 0) > 0) break;     // the host sent something: take it
                }
            }
            top->link_rx___05Fvalid = have_word;
            if (have_word) set_word(top->link_rx___05Fpayload, in.data.data() + in.data_pos);
            top->clk = 0;
            top->eval();
            bool took = have_word && top->link_rx___05Fready;
            bool gave = top->link_tx___05Fvalid;
            if (gave) {
                uint8_t word[LINK_BYTES > 4 ? LINK_BYTES : 4];
                get_word(top->link_tx___05Fpayload, word);
                out_buf.insert(out_buf.end(), word, word + LINK_BYTES);
            }
            top->clk = 1;
            top->eval();
            cycles++;
            if (took) in.data_pos += LINK_BYTES;
            if (took || gave) quiet = 0; else quiet++;
            if (quiet >= QUIET_CYCLES || (eof && quiet >= EOF_QUIET_CYCLES)) break;
        }
        busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (raw && !eof) read_input(0);
    }
    if (!out_buf.empty()) write_all(1, out_buf.data(), out_buf.size());
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "systolica-board: %llu cycles, %.3f s simulating (%.0f cycles/s), "
                 "%.3f s wall\n", (unsigned long long)cycles, busy_seconds,
                 busy_seconds > 0 ? cycles / busy_seconds : 0.0, wall);
    top->final();
    return 0;
}
