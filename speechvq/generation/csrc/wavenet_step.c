/* The packed WaveNet step in C, for the CPU: register-blocked matrix products with GCC vector extensions.
 *
 * Same arithmetic as the numba loop (speechvq/generation/kernel.py) and the packed form of packed.py; built
 * on first use by speechvq/generation/native.py with the system C compiler (-O3 -march=native -ffast-math
 * at compile time only: see native.py) and called through ctypes, one call per thread and block of steps.
 * What makes it fast is the product C[nb, N] += A[nb, K] W[K, N] done as register panels: a few streams x
 * a few vectors of C stay in registers for the whole K loop, so each weight vector is loaded once per
 * panel of streams and no partial sum goes through memory; and blocks of 64 columns are the outer loop,
 * so more streams than one panel holds reuse each block of W from cache.
 *
 * The panels are shaped at compile time for the target's register file (see "Instruction sets" below): the
 * accumulators, the weight vectors and the broadcast stream values must all fit, or the compiler spills
 * them to the stack inside the K loop (the 4 x 4 panels of 512 bits that suit AVX-512's 32 registers took
 * 515 stack loads and stores per 32 FMAs when compiled for AVX2's 16). tools/asm_report.py counts the
 * instructions and stack accesses of each panel's inner loop for any -march.
 *
 * Layout (all float32, C order; sizes padded to multiples of 16 by native.py, padding zero):
 *   embedding [Qp, R]; taps [L, R, 4H] (current filter | current gate | past filter | past gate);
 *   res [L, H, R], res_bias [L, R] (sqrt(1/2) folded in); skip [L * H, S], skip_bias [S];
 *   hidden [S, S], hidden_bias [S]; logits_w [S, Qp], logits_bias [Qp];
 *   frames [F, B, L, 2H] (F == 1: the same for every step), ring [B, slots, 2H] (past filter | past gate),
 *   noise [n_steps, B, Q] or NULL, teacher int64 [B, n_steps] or NULL, out int64 [B, n_steps],
 *   logits_out [n_steps, B, Q] or NULL; scratch: at least nb * (R + 4H + L*H + 2S + Qp + R) floats.
 * The pitch-lag input (WaveNet.lag_classes / lag_input), or lag_table NULL: lag_table [lag_taps, Q, R] (tap
 *   j's row of class c), lag_period int64 [B, n_steps] (each step's period T in samples, 0: unvoiced),
 *   history int64 [B, history_len] (x[k] at k % history_len; written here as the inputs go by, so it must
 *   outlive the call; history_len > the longest period + lag_taps / 2). Each step's input adds the taps'
 *   rows of x[t - T + j], j = -(lag_taps / 2) .. lag_taps / 2, or of lag_silence where T <= lag_taps / 2 or
 *   t - T + j < 0; they are summed first and then added, in the reference's order. A tap never reads past
 *   x[t - 1], the step's own input, so the loop needs no pieces.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Instruction sets. VECTOR_FLOATS: floats per vector register; PANEL_VECS_r: vectors of C per stream in
 * the panel of r streams (r = 1 .. MAX_ROWS). A panel of r streams holds r * PANEL_VECS_r accumulators,
 * r broadcast stream values and a weight vector: at most the register count, with at least 8
 * accumulators where possible (four-cycle FMA latency at two FMAs per cycle). Chosen by timing shapes on the
 * paper decoder with 1 to 5 streams (x86-64-v3 build, half weights, on a Sapphire Rapids core: 1x8 19.0k
 * samples/s against 14.7k for 1x4; 3x4 27.1k against 20.3k for 3x3; 4x2 23.4k against 20.3k for 4x3) and
 * checked free of spills with tools/asm_report.py for x86-64, x86-64-v3 and native (AVX-512). */
