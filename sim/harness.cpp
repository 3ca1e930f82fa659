// accelgen Verilator harness: the generated accelerator top behind a small C API.
//
// Compiled by accelgen.sim.verilator_backend together with the Verilated model into
// one shared library per configuration, and loaded in-process with ctypes. Whole
// operations (an AXI4-Lite access, a CSR poll, waiting for a result frame) run here,
// so Python pays one call per operation, never one per cycle.
//
// The per-build header "accelgen_harness_config.h" (written by the backend) defines
//   AG_TOP_CLASS   the Verilated class of the simulation wrapper, e.g.
//                  Vaccelgen_gemm_8b421d17_sim
//   AG_TOP_HEADER  its header, e.g. "Vaccelgen_gemm_8b421d17_sim.h"
//   AG_TOP_NAME    the accelerator's top module name as a string literal
//   AG_STREAM_BITS AXI4-Stream TDATA width (32..512, a power of two)
//   AG_AXIL_ADDR_BITS  AXI4-Lite address width
//
// The wrapper (also generated per build) has the accelerator's ports plus ag_in_stb:
// it loads the accelerator's inputs from its own ports on a rising edge of ag_in_stb,
// which low() raises only in cycles where an input changed. Verilator evaluates the
// logic driven by top-level inputs on every eval() call; with Amaranth's Verilog
// that is nearly the whole design (every register's next-state logic sees the
// reset), so the wrapper saves most of one of the three passes a cycle would cost.
// The accelerator sees the same input values in the same cycles either way.
//
// Cycle protocol (shared with the Amaranth backend; counters must match exactly).
// Every cycle: (1) drive inputs, (2) evaluate with the clock low and observe outputs,
// (3) decide handshakes from the observed valid & ready, (4) rising edge, then apply
// the handshakes' effects. Independently of the current operation, every cycle the
// tx engine offers the head beat of the send queue on s_axis and the rx engine takes
// every m_axis beat (tready is always 1) into the current frame; TLAST completes it.
// Operations follow each other with no idle cycle in between.

#include "accelgen_harness_config.h"

#include AG_TOP_HEADER
#include "verilated.h"

#if VM_TRACE_FST
#include "verilated_fst_c.h"
using TraceFile = VerilatedFstC;
#elif VM_TRACE_VCD
#include "verilated_vcd_c.h"
using TraceFile = VerilatedVcdC;
#endif

#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the accelgen harness packs stream beats assuming a little-endian host"
#endif

#define AG_EXPORT extern "C" __attribute__((visibility("default")))

// Bumped whenever a function below changes; the Python side checks it.
#define AG_ABI_VERSION 2

// Status codes returned by the operations.
enum {
    AG_OK = 0,
    AG_BUS_ERROR = 1,     // *resp holds the nonzero xRESP
    AG_TIMEOUT = 2,       // the cycle budget ran out
    AG_STREAM_LENGTH = 3, // a frame arrived with a length other than the one asked for
    AG_BAD_ARGUMENT = 4,
};

static constexpr size_t kBeatBytes = AG_STREAM_BITS / 8;

// Stream TDATA is a CData/SData/IData/QData scalar up to 64 bits and a VlWide array
// of 32-bit words above that; these overloads copy beats in and out of both.
template <typename T>
static inline void put_beat(T& dst, const uint8_t* src) {
    static_assert(sizeof(T) <= 8, "scalar port wider than 64 bits");
    uint64_t v = 0;
    std::memcpy(&v, src, kBeatBytes);
    dst = static_cast<T>(v);
}
template <std::size_t N>
static inline void put_beat(VlWide<N>& dst, const uint8_t* src) {
    static_assert(N * 4 == kBeatBytes, "TDATA width disagrees with AG_STREAM_BITS");
    std::memcpy(dst.data(), src, kBeatBytes);
}
template <typename T>
static inline void get_beat(const T& src, uint8_t* dst) {
    const uint64_t v = src;
    std::memcpy(dst, &v, kBeatBytes);
}
template <std::size_t N>
static inline void get_beat(const VlWide<N>& src, uint8_t* dst) {
    std::memcpy(dst, src.data(), kBeatBytes);
}
template <typename T>
static inline void clear_beat(T& dst) { dst = 0; }
template <std::size_t N>
static inline void clear_beat(VlWide<N>& dst) { std::memset(dst.data(), 0, kBeatBytes); }

