/* Context switch for x86_64 (System V ABI). Saved: rbx, rbp, r12-r15, rsp, MXCSR and the x87
 * control word -- exactly the callee-saved set. Frame layout (low to high address):
 *   [0] MXCSR (4 bytes) + x87 control word (4 bytes), [8] r15, [16] r14, [24] r13, [32] r12,
 *   [40] rbx, [48] rbp, [56] return address. */
#if defined(__x86_64__)

    .text

/* void *weft_context_switch(void **save_sp, void *to_sp, void *transfer) */
    .globl weft_context_switch
    .type weft_context_switch, @function
    .p2align 4
weft_context_switch:
    .cfi_startproc
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    pushq %rbx
    .cfi_adjust_cfa_offset 8
    pushq %r12
    .cfi_adjust_cfa_offset 8
    pushq %r13
    .cfi_adjust_cfa_offset 8
    pushq %r14
    .cfi_adjust_cfa_offset 8
    pushq %r15
    .cfi_adjust_cfa_offset 8
    pushq $0
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    /* Read back with the widths they were stored with: one 8-byte load over the two stores
     * cannot be forwarded from the store buffer and stalls until both stores retire. */
    movl (%rsp), %ecx
    movzwl 4(%rsp), %r8d
    movq %rsi, %rsp
    /* Loading MXCSR and the x87 control word is slow (fldcw serialises): skip it when the
     * resumed context's values equal the current ones, which is almost always. */
    cmpl (%rsp), %ecx
    jne 2f
    cmpw 4(%rsp), %r8w
    jne 2f
1:
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdx, %rax
    ret
2:
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    jmp 1b
    .cfi_endproc
    .size weft_context_switch, .-weft_context_switch

/* void *weft_context_make(void *stack_top, void (*entry)(void *, void *), void *arg)
 * The new frame resumes in the trampoline with r12 = entry, r13 = arg, rbp = 0, and the control
 * registers copied from the caller (so a new context starts with the creator's FP environment). */
    .globl weft_context_make
    .type weft_context_make, @function
    .p2align 4
weft_context_make:
    .cfi_startproc
    movq %rdi, %rax
    andq $-16, %rax
    subq $80, %rax
    movq $0, (%rax)
    stmxcsr (%rax)
    fnstcw 4(%rax)
    movq $0, 8(%rax)
    movq $0, 16(%rax)
    movq %rdx, 24(%rax)
    movq %rsi, 32(%rax)
    movq $0, 40(%rax)
    movq $0, 48(%rax)
    leaq weft_context_trampoline(%rip), %rcx
    movq %rcx, 56(%rax)
    movq $0, 64(%rax)
    movq $0, 72(%rax)
    ret
    .cfi_endproc
    .size weft_context_make, .-weft_context_make

/* First code run on a new stack (rsp is 16-byte aligned here). rip is marked undefined so
 * unwinders and backtraces stop at this frame; rbp is 0 for frame-pointer walkers. */
    .type weft_context_trampoline, @function
    .p2align 4
weft_context_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %rax, %rdi
    movq %r13, %rsi
    call *%r12
    call weft_context_entry_returned@PLT
    ud2
    .cfi_endproc
    .size weft_context_trampoline, .-weft_context_trampoline

#endif
    .section .note.GNU-stack,"",@progbits
