/* The packed WaveNet step in C, for the CPU: register-blocked matrix products with GCC vector extensions.
 *
 * Same arithmetic as the numba loop (speechvq/generation/kernel.py) and the packed form of packed.py; built
 * on first use by speechvq/generation/native.py with the system C compiler (-O3 -march=native -ffast-math)
 * and called through ctypes, one call per thread and block of steps. What makes it faster than the numba
 * loop is the product C[nb, N] += A[nb, K] W[K, N]: four streams x 64 columns of C stay in 16 vector
 * registers for the whole K loop, so each weight vector is loaded once per four streams and no partial sum
 * goes through memory (LLVM keeps numba's axpy form load/store bound at about 3 multiply-adds per cycle);
 * and the column panels are the outer loop, so more than four streams reuse each panel from cache.
 *
 * Layout (all float32, C order; sizes padded to multiples of 16 by native.py, padding zero):
 *   embedding [Qp, R]; taps [L, R, 4H] (current filter | current gate | past filter | past gate);
 *   res [L, H, R], res_bias [L, R] (sqrt(1/2) folded in); skip [L * H, S], skip_bias [S];
 *   hidden [S, S], hidden_bias [S]; logits_w [S, Qp], logits_bias [Qp];
 *   frames [F, B, L, 2H] (F == 1: the same for every step), ring [B, slots, 2H] (past filter | past gate),
 *   noise [n_steps, B, Q] or NULL, teacher int64 [B, n_steps] or NULL, out int64 [B, n_steps],
 *   logits_out [n_steps, B, Q] or NULL; scratch: at least nb * (R + 4H + L*H + 2S + Qp + R) floats.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4)));  /* aligned(4): unaligned loads are fine */

static inline v16 load16(const float *p) { return *(const v16 *)p; }
static inline void store16(float *p, v16 v) { *(v16 *)p = v; }

/* The matrix weights (taps, res, skip, hidden, logits_w) are float32, or with -DSPEECHVQ_FP16_WEIGHTS
 * IEEE half precision, converted to float32 as they are loaded (vcvtph2ps): half the bytes to stream
 * per step, and the paper decoder's 1.7 MB then fit a 2 MB L2 cache. Activations and sums stay float32. */
#ifdef SPEECHVQ_FP16_WEIGHTS
#include <immintrin.h>
typedef uint16_t weight_t;  /* the bits of an IEEE half */
static inline v16 load16w(const weight_t *p) {
#if defined(__AVX512F__)
    return (v16)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#elif defined(__F16C__)
    union { v16 v; __m256 h[2]; } u;
    u.h[0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    u.h[1] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 8)));
    return u.v;
#else
#error "half-precision weights need F16C or AVX-512 (native.py then uses float32 weights)"
#endif
}
#else
typedef float weight_t;
static inline v16 load16w(const weight_t *p) { return load16(p); }
#endif

/* C[b, j:j+16*V] += A[b, :] W[:, j:j+16*V] for NB rows (b < NB), W [K, N] row-major: NB x V accumulators
 * in registers for the whole K loop. */
#define DEFINE_PANEL(NB, V)                                                                                   \
    static void panel_##NB##_##V(const float *restrict A, long lda, const weight_t *restrict W, long K, long N,\
                                 long j, float *restrict C, long ldc) {                                       \
        v16 acc[NB][V];                                                                                       \
        for (int b = 0; b < NB; b++)                                                                          \
            for (int q = 0; q < V; q++) acc[b][q] = load16(C + b * ldc + j + 16 * q);                         \
        for (long k = 0; k < K; k++) {                                                                        \
            const weight_t *w = W + k * N + j;                                                                \
            v16 wv[V];                                                                                        \
            for (int q = 0; q < V; q++) wv[q] = load16w(w + 16 * q);                                          \
            for (int b = 0; b < NB; b++) {                                                                    \
                float a = A[b * lda + k];                                                                     \
                for (int q = 0; q < V; q++) acc[b][q] += a * wv[q];                                           \
            }                                                                                                 \
        }                                                                                                     \
        for (int b = 0; b < NB; b++)                                                                          \
            for (int q = 0; q < V; q++) store16(C + b * ldc + j + 16 * q, acc[b][q]);                         \
    }

DEFINE_PANEL(1, 4)
DEFINE_PANEL(2, 4)
DEFINE_PANEL(3, 4)
DEFINE_PANEL(4, 4)
DEFINE_PANEL(1, 1)
DEFINE_PANEL(2, 1)
DEFINE_PANEL(3, 1)
DEFINE_PANEL(4, 1)

typedef void (*panel_fn)(const float *restrict, long, const weight_t *restrict, long, long, long, float *restrict,
                         long);
static const panel_fn panels_wide[5] = {0, panel_1_4, panel_2_4, panel_3_4, panel_4_4};
static const panel_fn panels_narrow[5] = {0, panel_1_1, panel_2_1, panel_3_1, panel_4_1};

/* C[b, :] += A[b, :] W for nb rows, N a multiple of 16. Column panels outermost: a panel of W (K x 64)
 * is read from memory once per step and from cache for every further group of four streams. */
static void gemm(long nb, const float *A, long lda, const weight_t *W, long K, long N, float *C, long ldc) {
    for (long j = 0; j < N;) {
        const int wide = j + 64 <= N;
        const panel_fn *panels = wide ? panels_wide : panels_narrow;
        for (long b = 0; b < nb; b += 4) {
            long rows = nb - b < 4 ? nb - b : 4;
            panels[rows](A + b * lda, lda, W, K, N, j, C + b * ldc, ldc);
        }
        j += wide ? 64 : 16;
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
               int64_t *out, float *logits_out, const int64_t *teacher, float *scratch) {
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
    for (long b = 0; b < nb; b++) tokens[b] = previous[lo + b];
    for (long step = 0; step < n_steps; step++) {
        const long t = t0 + step;
        const long frame = n_frames == 1 ? 0 : t / hop - frame0;
        for (long b = 0; b < nb; b++) {
            int64_t token = teacher ? teacher[(lo + b) * n_steps + step] : tokens[b];
            memcpy(x + b * R, embedding + token * R, R * sizeof(float));
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
