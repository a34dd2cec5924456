/* Context switch for aarch64 (AAPCS64). Saved: x19-x29, lr (x30), sp, d8-d15 and FPCR -- exactly
 * the callee-saved set. Frame layout (176 bytes, low to high): x19..x28 at 0..72, x29 at 80,
 * x30 at 88, d8..d15 at 96..152, FPCR at 160. */
#if defined(__aarch64__)

    .text

/* void *weft_context_switch(void **save_sp, void *to_sp, void *transfer) */
    .globl weft_context_switch
    .type weft_context_switch, %function
    .p2align 4
weft_context_switch:
    .cfi_startproc
    sub sp, sp, #176
    .cfi_adjust_cfa_offset 176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x10, sp
    str x10, [x0]
    mov sp, x1
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x10, [sp, #160]
    /* Writing FPCR can be slow on some cores: only when it differs. */
    cmp x9, x10
    b.eq 1f
    msr fpcr, x10
1:
    add sp, sp, #176
    mov x0, x2
    ret
    .cfi_endproc
    .size weft_context_switch, .-weft_context_switch

/* void *weft_context_make(void *stack_top, void (*entry)(void *, void *), void *arg) */
    .globl weft_context_make
    .type weft_context_make, %function
    .p2align 4
weft_context_make:
    .cfi_startproc
    and x9, x0, #~15
    sub x0, x9, #176
    stp x1, x2, [x0, #0]
    stp xzr, xzr, [x0, #16]
    stp xzr, xzr, [x0, #32]
    stp xzr, xzr, [x0, #48]
    stp xzr, xzr, [x0, #64]
    adrp x10, weft_context_trampoline
    add x10, x10, :lo12:weft_context_trampoline
    stp xzr, x10, [x0, #80]
    stp xzr, xzr, [x0, #96]
    stp xzr, xzr, [x0, #112]
    stp xzr, xzr, [x0, #128]
    stp xzr, xzr, [x0, #144]
    mrs x11, fpcr
    stp x11, xzr, [x0, #160]
    ret
    .cfi_endproc
    .size weft_context_make, .-weft_context_make

/* First code run on a new stack: x19 = entry, x20 = arg, x0 = transfer. lr is undefined so
 * unwinders stop here; x29 is 0 for frame-pointer walkers. */
    .type weft_context_trampoline, %function
    .p2align 4
weft_context_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov x1, x20
    blr x19
    bl weft_context_entry_returned
    brk #0
    .cfi_endproc
    .size weft_context_trampoline, .-weft_context_trampoline

#endif
    .section .note.GNU-stack,"",@progbits
