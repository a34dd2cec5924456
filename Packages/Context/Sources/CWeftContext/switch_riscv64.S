/* Context switch for riscv64 (LP64D). Saved: s0-s11, ra, sp, fs0-fs11 -- the callee-saved set --
 * and fcsr's rounding mode (frm), which code expects to keep across calls. Frame layout (208 bytes,
 * low to high): s0..s11 at 0..88, ra at 96, fs0..fs11 at 104..192, frm at 200. */
#if defined(__riscv) && __riscv_xlen == 64

    .text

/* void *weft_context_switch(void **save_sp, void *to_sp, void *transfer) */
    .globl weft_context_switch
    .type weft_context_switch, @function
    .p2align 2
weft_context_switch:
    .cfi_startproc
    addi sp, sp, -208
    .cfi_adjust_cfa_offset 208
    sd s0, 0(sp)
    sd s1, 8(sp)
    sd s2, 16(sp)
    sd s3, 24(sp)
    sd s4, 32(sp)
    sd s5, 40(sp)
    sd s6, 48(sp)
    sd s7, 56(sp)
    sd s8, 64(sp)
    sd s9, 72(sp)
    sd s10, 80(sp)
    sd s11, 88(sp)
    sd ra, 96(sp)
    fsd fs0, 104(sp)
    fsd fs1, 112(sp)
    fsd fs2, 120(sp)
    fsd fs3, 128(sp)
    fsd fs4, 136(sp)
    fsd fs5, 144(sp)
    fsd fs6, 152(sp)
    fsd fs7, 160(sp)
    fsd fs8, 168(sp)
    fsd fs9, 176(sp)
    fsd fs10, 184(sp)
    fsd fs11, 192(sp)
    frrm t0
    sd t0, 200(sp)
    sd sp, 0(a0)
    mv sp, a1
    ld s0, 0(sp)
    ld s1, 8(sp)
    ld s2, 16(sp)
    ld s3, 24(sp)
    ld s4, 32(sp)
    ld s5, 40(sp)
    ld s6, 48(sp)
    ld s7, 56(sp)
    ld s8, 64(sp)
    ld s9, 72(sp)
    ld s10, 80(sp)
    ld s11, 88(sp)
    ld ra, 96(sp)
    fld fs0, 104(sp)
    fld fs1, 112(sp)
    fld fs2, 120(sp)
    fld fs3, 128(sp)
    fld fs4, 136(sp)
    fld fs5, 144(sp)
    fld fs6, 152(sp)
    fld fs7, 160(sp)
    fld fs8, 168(sp)
    fld fs9, 176(sp)
    fld fs10, 184(sp)
    fld fs11, 192(sp)
    ld t0, 200(sp)
    fsrm t0
    addi sp, sp, 208
    mv a0, a2
    ret
    .cfi_endproc
    .size weft_context_switch, .-weft_context_switch

/* void *weft_context_make(void *stack_top, void (*entry)(void *, void *), void *arg) */
    .globl weft_context_make
    .type weft_context_make, @function
    .p2align 2
weft_context_make:
    .cfi_startproc
    andi t0, a0, -16
    addi a0, t0, -208
    mv t1, a0
    addi t2, a0, 208
1:
    sd zero, 0(t1)
    addi t1, t1, 8
    bltu t1, t2, 1b
    sd a1, 8(a0)
    sd a2, 16(a0)
    lla t1, weft_context_trampoline
    sd t1, 96(a0)
    frrm t1
    sd t1, 200(a0)
    ret
    .cfi_endproc
    .size weft_context_make, .-weft_context_make

/* First code run on a new stack: s1 = entry, s2 = arg, a0 = transfer, s0 (frame pointer) = 0.
 * ra is undefined so unwinders stop here. */
    .type weft_context_trampoline, @function
    .p2align 2
weft_context_trampoline:
    .cfi_startproc
    .cfi_undefined ra
    mv a1, s2
    jalr s1
    call weft_context_entry_returned
    ebreak
    .cfi_endproc
    .size weft_context_trampoline, .-weft_context_trampoline

#endif
    .section .note.GNU-stack,"",@progbits
