;; spin(n): n turns of a loop that reads, adds and writes memory, then returns a checksum.
;;
;; benchmarks/run_all.py sizes n to make a trace of a chosen length (every turn
;; generates the same number of tokens) and checks the result against
;; spin_reference() in run_all.py. Only basic VM ops (no multiply, no bitwise
;; ops), so no helper subroutine is involved.
(module
  (memory 1)
  (func (export "spin") (param $n i32) (result i32)
    (local $i i32) (local $slot i32) (local $sum i32)
    (block $done
      (loop $turn
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ;; slot walks over 64 words: 4, 8, ..., 252, 0, 4, ...
        (local.set $slot
          (select (i32.const 0)
                  (i32.add (local.get $slot) (i32.const 4))
                  (i32.ge_u (local.get $slot) (i32.const 252))))
        ;; mem[slot] += i ; sum += mem[slot]
        (i32.store (local.get $slot) (i32.add (i32.load (local.get $slot)) (local.get $i)))
        (local.set $sum (i32.add (local.get $sum) (i32.load (local.get $slot))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $turn)))
    (local.get $sum)))
