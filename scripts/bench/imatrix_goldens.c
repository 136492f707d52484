// Writes Tests/Fixtures/quant/weighted_goldens.safetensors: rows of pseudo-random floats with random importance
// weights, quantized by ggml's own weighted quantizers (ggml_quantize_chunk with an importance vector, the path
// `llama-quantize --imatrix` takes), for QuantizeTests. Built against a llama.cpp build outside the repository
// (scripts/bench/imatrix_parity.py --goldens does it):
//   cc -O2 -I$LLAMA/ggml/include imatrix_goldens.c -L$LLAMA/build/bin -lggml-base -lm -o goldens
//   LD_LIBRARY_PATH=$LLAMA/build/bin ./goldens OUT.safetensors
#include "ggml.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9E3779B97F4A7C15ull;
static double uniform(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) * (1.0 / 9007199254740992.0);
}
static float normal(void) {
    double a = uniform(), b = uniform();
    if (a < 1e-300) a = 1e-300;
    return (float)(sqrt(-2 * log(a)) * cos(6.283185307179586 * b));
}

// Input shapes that exercise the searches: plain normal, sparse outliers, all-zero groups, tiny values, one sign.
static float value(int mode, int64_t i) {
    float v = normal();
    switch (mode) {
    case 1: return uniform() < 0.02 ? 20 * v : v;
    case 2: return (i / 32) % 3 == 0 ? 0.f : v;
    case 3: return v * 1e-3f;
    case 4: return -fabsf(v);
    default: return v;
    }
}

enum { ROWS = 2, COLS = 512, CASES = 5 };
struct entry {
    char name[64];
    const char *dtype;
    int64_t shape[2];
    int rank;
    void *data;
    size_t bytes;
};
static struct entry entries[5 * CASES * 3];
static int n_entries = 0;
static void add(const char *name, const char *dtype, int64_t d0, int64_t d1, int rank, void *data, size_t bytes) {
    struct entry *e = &entries[n_entries++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype, e->shape[0] = d0, e->shape[1] = d1, e->rank = rank, e->data = data, e->bytes = bytes;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]), 2;
    // Q3_K last, so that the earlier types' cases keep their random streams
    const enum ggml_type types[5] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q3_K};
    const char *names[5] = {"q4_0", "q4_K", "q5_K", "q6_K", "q3_K"};
    for (int t = 0; t < 5; t++)
        for (int c = 0; c < CASES; c++) {
            float *x = malloc(sizeof(float) * ROWS * COLS), *w = malloc(sizeof(float) * COLS);
            for (int64_t i = 0; i < ROWS * COLS; i++) x[i] = value(c, i);
            for (int64_t j = 0; j < COLS; j++) {
                float g = normal();
                w[j] = j % 29 == 3 ? 0.f : g * g * (float)(0.01 + 10 * uniform());
            }
            size_t rb = ggml_row_size(types[t], COLS);
            uint8_t *q = calloc(ROWS, rb);
            ggml_quantize_chunk(types[t], x, q, 0, ROWS, COLS, w);
            char nm[64];
            snprintf(nm, sizeof nm, "%s.case%d.input", names[t], c);
            add(nm, "F32", ROWS, COLS, 2, x, sizeof(float) * ROWS * COLS);
            snprintf(nm, sizeof nm, "%s.case%d.weights", names[t], c);
            add(nm, "F32", COLS, 0, 1, w, sizeof(float) * COLS);
            snprintf(nm, sizeof nm, "%s.case%d.bytes", names[t], c);
            add(nm, "U8", ROWS, rb, 2, q, ROWS * rb);
        }
    char header[16384];
    size_t off = 0, hl = 0;
    hl += snprintf(header + hl, sizeof header - hl, "{");
    for (int i = 0; i < n_entries; i++) {
        struct entry *e = &entries[i];
        char shape[64];
        if (e->rank == 2) snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)e->shape[0], (long long)e->shape[1]);
        else snprintf(shape, sizeof shape, "[%lld]", (long long)e->shape[0]);
        hl += snprintf(header + hl, sizeof header - hl,
                       "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", i ? "," : "", e->name,
                       e->dtype, shape, off, off + e->bytes);
        off += e->bytes;
    }
    hl += snprintf(header + hl, sizeof header - hl, "}");
    while (hl % 8) header[hl++] = ' ';
    FILE *f = fopen(argv[1], "wb");
    if (!f) return perror(argv[1]), 1;
    uint64_t n = hl;
    fwrite(&n, 8, 1, f);
    fwrite(header, 1, hl, f);
    for (int i = 0; i < n_entries; i++) fwrite(entries[i].data, 1, entries[i].bytes, f);
    fclose(f);
    printf("wrote %s: %d tensors, %zu data bytes\n", argv[1], n_entries, off);
    return 0;
}
