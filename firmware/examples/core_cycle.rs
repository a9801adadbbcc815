//! One whole probe cycle of the core (o365probe_core::cycle: 20 targets of DNS, TCP, TLS and STUN probes
//! and a sealed results frame) on a Cortex-M4, under QEMU's mps2-an386. It prints what the cycle did and
//! the deepest the stack went, then exits through semihosting: `cargo xtask bench` reads both, and the
//! binary's flash and static RAM.
#![no_std]
#![no_main]
// Painting and scanning the stack needs raw memory access; nothing else here is unsafe.
#![allow(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use o365probe_core::cycle;

const PAINT: u32 = 0x5AFE_C0DE;

extern "C" {
    // cortex-m-rt: the stack grows down from _stack_start towards the end of .bss.
    static mut __ebss: u32;
    static _stack_start: u32;
}

#[entry]
fn main() -> ! {
    let bottom = core::ptr::addr_of_mut!(__ebss);
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let here = cortex_m::register::msp::read() as usize;
    // Paint everything below our own frame (with a margin) so the cycle's deepest use shows up.
    let words = (here - 256 - bottom as usize) / 4;
    for i in 0..words {
        unsafe { bottom.add(i).write_volatile(PAINT) };
    }

    let s = cycle::run(cycle::MAX_TARGETS, 42);

    let untouched = (0..words)
        .take_while(|&i| unsafe { bottom.add(i).read_volatile() } == PAINT)
        .count();
    let peak = top - (bottom as usize + untouched * 4);
    hprintln!(
        "cycle targets={} resolved={} connects={} genuine={} stun={} frame={} stack_peak={}",
        s.targets,
        s.resolved,
        s.connects,
        s.genuine,
        s.stun_responses,
        s.frame_len,
        peak
    );
    // What the host test of the same cycle holds (core/src/cycle.rs): nothing may be skipped here.
    let ok = s.targets == 20
        && s.resolved == 20
        && s.connects == 200
        && s.genuine == 10
        && s.stun_responses == 4 * 50
        && s.frame_len > 0
        && usize::from(s.frame_len) <= o365probe_core::report::MAX_FRAME_LEN;
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
