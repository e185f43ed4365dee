;; WASI preview1 for the machine: the imports of wasi-libc (the C library the
;; front end links, docs/frontend.md "The C library") written over the machine's
;; I/O primitives. These are module fields, not a module: the front end splices
;; them into helpers.wat (before its closing parenthesis), with the two args
;; functions it generates for the program's arguments, and lowers the result as
;; the helper library. A program's call of the import
;; wasi_snapshot_preview1.NAME becomes a call of the export "wasi:NAME".
;; Memory accesses here address the user program's memory.
;;
;; The primitives (helpers.wat imports them from "wasmformer"; each call is one
;; VM instruction): putchar (stdout byte, o.XX), putchar_err (stderr byte,
;; e.XX), getchar (next input byte or -1), exit (the status, x.XX, then halt).
;;
;; Descriptors: 0 is the input (the prompt's input bytes), 1 stdout, 2 stderr;
;; they are character devices without seek or tell rights (terminals: the libc
;; line-buffers stdout, as a native program on a terminal). No directory is
;; preopened, so the libc's file opens fail with its normal error (ENOENT)
;; before reaching path_open. Errno values: EBADF 8, ESPIPE 70, ENOTCAPABLE 76.

  ;; fd_write: every iovec's bytes to stdout (fd 1) or stderr (fd 2)
  (func $wasi_fd_write (export "wasi:fd_write")
        (param $fd i32) (param $iovs i32) (param $count i32) (param $written_at i32) (result i32)
    (local $p i32) (local $end i32) (local $total i32)
    (if (i32.and (i32.ne (local.get $fd) (i32.const 1)) (i32.ne (local.get $fd) (i32.const 2)))
      (then (return (i32.const 8))))
    (block $done
      (loop $next_iovec
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $p (i32.load (local.get $iovs)))
        (local.set $end (i32.add (local.get $p) (i32.load offset=4 (local.get $iovs))))
        (local.set $total (i32.add (local.get $total) (i32.load offset=4 (local.get $iovs))))
        (if (i32.ne (local.get $p) (local.get $end))
          (then
            (if (i32.eq (local.get $fd) (i32.const 1))
              (then
                (loop $stdout_byte
                  (call $putchar (i32.load8_u (local.get $p)))
                  (local.set $p (i32.add (local.get $p) (i32.const 1)))
                  (br_if $stdout_byte (i32.ne (local.get $p) (local.get $end)))))
              (else
                (loop $stderr_byte
                  (call $putchar_err (i32.load8_u (local.get $p)))
                  (local.set $p (i32.add (local.get $p) (i32.const 1)))
                  (br_if $stderr_byte (i32.ne (local.get $p) (local.get $end))))))))
        (local.set $iovs (i32.add (local.get $iovs) (i32.const 8)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next_iovec)))
    (i32.store (local.get $written_at) (local.get $total))
    (i32.const 0))

  ;; fd_read: fd 0 fills the iovecs from the input until they are full or the
  ;; input ends (0 bytes read: end of file)
  (func $wasi_fd_read (export "wasi:fd_read")
        (param $fd i32) (param $iovs i32) (param $count i32) (param $read_at i32) (result i32)
    (local $p i32) (local $end i32) (local $byte i32) (local $total i32)
    (if (local.get $fd) (then (return (i32.const 8))))
    (block $done
      (loop $next_iovec
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $p (i32.load (local.get $iovs)))
        (local.set $end (i32.add (local.get $p) (i32.load offset=4 (local.get $iovs))))
        (block $full
          (loop $next_byte
            (br_if $full (i32.eq (local.get $p) (local.get $end)))
            (local.set $byte (call $getchar))
            (br_if $done (i32.eq (local.get $byte) (i32.const -1)))
            (i32.store8 (local.get $p) (local.get $byte))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (local.set $total (i32.add (local.get $total) (i32.const 1)))
            (br $next_byte)))
        (local.set $iovs (i32.add (local.get $iovs) (i32.const 8)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $next_iovec)))
    (i32.store (local.get $read_at) (local.get $total))
    (i32.const 0))

  ;; fd_fdstat_get: 0, 1, 2 are character devices with no rights to seek or tell
  (func $wasi_fd_fdstat_get (export "wasi:fd_fdstat_get") (param $fd i32) (param $stat i32) (result i32)
    (if (i32.gt_u (local.get $fd) (i32.const 2)) (then (return (i32.const 8))))
    (i32.store (local.get $stat) (i32.const 2))  ;; filetype CHARACTER_DEVICE, flags 0
    (i32.store offset=4 (local.get $stat) (i32.const 0))
    (i64.store offset=8 (local.get $stat) (i64.const 0))  ;; rights_base
    (i64.store offset=16 (local.get $stat) (i64.const 0))  ;; rights_inheriting
    (i32.const 0))

  (func $wasi_fd_seek (export "wasi:fd_seek")
        (param $fd i32) (param $offset i64) (param $whence i32) (param $position_at i32) (result i32)
    (if (i32.gt_u (local.get $fd) (i32.const 2)) (then (return (i32.const 8))))
    (i32.const 70))  ;; ESPIPE: a character device

  ;; the descriptors' flags stay as they are (fopen's mode "a" asks for APPEND on a file it could not open)
  (func $wasi_fd_fdstat_set_flags (export "wasi:fd_fdstat_set_flags") (param $fd i32) (param $flags i32)
        (result i32)
    (if (i32.gt_u (local.get $fd) (i32.const 2)) (then (return (i32.const 8))))
    (i32.const 0))

  (func $wasi_fd_close (export "wasi:fd_close") (param $fd i32) (result i32)
    (if (i32.gt_u (local.get $fd) (i32.const 2)) (then (return (i32.const 8))))
    (i32.const 0))

  ;; no preopened directories
  (func $wasi_fd_prestat_get (export "wasi:fd_prestat_get") (param $fd i32) (param $prestat i32) (result i32)
    (i32.const 8))

  (func $wasi_fd_prestat_dir_name (export "wasi:fd_prestat_dir_name")
        (param $fd i32) (param $path i32) (param $length i32) (result i32)
    (i32.const 8))

  (func $wasi_path_open (export "wasi:path_open")
        (param $fd i32) (param $dirflags i32) (param $path i32) (param $path_length i32) (param $oflags i32)
        (param $rights_base i64) (param $rights_inheriting i64) (param $fdflags i32) (param $opened_at i32)
        (result i32)
    (i32.const 76))  ;; ENOTCAPABLE

  ;; an empty environment
  (func $wasi_environ_sizes_get (export "wasi:environ_sizes_get") (param $count_at i32) (param $size_at i32)
        (result i32)
    (i32.store (local.get $count_at) (i32.const 0))
    (i32.store (local.get $size_at) (i32.const 0))
    (i32.const 0))

  (func $wasi_environ_get (export "wasi:environ_get") (param $environ i32) (param $buffer i32) (result i32)
    (i32.const 0))

  (func $wasi_proc_exit (export "wasi:proc_exit") (param $status i32)
    (call $exit (local.get $status)))

  ;; deterministic: every clock reads 0 ns (resolution 1 ns), random bytes are 0
  (func $wasi_clock_time_get (export "wasi:clock_time_get")
        (param $clock i32) (param $precision i64) (param $time_at i32) (result i32)
    (i64.store (local.get $time_at) (i64.const 0))
    (i32.const 0))

  (func $wasi_clock_res_get (export "wasi:clock_res_get") (param $clock i32) (param $resolution_at i32)
        (result i32)
    (i64.store (local.get $resolution_at) (i64.const 1))
    (i32.const 0))

  (func $wasi_random_get (export "wasi:random_get") (param $buffer i32) (param $length i32) (result i32)
    (block $done
      (loop $next_byte
        (br_if $done (i32.eqz (local.get $length)))
        (i32.store8 (local.get $buffer) (i32.const 0))
        (local.set $buffer (i32.add (local.get $buffer) (i32.const 1)))
        (local.set $length (i32.sub (local.get $length) (i32.const 1)))
        (br $next_byte)))
    (i32.const 0))

  (func $wasi_sched_yield (export "wasi:sched_yield") (result i32)
    (i32.const 0))
