;; Helper subroutines: the ops a machine may lack. The i32 ones are written with
;; basic ops only (const, add, sub, eqz, eq, ne, the compares, locals, select,
;; branches, calls); the i64 ones at the end use any i32 op.
;;
;; The front end lowers this module with its own pipeline and links in the
;; helpers a program needs (export name = the VM op's name). Every helper runs
;; in O(32) steps: the only shift available is "x + x" (one bit left), and the
;; top bit of x is "x <s 0", so numbers are read most significant bit first.
;; Imports from "wasmformer_helpers" become TRAP instructions with that reason,
;; imports from "wasmformer" the machine's I/O instructions (for the WASI
;; functions of wasi.wat, which the front end splices in before the last line).
;; The bulk memory helpers (memory_fill, memory_copy) read and write the user
;; program's memory: the front end lowers them with that program's memory, so
;; the memory declared here only makes the loads and stores valid wasm.
(module
  (import "wasmformer_helpers" "trap_divide_by_zero" (func $trap_divide_by_zero))
  (import "wasmformer_helpers" "trap_integer_overflow" (func $trap_integer_overflow))
  (import "wasmformer_helpers" "trap_out_of_bounds_memory" (func $trap_out_of_bounds_memory))
  (import "wasmformer" "putchar" (func $putchar (param i32)))
  (import "wasmformer" "putchar_err" (func $putchar_err (param i32)))
  (import "wasmformer" "getchar" (func $getchar (result i32)))
  (import "wasmformer" "exit" (func $exit (param i32)))
  (memory 0)

  ;; x << 8, unrolled: skipping a zero byte costs ~4 steps per bit instead of ~13
  (func $shift_left_8 (param $x i32) (result i32)
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (local.set $x (i32.add (local.get $x) (local.get $x)))
    (i32.add (local.get $x) (local.get $x)))

  ;; a * b (mod 2^32): Horner over the bits of the smaller factor, top bit first,
  ;; starting at its highest set bit.
  (func $mul (export "mul") (param $a i32) (param $b i32) (result i32)
    (local $product i32) (local $bits i32) (local $swap i32)
    (if (i32.lt_u (local.get $a) (local.get $b))
      (then (local.set $swap (local.get $a))
            (local.set $a (local.get $b))
            (local.set $b (local.get $swap))))
    (if (i32.eqz (local.get $b)) (then (return (i32.const 0))))
    (local.set $bits (i32.const 32))
    (loop $skip_zero_byte
      (if (i32.lt_u (local.get $b) (i32.const 0x1000000))
        (then (local.set $b (call $shift_left_8 (local.get $b)))
              (local.set $bits (i32.sub (local.get $bits) (i32.const 8)))
              (br $skip_zero_byte))))
    (block $top_bit_found
      (loop $skip_leading_zero
        (br_if $top_bit_found (i32.lt_s (local.get $b) (i32.const 0)))
        (local.set $b (i32.add (local.get $b) (local.get $b)))
        (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
        (br $skip_leading_zero)))
    (loop $next_bit
      (local.set $product (i32.add (local.get $product) (local.get $product)))
      (if (i32.lt_s (local.get $b) (i32.const 0))
        (then (local.set $product (i32.add (local.get $product) (local.get $a)))))
      (local.set $b (i32.add (local.get $b) (local.get $b)))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $next_bit (local.get $bits)))
    (local.get $product))

  ;; unsigned n / d and n % d (restoring division, top bit of n first).
  (func $divmod_u (param $n i32) (param $d i32) (result i32 i32)
    (local $quotient i32) (local $remainder i32) (local $bits i32) (local $carry i32)
    (if (i32.eqz (local.get $d)) (then (call $trap_divide_by_zero)))
    (if (i32.lt_u (local.get $n) (local.get $d))
      (then (return (i32.const 0) (local.get $n))))
    ;; here n >= d > 0, so n has a top bit: skip the zeros above it
    (local.set $bits (i32.const 32))
    (loop $skip_zero_byte
      (if (i32.lt_u (local.get $n) (i32.const 0x1000000))
        (then (local.set $n (call $shift_left_8 (local.get $n)))
              (local.set $bits (i32.sub (local.get $bits) (i32.const 8)))
              (br $skip_zero_byte))))
    (block $top_bit_found
      (loop $skip_leading_zero
        (br_if $top_bit_found (i32.lt_s (local.get $n) (i32.const 0)))
        (local.set $n (i32.add (local.get $n) (local.get $n)))
        (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
        (br $skip_leading_zero)))
    (loop $next_bit
      ;; remainder = 2 * remainder + top bit of n; carry = the bit that left the remainder
      (local.set $carry (i32.lt_s (local.get $remainder) (i32.const 0)))
      (local.set $remainder
        (i32.add (i32.add (local.get $remainder) (local.get $remainder))
                 (i32.lt_s (local.get $n) (i32.const 0))))
      (local.set $n (i32.add (local.get $n) (local.get $n)))
      (local.set $quotient (i32.add (local.get $quotient) (local.get $quotient)))
      ;; the true remainder (carry * 2^32 + remainder) is at least d: subtract (mod 2^32 is exact)
      (if (select (i32.const 1) (i32.ge_u (local.get $remainder) (local.get $d)) (local.get $carry))
        (then (local.set $remainder (i32.sub (local.get $remainder) (local.get $d)))
              (local.set $quotient (i32.add (local.get $quotient) (i32.const 1)))))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $next_bit (local.get $bits)))
    (local.get $quotient) (local.get $remainder))

  (func $div_u (export "div_u") (param $n i32) (param $d i32) (result i32)
    (call $divmod_u (local.get $n) (local.get $d))
    (drop))

  (func $rem_u (export "rem_u") (param $n i32) (param $d i32) (result i32)
    (local $remainder i32)
    (call $divmod_u (local.get $n) (local.get $d))
    (local.set $remainder)
    (drop)
    (local.get $remainder))

  (func $abs (param $x i32) (result i32)
    (select (i32.sub (i32.const 0) (local.get $x)) (local.get $x) (i32.lt_s (local.get $x) (i32.const 0))))

  ;; signed division truncates toward zero; INT_MIN / -1 overflows.
  (func $div_s (export "div_s") (param $a i32) (param $b i32) (result i32)
    (local $quotient i32)
    (if (i32.eqz (local.get $b)) (then (call $trap_divide_by_zero)))
    (if (i32.eq (local.get $b) (i32.const -1))
      (then
        (if (i32.eq (local.get $a) (i32.const 0x80000000)) (then (call $trap_integer_overflow)))
        (return (i32.sub (i32.const 0) (local.get $a)))))
    (call $divmod_u (call $abs (local.get $a)) (call $abs (local.get $b)))
    (drop)
    (local.set $quotient)
    (select (i32.sub (i32.const 0) (local.get $quotient)) (local.get $quotient)
            (i32.ne (i32.lt_s (local.get $a) (i32.const 0)) (i32.lt_s (local.get $b) (i32.const 0)))))

  ;; the signed remainder has the sign of the dividend; x % -1 = 0 (no overflow).
  (func $rem_s (export "rem_s") (param $a i32) (param $b i32) (result i32)
    (local $remainder i32)
    (if (i32.eqz (local.get $b)) (then (call $trap_divide_by_zero)))
    (if (i32.eq (local.get $b) (i32.const -1)) (then (return (i32.const 0))))
    (call $divmod_u (call $abs (local.get $a)) (call $abs (local.get $b)))
    (local.set $remainder)
    (drop)
    (select (i32.sub (i32.const 0) (local.get $remainder)) (local.get $remainder)
            (i32.lt_s (local.get $a) (i32.const 0))))

  ;; Bitwise ops, bit by bit from the top: with s = (top bit of a) + (top bit of b),
  ;; the result bit is 1 when low <= s <= high (and: 2..2, or: 1..2, xor: 1..1).
  ;; While the top bytes give zero result bits (both zero, or for "and" either
  ;; zero: $small_needed = 2 or 1), skip them a byte at a time; the result is still 0.
  (func $bitwise (param $a i32) (param $b i32) (param $low i32) (param $high i32) (result i32)
    (local $result i32) (local $bits i32) (local $sum i32) (local $small_needed i32)
    (local.set $small_needed (select (i32.const 1) (i32.const 2) (i32.eq (local.get $low) (i32.const 2))))
    (local.set $bits (i32.const 32))
    (block $skipped
      (loop $skip_zero_byte
        (br_if $skipped
          (i32.lt_u (i32.add (i32.lt_u (local.get $a) (i32.const 0x1000000))
                             (i32.lt_u (local.get $b) (i32.const 0x1000000)))
                    (local.get $small_needed)))
        (local.set $a (call $shift_left_8 (local.get $a)))
        (local.set $b (call $shift_left_8 (local.get $b)))
        (local.set $bits (i32.sub (local.get $bits) (i32.const 8)))
        (br_if $skip_zero_byte (local.get $bits))
        (return (i32.const 0))))
    (loop $next_bit
      (local.set $sum (i32.add (i32.lt_s (local.get $a) (i32.const 0)) (i32.lt_s (local.get $b) (i32.const 0))))
      (local.set $result
        (i32.add (i32.add (local.get $result) (local.get $result))
                 (select (i32.le_u (local.get $sum) (local.get $high)) (i32.const 0)
                         (i32.ge_u (local.get $sum) (local.get $low)))))
      (local.set $a (i32.add (local.get $a) (local.get $a)))
      (local.set $b (i32.add (local.get $b) (local.get $b)))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $next_bit (local.get $bits)))
    (local.get $result))

  (func $and (export "and") (param $a i32) (param $b i32) (result i32)
    (call $bitwise (local.get $a) (local.get $b) (i32.const 2) (i32.const 2)))

  (func $or (export "or") (param $a i32) (param $b i32) (result i32)
    (call $bitwise (local.get $a) (local.get $b) (i32.const 1) (i32.const 2)))

  (func $xor (export "xor") (param $a i32) (param $b i32) (result i32)
    (call $bitwise (local.get $a) (local.get $b) (i32.const 1) (i32.const 1)))

  ;; c mod 32, the shift count wasm uses: move the low 5 bits to the top
  ;; (27 doublings), then read them back.
  (func $low5 (param $c i32) (result i32)
    (local $bits i32) (local $result i32)
    (if (i32.lt_u (local.get $c) (i32.const 32)) (then (return (local.get $c))))
    (local.set $bits (i32.const 27))
    (loop $shift_up
      (local.set $c (i32.add (local.get $c) (local.get $c)))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $shift_up (local.get $bits)))
    (local.set $bits (i32.const 5))
    (loop $read_bit
      (local.set $result
        (i32.add (i32.add (local.get $result) (local.get $result)) (i32.lt_s (local.get $c) (i32.const 0))))
      (local.set $c (i32.add (local.get $c) (local.get $c)))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $read_bit (local.get $bits)))
    (local.get $result))

  ;; x << count for 0 <= count < 32
  (func $shift_left (param $x i32) (param $count i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $x (i32.add (local.get $x) (local.get $x)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next)))
    (local.get $x))

  ;; x >> count for 0 <= count < 32, the vacated top bits filled with $fill (0 or -1):
  ;; Horner over the top 32 - count bits of x, starting from fill.
  (func $shift_right (param $x i32) (param $count i32) (param $fill i32) (result i32)
    (local $bits i32)
    (local.set $bits (i32.sub (i32.const 32) (local.get $count)))
    (loop $next_bit
      (local.set $fill
        (i32.add (i32.add (local.get $fill) (local.get $fill)) (i32.lt_s (local.get $x) (i32.const 0))))
      (local.set $x (i32.add (local.get $x) (local.get $x)))
      (local.set $bits (i32.sub (local.get $bits) (i32.const 1)))
      (br_if $next_bit (local.get $bits)))
    (local.get $fill))

  (func $shl (export "shl") (param $x i32) (param $c i32) (result i32)
    (call $shift_left (local.get $x) (call $low5 (local.get $c))))

  (func $shr_u (export "shr_u") (param $x i32) (param $c i32) (result i32)
    (call $shift_right (local.get $x) (call $low5 (local.get $c)) (i32.const 0)))

  (func $shr_s (export "shr_s") (param $x i32) (param $c i32) (result i32)
    (call $shift_right (local.get $x) (call $low5 (local.get $c))
                       (i32.sub (i32.const 0) (i32.lt_s (local.get $x) (i32.const 0)))))

  ;; rotate left: the bit leaving the top comes back in at the bottom
  (func $rotl (export "rotl") (param $x i32) (param $c i32) (result i32)
    (local.set $c (call $low5 (local.get $c)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $c)))
        (local.set $x (i32.add (i32.add (local.get $x) (local.get $x)) (i32.lt_s (local.get $x) (i32.const 0))))
        (local.set $c (i32.sub (local.get $c) (i32.const 1)))
        (br $next)))
    (local.get $x))

  (func $rotr (export "rotr") (param $x i32) (param $c i32) (result i32)
    (local.set $c (call $low5 (local.get $c)))
    (if (i32.eqz (local.get $c)) (then (return (local.get $x))))
    (call $rotl (local.get $x) (i32.sub (i32.const 32) (local.get $c))))

  (func $clz (export "clz") (param $x i32) (result i32)
    (local $count i32)
    (if (i32.eqz (local.get $x)) (then (return (i32.const 32))))
    (block $done
      (loop $next
        (br_if $done (i32.lt_s (local.get $x) (i32.const 0)))
        (local.set $x (i32.add (local.get $x) (local.get $x)))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $next)))
    (local.get $count))

  ;; ctz = 32 - (the number of doublings that turn x into 0)
  (func $ctz (export "ctz") (param $x i32) (result i32)
    (local $doublings i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $x)))
        (local.set $x (i32.add (local.get $x) (local.get $x)))
        (local.set $doublings (i32.add (local.get $doublings) (i32.const 1)))
        (br $next)))
    (i32.sub (i32.const 32) (local.get $doublings)))

  (func $popcnt (export "popcnt") (param $x i32) (result i32)
    (local $count i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $x)))
        (local.set $count (i32.add (local.get $count) (i32.lt_s (local.get $x) (i32.const 0))))
        (local.set $x (i32.add (local.get $x) (local.get $x)))
        (br $next)))
    (local.get $count))

  ;; sign-extend the low 8 / 16 bits: move them to the top, shift back arithmetically
  (func $extend8_s (export "extend8_s") (param $x i32) (result i32)
    (local.set $x (call $shift_left (local.get $x) (i32.const 24)))
    (call $shift_right (local.get $x) (i32.const 24)
                       (i32.sub (i32.const 0) (i32.lt_s (local.get $x) (i32.const 0)))))

  (func $extend16_s (export "extend16_s") (param $x i32) (result i32)
    (local.set $x (call $shift_left (local.get $x) (i32.const 16)))
    (call $shift_right (local.get $x) (i32.const 16)
                       (i32.sub (i32.const 0) (i32.lt_s (local.get $x) (i32.const 0)))))

  ;; Bulk memory. $limit is the memory's current size in bytes (the lowering
  ;; pushes it after wasm's three operands): like wasm, the whole range is
  ;; checked before any byte is written.

  ;; traps unless address + length <= limit (unsigned, without overflow)
  (func $check_range (param $address i32) (param $length i32) (param $limit i32)
    (if (i32.gt_u (local.get $address) (local.get $limit)) (then (call $trap_out_of_bounds_memory)))
    (if (i32.gt_u (local.get $length) (i32.sub (local.get $limit) (local.get $address)))
      (then (call $trap_out_of_bounds_memory))))

  ;; memory.fill: n bytes at d set to the low byte of value. Once four bytes are
  ;; stored one by one, the word they form is stored 16 bytes (four words) a
  ;; step, then single words, then the last bytes.
  (func $memory_fill (export "memory_fill") (param $d i32) (param $value i32) (param $n i32) (param $limit i32)
    (local $word i32)
    (call $check_range (local.get $d) (local.get $n) (local.get $limit))
    (if (i32.ge_u (local.get $n) (i32.const 4))
      (then
        (i32.store8 (local.get $d) (local.get $value))
        (i32.store8 offset=1 (local.get $d) (local.get $value))
        (i32.store8 offset=2 (local.get $d) (local.get $value))
        (i32.store8 offset=3 (local.get $d) (local.get $value))
        (local.set $word (i32.load (local.get $d)))
        (block $blocks_done
          (loop $next_block
            (br_if $blocks_done (i32.lt_u (local.get $n) (i32.const 16)))
            (i32.store (local.get $d) (local.get $word))
            (i32.store offset=4 (local.get $d) (local.get $word))
            (i32.store offset=8 (local.get $d) (local.get $word))
            (i32.store offset=12 (local.get $d) (local.get $word))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (local.set $n (i32.sub (local.get $n) (i32.const 16)))
            (br $next_block)))
        (block $words_done
          (loop $next_word
            (br_if $words_done (i32.lt_u (local.get $n) (i32.const 4)))
            (i32.store (local.get $d) (local.get $word))
            (local.set $d (i32.add (local.get $d) (i32.const 4)))
            (local.set $n (i32.sub (local.get $n) (i32.const 4)))
            (br $next_word)))))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $d) (local.get $value))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))

  ;; memory.copy: n bytes from s to d as memmove does. Forwards when d <= s
  ;; (lowest address first), backwards when d > s (highest first): 16 bytes
  ;; (four words) a step, then words, then bytes. Each word is read before it
  ;; is written, and every later read lies beyond what was written (above it
  ;; forwards, below it backwards), so no source byte is overwritten before it
  ;; is read, however the ranges overlap.
  (func $memory_copy (export "memory_copy") (param $d i32) (param $s i32) (param $n i32) (param $limit i32)
    (call $check_range (local.get $d) (local.get $n) (local.get $limit))
    (call $check_range (local.get $s) (local.get $n) (local.get $limit))
    (if (i32.le_u (local.get $d) (local.get $s))
      (then (call $copy_forwards (local.get $d) (local.get $s) (local.get $n)))
      (else (call $copy_backwards (local.get $d) (local.get $s) (local.get $n)))))

  (func $copy_forwards (param $d i32) (param $s i32) (param $n i32)
    (block $blocks_done
      (loop $next_block
        (br_if $blocks_done (i32.lt_u (local.get $n) (i32.const 16)))
        (i32.store (local.get $d) (i32.load (local.get $s)))
        (i32.store offset=4 (local.get $d) (i32.load offset=4 (local.get $s)))
        (i32.store offset=8 (local.get $d) (i32.load offset=8 (local.get $s)))
        (i32.store offset=12 (local.get $d) (i32.load offset=12 (local.get $s)))
        (local.set $d (i32.add (local.get $d) (i32.const 16)))
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (local.set $n (i32.sub (local.get $n) (i32.const 16)))
        (br $next_block)))
    (block $words_done
      (loop $next_word
        (br_if $words_done (i32.lt_u (local.get $n) (i32.const 4)))
        (i32.store (local.get $d) (i32.load (local.get $s)))
        (local.set $d (i32.add (local.get $d) (i32.const 4)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $next_word)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $d) (i32.load8_u (local.get $s)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))

  ;; $d and $s start at the ends of the ranges; n bytes remain below them.
  (func $copy_backwards (param $d i32) (param $s i32) (param $n i32)
    (local.set $d (i32.add (local.get $d) (local.get $n)))
    (local.set $s (i32.add (local.get $s) (local.get $n)))
    (block $blocks_done
      (loop $next_block
        (br_if $blocks_done (i32.lt_u (local.get $n) (i32.const 16)))
        (local.set $d (i32.sub (local.get $d) (i32.const 16)))
        (local.set $s (i32.sub (local.get $s) (i32.const 16)))
        (i32.store offset=12 (local.get $d) (i32.load offset=12 (local.get $s)))
        (i32.store offset=8 (local.get $d) (i32.load offset=8 (local.get $s)))
        (i32.store offset=4 (local.get $d) (i32.load offset=4 (local.get $s)))
        (i32.store (local.get $d) (i32.load (local.get $s)))
        (local.set $n (i32.sub (local.get $n) (i32.const 16)))
        (br $next_block)))
    (block $words_done
      (loop $next_word
        (br_if $words_done (i32.lt_u (local.get $n) (i32.const 4)))
        (local.set $d (i32.sub (local.get $d) (i32.const 4)))
        (local.set $s (i32.sub (local.get $s) (i32.const 4)))
        (i32.store (local.get $d) (i32.load (local.get $s)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $next_word)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $d (i32.sub (local.get $d) (i32.const 1)))
        (local.set $s (i32.sub (local.get $s) (i32.const 1)))
        (i32.store8 (local.get $d) (i32.load8_u (local.get $s)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next))))

  ;; --- i64 on word pairs ---------------------------------------------------------------
  ;; An i64 is two i32 words, low first (frontend/words.py): (param $al $ah $bl $bh) are
  ;; a's and b's words, results are (low, high). These helpers may use every i32 op: the
  ;; front end turns one the machine lacks into a call of its helper above.

  (func $add64 (export "add64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $low i32)
    (local.set $low (i32.add (local.get $al) (local.get $bl)))
    (local.get $low)
    (i32.add (i32.add (local.get $ah) (local.get $bh)) (i32.lt_u (local.get $low) (local.get $al))))

  (func $sub64 (export "sub64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (i32.sub (local.get $al) (local.get $bl))
    (i32.sub (i32.sub (local.get $ah) (local.get $bh)) (i32.lt_u (local.get $al) (local.get $bl))))

  (func $and64 (export "and64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (i32.and (local.get $al) (local.get $bl)) (i32.and (local.get $ah) (local.get $bh)))

  (func $or64 (export "or64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (i32.or (local.get $al) (local.get $bl)) (i32.or (local.get $ah) (local.get $bh)))

  (func $xor64 (export "xor64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (i32.xor (local.get $al) (local.get $bl)) (i32.xor (local.get $ah) (local.get $bh)))

  (func $eq64 (export "eq64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (select (i32.eq (local.get $al) (local.get $bl)) (i32.const 0) (i32.eq (local.get $ah) (local.get $bh))))

  (func $ne64 (export "ne64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (i32.eqz (call $eq64 (local.get $al) (local.get $ah) (local.get $bl) (local.get $bh))))

  ;; the high words decide unless they are equal; then the low words, unsigned
  (func $lt_u64 (export "lt_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (select (i32.lt_u (local.get $al) (local.get $bl)) (i32.lt_u (local.get $ah) (local.get $bh))
            (i32.eq (local.get $ah) (local.get $bh))))

  (func $lt_s64 (export "lt_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (select (i32.lt_u (local.get $al) (local.get $bl)) (i32.lt_s (local.get $ah) (local.get $bh))
            (i32.eq (local.get $ah) (local.get $bh))))

  (func $gt_u64 (export "gt_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (call $lt_u64 (local.get $bl) (local.get $bh) (local.get $al) (local.get $ah)))

  (func $gt_s64 (export "gt_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (call $lt_s64 (local.get $bl) (local.get $bh) (local.get $al) (local.get $ah)))

  (func $le_u64 (export "le_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (i32.eqz (call $lt_u64 (local.get $bl) (local.get $bh) (local.get $al) (local.get $ah))))

  (func $le_s64 (export "le_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (i32.eqz (call $lt_s64 (local.get $bl) (local.get $bh) (local.get $al) (local.get $ah))))

  (func $ge_u64 (export "ge_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (i32.eqz (call $lt_u64 (local.get $al) (local.get $ah) (local.get $bl) (local.get $bh))))

  (func $ge_s64 (export "ge_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32)
    (i32.eqz (call $lt_s64 (local.get $al) (local.get $ah) (local.get $bl) (local.get $bh))))

  ;; shifts by n = the count mod 64; by 32 or more, one word moves whole into the other
  (func $shl64 (export "shl64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $n i32)
    (local.set $n (i32.and (local.get $bl) (i32.const 63)))
    (if (i32.eqz (local.get $n)) (then (return (local.get $al) (local.get $ah))))
    (if (i32.ge_u (local.get $n) (i32.const 32))
      (then (return (i32.const 0) (i32.shl (local.get $al) (i32.sub (local.get $n) (i32.const 32))))))
    (i32.shl (local.get $al) (local.get $n))
    (i32.or (i32.shl (local.get $ah) (local.get $n))
            (i32.shr_u (local.get $al) (i32.sub (i32.const 32) (local.get $n)))))

  (func $shr_u64 (export "shr_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $n i32)
    (local.set $n (i32.and (local.get $bl) (i32.const 63)))
    (if (i32.eqz (local.get $n)) (then (return (local.get $al) (local.get $ah))))
    (if (i32.ge_u (local.get $n) (i32.const 32))
      (then (return (i32.shr_u (local.get $ah) (i32.sub (local.get $n) (i32.const 32))) (i32.const 0))))
    (i32.or (i32.shr_u (local.get $al) (local.get $n))
            (i32.shl (local.get $ah) (i32.sub (i32.const 32) (local.get $n))))
    (i32.shr_u (local.get $ah) (local.get $n)))

  (func $shr_s64 (export "shr_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $n i32)
    (local.set $n (i32.and (local.get $bl) (i32.const 63)))
    (if (i32.eqz (local.get $n)) (then (return (local.get $al) (local.get $ah))))
    (if (i32.ge_u (local.get $n) (i32.const 32))
      (then (return (i32.shr_s (local.get $ah) (i32.sub (local.get $n) (i32.const 32)))
                    (i32.shr_s (local.get $ah) (i32.const 31)))))
    (i32.or (i32.shr_u (local.get $al) (local.get $n))
            (i32.shl (local.get $ah) (i32.sub (i32.const 32) (local.get $n))))
    (i32.shr_s (local.get $ah) (local.get $n)))

  ;; a rotation is the or of the two shifts (by n and by 64 - n; both counts are taken mod 64)
  (func $rotl64 (export "rotl64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $left_low i32) (local $left_high i32) (local $right_high i32)
    (call $shl64 (local.get $al) (local.get $ah) (local.get $bl) (i32.const 0))
    (local.set $left_high) (local.set $left_low)
    (call $shr_u64 (local.get $al) (local.get $ah) (i32.sub (i32.const 64) (local.get $bl)) (i32.const 0))
    (local.set $right_high)
    (i32.or (local.get $left_low))
    (i32.or (local.get $left_high) (local.get $right_high)))

  (func $rotr64 (export "rotr64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (call $rotl64 (local.get $al) (local.get $ah) (i32.sub (i32.const 64) (local.get $bl)) (i32.const 0)))

  (func $clz64 (export "clz64") (param $al i32) (param $ah i32) (result i32 i32)
    (select (i32.clz (local.get $ah)) (i32.add (i32.const 32) (i32.clz (local.get $al))) (local.get $ah))
    (i32.const 0))

  (func $ctz64 (export "ctz64") (param $al i32) (param $ah i32) (result i32 i32)
    (select (i32.ctz (local.get $al)) (i32.add (i32.const 32) (i32.ctz (local.get $ah))) (local.get $al))
    (i32.const 0))

  (func $popcnt64 (export "popcnt64") (param $al i32) (param $ah i32) (result i32 i32)
    (i32.add (i32.popcnt (local.get $al)) (i32.popcnt (local.get $ah)))
    (i32.const 0))

  ;; the high word of the 64-bit product of two words, from four products of 16-bit halves
  (func $mul_high_u (param $x i32) (param $y i32) (result i32)
    (local $x0 i32) (local $x1 i32) (local $y0 i32) (local $y1 i32)
    (local $p00 i32) (local $p01 i32) (local $p10 i32)
    (local.set $x0 (i32.and (local.get $x) (i32.const 0xffff)))
    (local.set $x1 (i32.shr_u (local.get $x) (i32.const 16)))
    (local.set $y0 (i32.and (local.get $y) (i32.const 0xffff)))
    (local.set $y1 (i32.shr_u (local.get $y) (i32.const 16)))
    (local.set $p00 (i32.mul (local.get $x0) (local.get $y0)))
    (local.set $p01 (i32.mul (local.get $x0) (local.get $y1)))
    (local.set $p10 (i32.mul (local.get $x1) (local.get $y0)))
    (i32.add
      (i32.add (i32.mul (local.get $x1) (local.get $y1))
               (i32.add (i32.shr_u (local.get $p01) (i32.const 16)) (i32.shr_u (local.get $p10) (i32.const 16))))
      (i32.shr_u
        (i32.add (i32.shr_u (local.get $p00) (i32.const 16))
                 (i32.add (i32.and (local.get $p01) (i32.const 0xffff)) (i32.and (local.get $p10) (i32.const 0xffff))))
        (i32.const 16))))

  (func $mul64 (export "mul64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (i32.mul (local.get $al) (local.get $bl))
    (i32.add (call $mul_high_u (local.get $al) (local.get $bl))
             (i32.add (i32.mul (local.get $al) (local.get $bh)) (i32.mul (local.get $ah) (local.get $bl)))))

  ;; unsigned (u1 * 2^32 + u0) / v and its remainder, for u1 < v (the quotient fits a word): long division
  ;; by two 16-bit digits on the normalised divisor, each digit estimated by the machine's own i32 division
  ;; and corrected at most twice (Knuth's algorithm D, as Hacker's Delight writes it for 64/32 bits).
  (func $divlu (param $u1 i32) (param $u0 i32) (param $v i32) (result i32 i32)
    (local $shift i32) (local $vn1 i32) (local $vn0 i32) (local $un32 i32) (local $un10 i32) (local $un1 i32)
    (local $un0 i32) (local $q1 i32) (local $q0 i32) (local $rhat i32) (local $un21 i32)
    (local.set $shift (i32.clz (local.get $v)))
    (local.set $v (i32.shl (local.get $v) (local.get $shift)))
    (local.set $vn1 (i32.shr_u (local.get $v) (i32.const 16)))
    (local.set $vn0 (i32.and (local.get $v) (i32.const 0xffff)))
    ;; u0 >> (32 - shift) is u0 >> 0 when shift = 0: the mask (-shift >> 31) is then 0
    (local.set $un32 (i32.or (i32.shl (local.get $u1) (local.get $shift))
                             (i32.and (i32.shr_u (local.get $u0) (i32.sub (i32.const 32) (local.get $shift)))
                                      (i32.shr_s (i32.sub (i32.const 0) (local.get $shift)) (i32.const 31)))))
    (local.set $un10 (i32.shl (local.get $u0) (local.get $shift)))
    (local.set $un1 (i32.shr_u (local.get $un10) (i32.const 16)))
    (local.set $un0 (i32.and (local.get $un10) (i32.const 0xffff)))
    (local.set $q1 (i32.div_u (local.get $un32) (local.get $vn1)))
    (local.set $rhat (i32.sub (local.get $un32) (i32.mul (local.get $q1) (local.get $vn1))))
    (call $digit_estimate (local.get $q1) (local.get $rhat) (local.get $vn1) (local.get $vn0) (local.get $un1))
    (local.set $q1)
    (local.set $un21 (i32.sub (i32.add (i32.shl (local.get $un32) (i32.const 16)) (local.get $un1))
                              (i32.mul (local.get $q1) (local.get $v))))
    (local.set $q0 (i32.div_u (local.get $un21) (local.get $vn1)))
    (local.set $rhat (i32.sub (local.get $un21) (i32.mul (local.get $q0) (local.get $vn1))))
    (call $digit_estimate (local.get $q0) (local.get $rhat) (local.get $vn1) (local.get $vn0) (local.get $un0))
    (local.set $q0)
    (i32.or (i32.shl (local.get $q1) (i32.const 16)) (local.get $q0))
    (i32.shr_u (i32.sub (i32.add (i32.shl (local.get $un21) (i32.const 16)) (local.get $un0))
                        (i32.mul (local.get $q0) (local.get $v)))
               (local.get $shift)))

  ;; a quotient digit q (with rhat = the partial dividend's top - q * vn1) lowered while it is too large:
  ;; q >= 2^16, or q * vn0 > rhat * 2^16 + the next digit (compared only when both sides fit a word)
  (func $digit_estimate (param $q i32) (param $rhat i32) (param $vn1 i32) (param $vn0 i32) (param $next i32)
                        (result i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (select (i32.const 1)
                                      (i32.gt_u (i32.mul (local.get $q) (local.get $vn0))
                                                (i32.or (i32.shl (local.get $rhat) (i32.const 16)) (local.get $next)))
                                      (i32.ge_u (local.get $q) (i32.const 0x10000)))))
        (local.set $q (i32.sub (local.get $q) (i32.const 1)))
        (local.set $rhat (i32.add (local.get $rhat) (local.get $vn1)))
        (br_if $again (i32.lt_u (local.get $rhat) (i32.const 0x10000)))))
    (local.get $q))

  ;; unsigned n / d and n % d on word pairs: (quotient low, high, remainder low, high). Both in one word: the
  ;; machine's own division; a divisor below 2^16: three of them; a one-word divisor: two steps of $divlu; a two-word divisor: the quotient (one
  ;; word) estimated from n / 2 and d's top 32 bits normalised, then corrected once (Hacker's Delight, divDu).
  (func $divmod_u64 (param $nl i32) (param $nh i32) (param $dl i32) (param $dh i32) (result i32 i32 i32 i32)
    (local $q i32) (local $qh i32) (local $r i32) (local $shift i32) (local $top i32) (local $pl i32) (local $ph i32)
    (if (i32.eqz (i32.or (local.get $dl) (local.get $dh))) (then (call $trap_divide_by_zero)))
    (if (i32.eqz (i32.or (local.get $nh) (local.get $dh)))
      (then (return (i32.div_u (local.get $nl) (local.get $dl)) (i32.const 0)
                    (i32.rem_u (local.get $nl) (local.get $dl)) (i32.const 0))))
    ;; a divisor below 2^16 (printing in decimal): long division by 16-bit digits, each partial
    ;; dividend (remainder * 2^16 + digit) below 2^32, so the machine's own division does each
    (if (i32.eqz (i32.or (local.get $dh) (i32.shr_u (local.get $dl) (i32.const 16))))
      (then
        (local.set $qh (i32.div_u (local.get $nh) (local.get $dl)))
        (local.set $r (i32.or (i32.shl (i32.rem_u (local.get $nh) (local.get $dl)) (i32.const 16))
                              (i32.shr_u (local.get $nl) (i32.const 16))))
        (local.set $q (i32.shl (i32.div_u (local.get $r) (local.get $dl)) (i32.const 16)))
        (local.set $r (i32.or (i32.shl (i32.rem_u (local.get $r) (local.get $dl)) (i32.const 16))
                              (i32.and (local.get $nl) (i32.const 0xffff))))
        (return (i32.or (local.get $q) (i32.div_u (local.get $r) (local.get $dl))) (local.get $qh)
                (i32.rem_u (local.get $r) (local.get $dl)) (i32.const 0))))
    (if (i32.eqz (local.get $dh))
      (then
        (if (i32.ge_u (local.get $nh) (local.get $dl))
          (then (local.set $qh (i32.div_u (local.get $nh) (local.get $dl)))
                (local.set $nh (i32.rem_u (local.get $nh) (local.get $dl)))))
        (call $divlu (local.get $nh) (local.get $nl) (local.get $dl))
        (local.set $r) (local.set $q)
        (return (local.get $q) (local.get $qh) (local.get $r) (i32.const 0))))
    (if (call $lt_u64 (local.get $nl) (local.get $nh) (local.get $dl) (local.get $dh))
      (then (return (i32.const 0) (i32.const 0) (local.get $nl) (local.get $nh))))
    ;; d >= 2^32: the quotient is below 2^32
    (local.set $shift (i32.clz (local.get $dh)))
    (local.set $top (i32.or (i32.shl (local.get $dh) (local.get $shift))
                            (i32.and (i32.shr_u (local.get $dl) (i32.sub (i32.const 32) (local.get $shift)))
                                     (i32.shr_s (i32.sub (i32.const 0) (local.get $shift)) (i32.const 31)))))
    (call $divlu (i32.shr_u (local.get $nh) (i32.const 1))
                 (i32.or (i32.shr_u (local.get $nl) (i32.const 1)) (i32.shl (local.get $nh) (i32.const 31)))
                 (local.get $top))
    (drop)
    (local.set $q)
    (local.set $q (i32.shr_u (local.get $q) (i32.sub (i32.const 31) (local.get $shift))))
    (if (local.get $q) (then (local.set $q (i32.sub (local.get $q) (i32.const 1)))))
    ;; r = n - q * d (q * d < 2^64); one more d if it still fits
    (call $mul64 (local.get $q) (i32.const 0) (local.get $dl) (local.get $dh))
    (local.set $ph) (local.set $pl)
    (call $sub64 (local.get $nl) (local.get $nh) (local.get $pl) (local.get $ph))
    (local.set $ph) (local.set $pl)
    (if (i32.eqz (call $lt_u64 (local.get $pl) (local.get $ph) (local.get $dl) (local.get $dh)))
      (then (local.set $q (i32.add (local.get $q) (i32.const 1)))
            (call $sub64 (local.get $pl) (local.get $ph) (local.get $dl) (local.get $dh))
            (local.set $ph) (local.set $pl)))
    (local.get $q) (i32.const 0) (local.get $pl) (local.get $ph))

  (func $div_u64 (export "div_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (call $divmod_u64 (local.get $al) (local.get $ah) (local.get $bl) (local.get $bh))
    (drop) (drop))

  (func $rem_u64 (export "rem_u64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $rl i32) (local $rh i32)
    (call $divmod_u64 (local.get $al) (local.get $ah) (local.get $bl) (local.get $bh))
    (local.set $rh) (local.set $rl) (drop) (drop)
    (local.get $rl) (local.get $rh))

  (func $negate64 (param $l i32) (param $h i32) (result i32 i32)
    (call $sub64 (i32.const 0) (i32.const 0) (local.get $l) (local.get $h)))

  (func $abs64 (param $l i32) (param $h i32) (result i32 i32)
    (if (result i32 i32) (i32.lt_s (local.get $h) (i32.const 0))
      (then (call $negate64 (local.get $l) (local.get $h)))
      (else (local.get $l) (local.get $h))))

  ;; signed: on the magnitudes, the quotient negated when the signs differ; INT64_MIN / -1 overflows
  (func $div_s64 (export "div_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $ql i32) (local $qh i32) (local $nl i32) (local $nh i32)
    (if (i32.eqz (i32.or (local.get $bl) (local.get $bh))) (then (call $trap_divide_by_zero)))
    (if (i32.and (i32.eq (i32.and (local.get $bl) (local.get $bh)) (i32.const -1))
                 (i32.and (i32.eqz (local.get $al)) (i32.eq (local.get $ah) (i32.const 0x80000000))))
      (then (call $trap_integer_overflow)))
    (call $abs64 (local.get $al) (local.get $ah))
    (local.set $nh) (local.set $nl)
    (call $divmod_u64 (local.get $nl) (local.get $nh) (call $abs64 (local.get $bl) (local.get $bh)))
    (drop) (drop)
    (local.set $qh) (local.set $ql)
    (if (result i32 i32) (i32.lt_s (i32.xor (local.get $ah) (local.get $bh)) (i32.const 0))
      (then (call $negate64 (local.get $ql) (local.get $qh)))
      (else (local.get $ql) (local.get $qh))))

  ;; the signed remainder has the dividend's sign (INT64_MIN % -1 = 0)
  (func $rem_s64 (export "rem_s64") (param $al i32) (param $ah i32) (param $bl i32) (param $bh i32) (result i32 i32)
    (local $rl i32) (local $rh i32) (local $nl i32) (local $nh i32)
    (if (i32.eqz (i32.or (local.get $bl) (local.get $bh))) (then (call $trap_divide_by_zero)))
    (call $abs64 (local.get $al) (local.get $ah))
    (local.set $nh) (local.set $nl)
    (call $divmod_u64 (local.get $nl) (local.get $nh) (call $abs64 (local.get $bl) (local.get $bh)))
    (local.set $rh) (local.set $rl) (drop) (drop)
    (if (result i32 i32) (i32.lt_s (local.get $ah) (i32.const 0))
      (then (call $negate64 (local.get $rl) (local.get $rh)))
      (else (local.get $rl) (local.get $rh))))

  ;; float sign operations on their bits (f32: one word; f64: low and high word): only the sign bit changes,
  ;; NaN payloads are kept as the spec fixes. The other float instructions are the float library's
  ;; (frontend/softfloat.c).
  (func (export "f32.abs") (param $x i32) (result i32)
    (i32.and (local.get $x) (i32.const 0x7fffffff)))
  (func (export "f32.neg") (param $x i32) (result i32)
    (i32.xor (local.get $x) (i32.const 0x80000000)))
  (func (export "f32.copysign") (param $x i32) (param $y i32) (result i32)
    (i32.or (i32.and (local.get $x) (i32.const 0x7fffffff)) (i32.and (local.get $y) (i32.const 0x80000000))))
  (func (export "f64.abs") (param $l i32) (param $h i32) (result i32 i32)
    (local.get $l) (i32.and (local.get $h) (i32.const 0x7fffffff)))
  (func (export "f64.neg") (param $l i32) (param $h i32) (result i32 i32)
    (local.get $l) (i32.xor (local.get $h) (i32.const 0x80000000)))
  (func (export "f64.copysign") (param $xl i32) (param $xh i32) (param $yl i32) (param $yh i32) (result i32 i32)
    (local.get $xl)
    (i32.or (i32.and (local.get $xh) (i32.const 0x7fffffff)) (i32.and (local.get $yh) (i32.const 0x80000000))))
)