// Every input of the accelerator but the clock and TDATA.
#define AG_SCALAR_INPUTS(X)                                                             \
    X(aresetn) X(s_axil_awaddr) X(s_axil_awprot) X(s_axil_awvalid) X(s_axil_wdata)      \
    X(s_axil_wstrb) X(s_axil_wvalid) X(s_axil_bready) X(s_axil_araddr) X(s_axil_arprot) \
    X(s_axil_arvalid) X(s_axil_rready) X(s_axis_tlast) X(s_axis_tvalid) X(m_axis_tready)

// The input values the wrapper last loaded, to tell whether a cycle changed any.
struct InputSnapshot {
#define AG_DECLARE(name) uint64_t name = ~0ULL;
    AG_SCALAR_INPUTS(AG_DECLARE)
#undef AG_DECLARE
    uint8_t tdata[kBeatBytes];
    bool valid = false;
};

namespace {

struct Harness {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<AG_TOP_CLASS> top;
#if VM_TRACE
    std::unique_ptr<TraceFile> tfp;
#endif
    uint64_t cycles = 0;

    // tx engine: queued beats (kBeatBytes each) and their TLAST flags; head = next beat
    std::vector<uint8_t> tx_data;
    std::vector<uint8_t> tx_last;
    size_t tx_head = 0;
    bool tx_shown = false;  // TDATA currently holds a queued beat (else it was cleared)

    // rx engine: the frame being received and the completed frames
    std::vector<uint8_t> rx_frame;
    std::deque<std::vector<uint8_t>> rx_done;

    // handshakes decided in the low phase, applied after the edge
    bool tx_fire = false;
    bool rx_fire = false;
    bool rx_last = false;
    uint8_t rx_beat[kBeatBytes];

    InputSnapshot loaded;  // what the wrapper's input registers hold

    explicit Harness(const char* trace_path) : ctx(new VerilatedContext) {
        ctx->debug(0);
        ctx->randReset(0);
#if VM_TRACE
        if (trace_path && *trace_path) ctx->traceEverOn(true);
#endif
        top.reset(new AG_TOP_CLASS{ctx.get(), "top"});
#if VM_TRACE
        if (trace_path && *trace_path) {
            tfp.reset(new TraceFile);
            top->trace(tfp.get(), 99);
            tfp->open(trace_path);
        }
#else
        (void)trace_path;
#endif
        top->aclk = 0;
        top->ag_in_stb = 0;
        top->aresetn = 0;
        axil_idle();
        top->s_axis_tvalid = 0;
        top->s_axis_tlast = 0;
        clear_beat(top->s_axis_tdata);
        top->m_axis_tready = 0;
        top->eval();
    }

    ~Harness() {
#if VM_TRACE
        if (tfp) tfp->close();
#endif
        top->final();
    }

    inline void dump(uint64_t t) {
#if VM_TRACE
        if (tfp) tfp->dump(t);
#else
        (void)t;
#endif
    }

    // Whether any input differs from what the wrapper holds (and remember them).
    inline bool inputs_changed() {
        bool changed = !loaded.valid;
        loaded.valid = true;
#define AG_COMPARE(name)                         \
    {                                            \
        const uint64_t v = top->name;            \
        changed |= v != loaded.name;             \
        loaded.name = v;                         \
    }
        AG_SCALAR_INPUTS(AG_COMPARE)
#undef AG_COMPARE
        uint8_t beat[kBeatBytes];
        get_beat(top->s_axis_tdata, beat);
        if (std::memcmp(beat, loaded.tdata, kBeatBytes) != 0) {
            std::memcpy(loaded.tdata, beat, kBeatBytes);
            changed = true;
        }
        return changed;
    }

    // Clock low with this cycle's inputs: the wrapper loads them if any changed.
    inline void eval_low() {
        top->ag_in_stb = inputs_changed();
        top->aclk = 0;
        top->eval();
        dump(2 * cycles);
    }

    // Rising clock edge.
    inline void eval_high() {
        top->ag_in_stb = 0;
        top->aclk = 1;
        top->eval();
        dump(2 * cycles + 1);
        ++cycles;
    }

    inline void axil_idle() {
        top->s_axil_awaddr = 0;
        top->s_axil_awprot = 0;
        top->s_axil_awvalid = 0;
        top->s_axil_wdata = 0;
        top->s_axil_wstrb = 0;
        top->s_axil_wvalid = 0;
        top->s_axil_bready = 0;
        top->s_axil_araddr = 0;
        top->s_axil_arprot = 0;
        top->s_axil_arvalid = 0;
        top->s_axil_rready = 0;
    }

