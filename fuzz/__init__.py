"""The CLI fuzzer behind `make fuzz` (docs/fuzzing.md): malformed inputs, hostile options, random valid programs."""
