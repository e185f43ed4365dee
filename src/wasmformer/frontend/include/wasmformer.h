/*
 * wasmformer.h - machine-specific extras for C programs run by wasmformer.
 *
 * Programs use the standard C library: the front end compiles C for
 * wasm32-wasi against the wasi-libc that ziglang ships (stdio.h, stdlib.h,
 * string.h, ctype.h, assert.h, ...; docs/frontend.md, "The C library"). This
 * header is optional and adds only what is particular to the machine:
 *
 *   - its limits: WASMFORMER_MEMORY_LIMIT, WASMFORMER_PAGE;
 *   - its I/O instructions, one machine step each, unbuffered (the stdio
 *     functions go through the libc's buffers and the WASI helpers):
 *     wasmformer_putchar (one byte of stdout), wasmformer_putchar_err (one
 *     byte of stderr), wasmformer_getchar (the next input byte, or -1 at the
 *     end of the input; it shares the input with stdin, so do not mix the two
 *     on one input) and wasmformer_exit (ends the run with an exit status,
 *     without the libc's atexit handlers or stdio flush).
 */
#ifndef WASMFORMER_H
#define WASMFORMER_H

/* Bytes of linear memory the machine can address (MAX_MEMORY in
 * wasmformer.machine.tokens): malloc fails past it. */
#define WASMFORMER_MEMORY_LIMIT 1179648u
/* A WebAssembly page: memory.size and memory.grow count these. */
#define WASMFORMER_PAGE 65536u

__attribute__((import_module("wasmformer"), import_name("putchar")))
void wasmformer_putchar(int byte);

__attribute__((import_module("wasmformer"), import_name("putchar_err")))
void wasmformer_putchar_err(int byte);

__attribute__((import_module("wasmformer"), import_name("getchar")))
int wasmformer_getchar(void);

__attribute__((import_module("wasmformer"), import_name("exit"), noreturn))
void wasmformer_exit(int status);

#endif /* WASMFORMER_H */