    // (1) drive the stream inputs, (2) evaluate with the clock low, (3) decide the
    // stream handshakes. The caller drives its AXI4-Lite inputs before and observes
    // AXI4-Lite outputs after this.
    inline void low() {
        const size_t nbeats = tx_last.size();
        if (tx_head < nbeats) {
            top->s_axis_tvalid = 1;
            top->s_axis_tlast = tx_last[tx_head];
            put_beat(top->s_axis_tdata, &tx_data[tx_head * kBeatBytes]);
            tx_shown = true;
        } else {
            top->s_axis_tvalid = 0;
            top->s_axis_tlast = 0;
            if (tx_shown) {
                clear_beat(top->s_axis_tdata);
                tx_shown = false;
            }
        }
        top->m_axis_tready = 1;
        eval_low();
        tx_fire = top->s_axis_tvalid && top->s_axis_tready;
        rx_fire = top->m_axis_tvalid;
        if (rx_fire) {
            get_beat(top->m_axis_tdata, rx_beat);
            rx_last = top->m_axis_tlast;
        }
    }

    // (4) rising edge, then apply the stream handshakes.
    inline void edge() {
        eval_high();
        if (tx_fire) {
            if (++tx_head == tx_last.size()) {
                tx_head = 0;
                tx_data.clear();
                tx_last.clear();
            }
        }
        if (rx_fire) {
            rx_frame.insert(rx_frame.end(), rx_beat, rx_beat + kBeatBytes);
            if (rx_last) {
                rx_done.emplace_back();
                rx_done.back().swap(rx_frame);
            }
        }
    }

    inline void cycle() {
        low();
        edge();
    }

    void reset(uint32_t n) {
        // All AXI inputs 0 while aresetn is low; no stream beat moves. The queues
        // are emptied: a reset device starts from nothing, like after construction.
        top->aresetn = 0;
        axil_idle();
        top->s_axis_tvalid = 0;
        top->s_axis_tlast = 0;
        clear_beat(top->s_axis_tdata);
        tx_shown = false;
        top->m_axis_tready = 0;
        for (uint32_t i = 0; i < n; ++i) {
            eval_low();
            eval_high();
        }
        top->aresetn = 1;
        tx_data.clear();
        tx_last.clear();
        tx_head = 0;
        rx_frame.clear();
        rx_done.clear();
        tx_fire = rx_fire = false;
    }

    int write(uint32_t addr, uint32_t data, uint64_t budget, uint32_t* resp) {
        uint64_t used = 0;
        bool aw_done = false, w_done = false;
        top->s_axil_awaddr = addr;
        top->s_axil_awprot = 0;
        top->s_axil_wdata = data;
        top->s_axil_wstrb = 0xF;
        top->s_axil_bready = 0;
        top->s_axil_arvalid = 0;
        top->s_axil_rready = 0;
        while (!(aw_done && w_done)) {
            if (used++ >= budget) return timeout();
            top->s_axil_awvalid = !aw_done;
            top->s_axil_wvalid = !w_done;
            low();
            const bool aw = top->s_axil_awvalid && top->s_axil_awready;
            const bool w = top->s_axil_wvalid && top->s_axil_wready;
            edge();
            aw_done |= aw;
            w_done |= w;
        }
        top->s_axil_awvalid = 0;
        top->s_axil_wvalid = 0;
        top->s_axil_bready = 1;
        for (;;) {
            if (used++ >= budget) return timeout();
            low();
            const bool b = top->s_axil_bvalid;
            const uint32_t r = top->s_axil_bresp;
            edge();
            if (b) {
                top->s_axil_bready = 0;
                *resp = r;
                return r ? AG_BUS_ERROR : AG_OK;
            }
        }
    }

    int read(uint32_t addr, uint64_t* used, uint64_t budget, uint32_t* data, uint32_t* resp) {
        top->s_axil_awvalid = 0;
        top->s_axil_wvalid = 0;
        top->s_axil_bready = 0;
        top->s_axil_araddr = addr;
        top->s_axil_arprot = 0;
        top->s_axil_arvalid = 1;
        top->s_axil_rready = 0;
        for (;;) {
            if ((*used)++ >= budget) return timeout();
            low();
            const bool ar = top->s_axil_arready;
            edge();
            if (ar) break;
        }
        top->s_axil_arvalid = 0;
        top->s_axil_rready = 1;
        for (;;) {
            if ((*used)++ >= budget) return timeout();
            low();
            const bool r = top->s_axil_rvalid;
            const uint32_t d = top->s_axil_rdata;
            const uint32_t e = top->s_axil_rresp;
            edge();
            if (r) {
                top->s_axil_rready = 0;
                *data = d;
                *resp = e;
                return e ? AG_BUS_ERROR : AG_OK;
            }
        }
    }

    int timeout() {
        axil_idle();
        return AG_TIMEOUT;
    }
};

}  // namespace