#if defined(__AVX512F__)            /* 32 registers of 16 floats */
#define ISA_NAME "avx512"
#define VECTOR_FLOATS 16
#define PANEL_VECS_1_DEFAULT 4
#define PANEL_VECS_2_DEFAULT 4
#define PANEL_VECS_3_DEFAULT 4
#define PANEL_VECS_4_DEFAULT 4
#elif defined(__AVX__)              /* 16 registers of 8 floats (AVX2 + FMA: x86-64-v3; also plain AVX) */
#ifdef __FMA__
#define ISA_NAME "avx2-fma"
#else
#define ISA_NAME "avx"
#endif
#define VECTOR_FLOATS 8
#define PANEL_VECS_1_DEFAULT 8
#define PANEL_VECS_2_DEFAULT 4
#define PANEL_VECS_3_DEFAULT 4
#define PANEL_VECS_4_DEFAULT 2
#else                               /* any other target: 128-bit vectors (SSE2, NEON, ...), 16 registers */
#define ISA_NAME "generic-128"
#define VECTOR_FLOATS 4
#define PANEL_VECS_1_DEFAULT 8
#define PANEL_VECS_2_DEFAULT 4
#define PANEL_VECS_3_DEFAULT 4
#define PANEL_VECS_4_DEFAULT 2
#endif
#ifndef PANEL_VECS_1  /* -DPANEL_VECS_r=n overrides a shape (for timing others) */
#define PANEL_VECS_1 PANEL_VECS_1_DEFAULT
#endif
#ifndef PANEL_VECS_2
#define PANEL_VECS_2 PANEL_VECS_2_DEFAULT
#endif
#ifndef PANEL_VECS_3
#define PANEL_VECS_3 PANEL_VECS_3_DEFAULT
#endif
#ifndef PANEL_VECS_4
#define PANEL_VECS_4 PANEL_VECS_4_DEFAULT
#endif
#define BLOCK_COLUMNS 64  /* columns of C per outer block: a multiple of every panel's width that fits */
_Static_assert(VECTOR_FLOATS * PANEL_VECS_1 <= BLOCK_COLUMNS && VECTOR_FLOATS * PANEL_VECS_2 <= BLOCK_COLUMNS &&
               VECTOR_FLOATS * PANEL_VECS_3 <= BLOCK_COLUMNS && VECTOR_FLOATS * PANEL_VECS_4 <= BLOCK_COLUMNS,
               "a panel wider than a block of columns would never run");

typedef float vec __attribute__((vector_size(4 * VECTOR_FLOATS), aligned(4)));  /* unaligned loads are fine */

static inline vec loadv(const float *p) { return *(const vec *)p; }
static inline void storev(float *p, vec v) { *(vec *)p = v; }

/* The matrix weights (taps, res, skip, hidden, logits_w) are float32, or with -DSPEECHVQ_FP16_WEIGHTS
 * IEEE half precision, converted to float32 as they are loaded: half the bytes to stream per step, and
 * the paper decoder's 1.7 MB then fit a 2 MB L2 cache. Activations and sums stay float32. */
#ifdef SPEECHVQ_FP16_WEIGHTS
typedef uint16_t weight_t;  /* the bits of an IEEE half */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline vec loadw(const weight_t *p) { return (vec)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
#elif defined(__AVX__) && defined(__F16C__)
#include <immintrin.h>
static inline vec loadw(const weight_t *p) { return (vec)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#elif VECTOR_FLOATS == 4 && defined(__F16C__)
#include <immintrin.h>
static inline vec loadw(const weight_t *p) { return (vec)_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p)); }
#elif VECTOR_FLOATS == 4 && defined(__aarch64__)
typedef _Float16 half4 __attribute__((vector_size(8), aligned(2)));
static inline vec loadw(const weight_t *p) { return __builtin_convertvector(*(const half4 *)p, vec); }
#else
#error "half-precision weights need F16C, AVX-512 or aarch64 (native.py then uses float32 weights)"
#endif
#else
typedef float weight_t;
static inline vec loadw(const weight_t *p) { return loadv(p); }
#endif

/* C[b, j:j+VF*V] += A[b, :] W[:, j:j+VF*V] for NB rows (b < NB), W [K, N] row-major: NB x V accumulators
 * in registers for the whole K loop. Not inlined, so that each panel's loop can be inspected alone
 * (tools/asm_report.py reads the functions named panel_*). */
#define DEFINE_PANEL(NAME, NB, V)                                                                             \
    __attribute__((noinline)) static void NAME(const float *restrict A, long lda, const weight_t *restrict W, \
                                               long K, long N, long j, float *restrict C, long ldc) {         \
        vec acc[NB][V];                                                                                       \
        for (int b = 0; b < NB; b++)                                                                          \
            for (int q = 0; q < V; q++) acc[b][q] = loadv(C + b * ldc + j + VECTOR_FLOATS * q);               \
        for (long k = 0; k < K; k++) {                                                                        \
            const weight_t *w = W + k * N + j;                                                                \
            float a[NB];                                                                                      \
            for (int b = 0; b < NB; b++) a[b] = A[b * lda + k];                                               \
            for (int q = 0; q < V; q++) { /* one weight vector live at a time: NB x V + NB + 1 registers */  \
                const vec wv = loadw(w + VECTOR_FLOATS * q);                                                  \
                for (int b = 0; b < NB; b++) acc[b][q] += a[b] * wv;                                          \
            }                                                                                                 \
        }                                                                                                     \
        for (int b = 0; b < NB; b++)                                                                          \
            for (int q = 0; q < V; q++) storev(C + b * ldc + j + VECTOR_FLOATS * q, acc[b][q]);               \
    }

