/* Register-preservation probes for the cross-architecture harness (x86_64).
 * uint64_t weft_check_preserve(void **save_sp, void *to_sp): loads patterns into every
 *   callee-saved register, switches away, and on return reports a bit per register that changed.
 * void weft_clobber_and_switch(void **save_sp, void *to_sp): puts garbage in every callee-saved
 *   register, then switches. */
#if defined(__x86_64__)
    .text
    .globl weft_check_preserve
    .type weft_check_preserve, @function
weft_check_preserve:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    movq $0x1001, %rbx
    movq $0x1002, %rbp
    movq $0x1003, %r12
    movq $0x1004, %r13
    movq $0x1005, %r14
    movq $0x1006, %r15
    xorl %edx, %edx
    call weft_context_switch
    xorl %eax, %eax
    cmpq $0x1001, %rbx
    je 1f
    orl $1, %eax
1:  cmpq $0x1002, %rbp
    je 2f
    orl $2, %eax
2:  cmpq $0x1003, %r12
    je 3f
    orl $4, %eax
3:  cmpq $0x1004, %r13
    je 4f
    orl $8, %eax
4:  cmpq $0x1005, %r14
    je 5f
    orl $16, %eax
5:  cmpq $0x1006, %r15
    je 6f
    orl $32, %eax
6:  addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size weft_check_preserve, .-weft_check_preserve

    .globl weft_clobber_and_switch
    .type weft_clobber_and_switch, @function
weft_clobber_and_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    movq $-1, %rbx
    movq $-2, %rbp
    movq $-3, %r12
    movq $-4, %r13
    movq $-5, %r14
    movq $-6, %r15
    xorl %edx, %edx
    call weft_context_switch
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size weft_clobber_and_switch, .-weft_clobber_and_switch
#endif
    .section .note.GNU-stack,"",@progbits