AG_EXPORT uint32_t ag_abi_version() { return AG_ABI_VERSION; }
AG_EXPORT uint32_t ag_stream_bits() { return AG_STREAM_BITS; }
AG_EXPORT uint32_t ag_axil_addr_bits() { return AG_AXIL_ADDR_BITS; }
AG_EXPORT const char* ag_top_name() { return AG_TOP_NAME; }
AG_EXPORT int ag_has_trace() { return VM_TRACE ? 1 : 0; }

// A new simulated device (not yet reset). trace_path may be NULL.
AG_EXPORT void* ag_create(const char* trace_path) {
    try {
        return new Harness(trace_path);
    } catch (...) {
        return nullptr;
    }
}

AG_EXPORT void ag_destroy(void* h) { delete static_cast<Harness*>(h); }

AG_EXPORT uint64_t ag_cycles(void* h) { return static_cast<Harness*>(h)->cycles; }

// aresetn low for n cycles with every AXI input 0, then high; empties the queues.
AG_EXPORT void ag_reset(void* h, uint32_t n) { static_cast<Harness*>(h)->reset(n); }

AG_EXPORT int ag_write(void* h, uint32_t addr, uint32_t data, uint64_t budget, uint32_t* resp) {
    *resp = 0;
    return static_cast<Harness*>(h)->write(addr, data, budget, resp);
}

AG_EXPORT int ag_read(void* h, uint32_t addr, uint64_t budget, uint32_t* data, uint32_t* resp) {
    uint64_t used = 0;
    *data = 0;
    *resp = 0;
    return static_cast<Harness*>(h)->read(addr, &used, budget, data, resp);
}

// Read addr until (value & mask) == expected, all reads within one cycle budget.
AG_EXPORT int ag_wait(void* h, uint32_t addr, uint32_t mask, uint32_t expected, uint64_t budget,
                      uint32_t* data, uint32_t* resp) {
    Harness* d = static_cast<Harness*>(h);
    uint64_t used = 0;
    *data = 0;
    *resp = 0;
    for (;;) {
        const int rc = d->read(addr, &used, budget, data, resp);
        if (rc != AG_OK) return rc;
        if ((*data & mask) == expected) return AG_OK;
    }
}

// Queue one frame of n bytes (a positive whole number of beats); TLAST on its last beat.
AG_EXPORT int ag_send(void* h, const uint8_t* data, size_t n) {
    Harness* d = static_cast<Harness*>(h);
    if (n == 0 || n % kBeatBytes) return AG_BAD_ARGUMENT;
    const size_t beats = n / kBeatBytes;
    d->tx_data.insert(d->tx_data.end(), data, data + n);
    d->tx_last.insert(d->tx_last.end(), beats, 0);
    d->tx_last.back() = 1;
    return AG_OK;
}

// Run (AXI4-Lite idle) until a frame is complete, pop it and copy up to cap bytes of
// it into buf; *len gets its full length. AG_STREAM_LENGTH if that differs from cap.
AG_EXPORT int ag_recv(void* h, uint64_t budget, uint8_t* buf, size_t cap, size_t* len) {
    Harness* d = static_cast<Harness*>(h);
    *len = 0;
    d->axil_idle();
    uint64_t used = 0;
    while (d->rx_done.empty()) {
        if (used++ >= budget) return d->timeout();
        d->cycle();
    }
    std::vector<uint8_t> frame;
    frame.swap(d->rx_done.front());
    d->rx_done.pop_front();
    *len = frame.size();
    std::memcpy(buf, frame.data(), frame.size() < cap ? frame.size() : cap);
    return frame.size() == cap ? AG_OK : AG_STREAM_LENGTH;
}

// Beats still queued for s_axis, and completed frames not yet received.
AG_EXPORT void ag_pending(void* h, uint64_t* tx_beats, uint64_t* rx_frames, uint64_t* rx_bytes) {
    Harness* d = static_cast<Harness*>(h);
    *tx_beats = d->tx_last.size() - d->tx_head;
    *rx_frames = d->rx_done.size();
    *rx_bytes = d->rx_frame.size();
}

// n free cycles with every input idle and both stream engines paused (s_axis_tvalid
// = 0, m_axis_tready = 0, so no beat moves): the bare Verilator loop benchmarks
// compare the backend against.
AG_EXPORT void ag_run_idle(void* h, uint64_t n) {
    Harness* d = static_cast<Harness*>(h);
    AG_TOP_CLASS* top = d->top.get();
    d->axil_idle();
    top->s_axis_tvalid = 0;
    top->s_axis_tlast = 0;
    top->m_axis_tready = 0;
    for (uint64_t i = 0; i < n; ++i) {
        d->eval_low();
        d->eval_high();
    }
}