#define MAX_ROWS 4  /* streams per panel at most; more streams take several panels per block of columns */
DEFINE_PANEL(panel_wide_1, 1, PANEL_VECS_1)
DEFINE_PANEL(panel_wide_2, 2, PANEL_VECS_2)
DEFINE_PANEL(panel_wide_3, 3, PANEL_VECS_3)
DEFINE_PANEL(panel_wide_4, 4, PANEL_VECS_4)
DEFINE_PANEL(panel_narrow_1, 1, 1)
DEFINE_PANEL(panel_narrow_2, 2, 1)
DEFINE_PANEL(panel_narrow_3, 3, 1)
DEFINE_PANEL(panel_narrow_4, 4, 1)

typedef void (*panel_fn)(const float *restrict, long, const weight_t *restrict, long, long, long, float *restrict,
                         long);
static const panel_fn panels_wide[MAX_ROWS + 1] = {0, panel_wide_1, panel_wide_2, panel_wide_3, panel_wide_4};
static const panel_fn panels_narrow[MAX_ROWS + 1] = {0, panel_narrow_1, panel_narrow_2, panel_narrow_3,
                                                     panel_narrow_4};
static const long wide_columns[MAX_ROWS + 1] = {0, VECTOR_FLOATS * PANEL_VECS_1, VECTOR_FLOATS * PANEL_VECS_2,
                                                VECTOR_FLOATS * PANEL_VECS_3, VECTOR_FLOATS * PANEL_VECS_4};

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
/* What this build targets, for reports: the instruction set, vector width and panel shapes (streams x vectors). */
const char *speechvq_native_isa(void) {
    return ISA_NAME ", " STRINGIFY(VECTOR_FLOATS) " floats per vector, panels 1x" STRINGIFY(PANEL_VECS_1)
        " 2x" STRINGIFY(PANEL_VECS_2) " 3x" STRINGIFY(PANEL_VECS_3) " 4x" STRINGIFY(PANEL_VECS_4);
}

/* C[b, :] += A[b, :] W for nb rows, N a multiple of 16. Blocks of 64 columns outermost: a block of W
 * (K x 64) is read from memory once per step and from cache for every further panel of streams. */
static void gemm(long nb, const float *A, long lda, const weight_t *W, long K, long N, float *C, long ldc) {
    for (long j0 = 0; j0 < N; j0 += BLOCK_COLUMNS) {
        const long j1 = j0 + BLOCK_COLUMNS < N ? j0 + BLOCK_COLUMNS : N;
        for (long b = 0; b < nb; b += MAX_ROWS) {
            const long rows = nb - b < MAX_ROWS ? nb - b : MAX_ROWS;
            const float *a = A + b * lda;
            float *c = C + b * ldc;
            long j = j0;
            for (; j + wide_columns[rows] <= j1; j += wide_columns[rows]) panels_wide[rows](a, lda, W, K, N, j, c, ldc);
            for (; j < j1; j += VECTOR_FLOATS) panels_narrow[rows](a, lda, W, K, N, j, c, ldc);
        }
    }
}

/* tanh by the rational minimax approximation of Eigen's float generic_fast_tanh (|error| ~ 1e-7), which
 * the compiler vectorises (libm's tanhf it does not); the same function as kernel.fast_tanh. */
