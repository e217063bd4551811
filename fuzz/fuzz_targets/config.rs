//! A config file's bytes through shoal's loader: no panic, every bad input an error with a
//! position, and every config it accepts accepted by every consumer (renderer, runtime-API
//! client, container spec, window, listener, policy).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shoal::fuzzing::config_input(data);
});
