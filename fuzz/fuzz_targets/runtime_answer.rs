//! Bytes as an answer of HAProxy's runtime API through every parser of those answers
//! (`show servers state`, `show stat`, error detection): no panic, every bad answer an error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal::fuzzing::runtime_answer(data);
});