static inline float fast_tanh(float x) {
    x = fminf(fmaxf(x, -7.90531110763549805f), 7.90531110763549805f);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

/* Advance streams [lo, hi) of B by n_steps samples from absolute step t0 (see the layout above). */
void run_block(long lo, long hi, long batch, long n_steps, long t0, long hop, long frame0, long n_frames,
               long n_layers, long R, long H, long S, long Q, long Qp, long slots,
               const int64_t *dilations, const int64_t *offsets,
               const float *embedding, const weight_t *taps, const weight_t *res, const float *res_bias,
               const weight_t *skip, const float *skip_bias, const weight_t *hidden_w, const float *hidden_bias,
               const weight_t *logits_w, const float *logits_bias,
               const float *frames, const float *noise, float temperature, float *ring, int64_t *previous,
               int64_t *out, float *logits_out, const int64_t *teacher,
               const float *lag_table, long lag_taps, long lag_silence, const int64_t *lag_period,
               int64_t *history, long history_len, float *scratch) {
    const long nb = hi - lo, G = 2 * H, T = 4 * H, Z = n_layers * H;
    const float scale = 0.7071067811865476f;
    float *x = scratch;                 /* [nb, R] */
    float *tap = x + nb * R;            /* [nb, 4H] */
    float *z = tap + nb * T;            /* [nb, L * H] */
    float *skips = z + nb * Z;          /* [nb, S] */
    float *hid = skips + nb * S;        /* [nb, S] */
    float *logit = hid + nb * S;        /* [nb, Qp] */
    float *x_next = logit + nb * Qp;    /* [nb, R] */
    /* Streams of different threads never share a cache line that is written in the loop: each stream's
     * ring is its own contiguous block, and the previous classes stay in this call's own array until the
     * end (two threads writing neighbouring entries every step made each 2-3x slower, measured). */
    int64_t tokens[nb];
    float lag_sum[lag_table ? R : 1];
    const long latest_tap = lag_taps / 2;
    for (long b = 0; b < nb; b++) tokens[b] = previous[lo + b];
    for (long step = 0; step < n_steps; step++) {
        const long t = t0 + step;
        const long frame = n_frames == 1 ? 0 : t / hop - frame0;
        for (long b = 0; b < nb; b++) {
            int64_t token = teacher ? teacher[(lo + b) * n_steps + step] : tokens[b];
            memcpy(x + b * R, embedding + token * R, R * sizeof(float));
            if (lag_table) {
                int64_t *past = history + (lo + b) * history_len;
                if (t >= 1) past[(t - 1) % history_len] = token;  /* the input of step t is x[t - 1] */
                const long period = lag_period[(lo + b) * n_steps + step];
                memset(lag_sum, 0, R * sizeof(float));
                for (long j = 0; j < lag_taps; j++) {
                    const long index = t - period + j - latest_tap;
                    const int64_t c = period > latest_tap && index >= 0 ? past[index % history_len] : lag_silence;
                    const float *row = lag_table + (j * Q + c) * R;
                    for (long k = 0; k < R; k++) lag_sum[k] += row[k];
                }
                for (long k = 0; k < R; k++) x[b * R + k] += lag_sum[k];
            }
        }
        for (long layer = 0; layer < n_layers; layer++) {
            const long slot = offsets[layer] + t % dilations[layer];
            memset(tap, 0, nb * T * sizeof(float));
            gemm(nb, x, R, taps + layer * R * T, R, T, tap, T);
            for (long b = 0; b < nb; b++) {
                float *past = ring + ((lo + b) * slots + slot) * G;
                const float *cond = frames + ((frame * batch + lo + b) * n_layers + layer) * G;
                const float *row = tap + b * T;
                float *zl = z + b * Z + layer * H;
                for (long j = 0; j < H; j++) {
                    float a = fast_tanh(row[j] + cond[j] + past[j]);
                    float g = fast_tanh(row[H + j] + cond[H + j] + past[H + j]);
                    zl[j] = a + a * g;
                }
                memcpy(past, row + G, G * sizeof(float));
            }
            if (layer < n_layers - 1) {
                for (long b = 0; b < nb; b++) memcpy(x_next + b * R, res_bias + layer * R, R * sizeof(float));
                gemm(nb, z + layer * H, Z, res + layer * H * R, H, R, x_next, R);
                for (long i = 0; i < nb * R; i++) x[i] = scale * x[i] + x_next[i];  /* res, res_bias carry sqrt(1/2) */
            }
        }
        for (long b = 0; b < nb; b++) memcpy(skips + b * S, skip_bias, S * sizeof(float));
        gemm(nb, z, Z, skip, Z, S, skips, S);
        for (long i = 0; i < nb * S; i++) skips[i] = fmaxf(skips[i], 0.0f);
        for (long b = 0; b < nb; b++) memcpy(hid + b * S, hidden_bias, S * sizeof(float));
        gemm(nb, skips, S, hidden_w, S, S, hid, S);
        for (long i = 0; i < nb * S; i++) hid[i] = fmaxf(hid[i], 0.0f);
        for (long b = 0; b < nb; b++) memcpy(logit + b * Qp, logits_bias, Qp * sizeof(float));
        gemm(nb, hid, S, logits_w, S, Qp, logit, Qp);
        for (long b = 0; b < nb; b++) {
            const float *values = logit + b * Qp;
            if (logits_out) memcpy(logits_out + (step * batch + lo + b) * Q, values, Q * sizeof(float));
            const float *g = noise ? noise + (step * batch + lo + b) * Q : NULL;
            long best = 0;
            float best_value = -FLT_MAX;  /* not -INFINITY: -ffast-math assumes finite values */
            for (long j = 0; j < Q; j++) {
                float v = g ? values[j] + temperature * g[j] : values[j];
                if (v > best_value) { best_value = v; best = j; }
            }
            tokens[b] = best;
            out[(lo + b) * n_steps + step] = best;
        }
    }
    for (long b = 0; b < nb; b++) previous[lo + b] = tokens[b];
}
