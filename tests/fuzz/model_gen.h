/*
 * A small salpipe model file (docs/model-format.md) written from a description that
 * the fuzzer's bytes drive. Byte 0 picks one of five valid template networks (three
 * chains, format 1; from 0x80 a residual or an inception-like graph, format 2); the
 * rest is read as 4-byte operations: first the network itself is changed (a layer's
 * hyper-parameter, a layer inserted, removed, duplicated or swapped, the input
 * size; in the graph, a node's inputs, its alias, its place, its kind), then the
 * file is written consistently from it (every dataset shaped as the graph's shapes
 * say), then the written form is changed (an attribute's
 * value, type, element count or presence, a string, a dataset's shape, type or one
 * element, a group renamed or removed, an extra member). No bytes, or only the
 * template byte, give a valid model, so the fuzzer starts from files that load and
 * works outwards through every check of core/model.c.
 */
#ifndef FUZZ_MODEL_GEN_H
#define FUZZ_MODEL_GEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes the model described by data[0..size) to `path` (overwritten). Returns 0,
 * or -1 when HDF5 could not write it (then there is nothing to test). */
int mg_write(const uint8_t *data, size_t size, const char *path);

#endif
