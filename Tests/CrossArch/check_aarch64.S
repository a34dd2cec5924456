/* Register-preservation probes for the cross-architecture harness (aarch64): see check_x86_64.S. */
#if defined(__aarch64__)
    .text
    .globl weft_check_preserve
    .type weft_check_preserve, %function
weft_check_preserve:
    stp x29, x30, [sp, #-160]!
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    stp x23, x24, [sp, #48]
    stp x25, x26, [sp, #64]
    stp x27, x28, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x19, #0x1019
    mov x20, #0x1020
    mov x21, #0x1021
    mov x22, #0x1022
    mov x23, #0x1023
    mov x24, #0x1024
    mov x25, #0x1025
    mov x26, #0x1026
    mov x27, #0x1027
    mov x28, #0x1028
    mov x29, #0x1029
    fmov d8, #1.0
    fmov d9, #2.0
    fmov d10, #3.0
    fmov d11, #4.0
    fmov d12, #5.0
    fmov d13, #6.0
    fmov d14, #7.0
    fmov d15, #8.0
    mov x2, #0
    bl weft_context_switch
    mov x0, #0
    mov x9, #0x1019
    cmp x19, x9
    b.eq 1f
    orr x0, x0, #1
1:
    mov x9, #0x1020
    cmp x20, x9
    b.eq 2f
    orr x0, x0, #2
2:
    mov x9, #0x1021
    cmp x21, x9
    b.eq 3f
    orr x0, x0, #4
3:
    mov x9, #0x1022
    cmp x22, x9
    b.eq 4f
    orr x0, x0, #8
4:
    mov x9, #0x1023
    cmp x23, x9
    b.eq 5f
    orr x0, x0, #16
5:
    mov x9, #0x1024
    cmp x24, x9
    b.eq 6f
    orr x0, x0, #32
6:
    mov x9, #0x1025
    cmp x25, x9
    b.eq 7f
    orr x0, x0, #64
7:
    mov x9, #0x1026
    cmp x26, x9
    b.eq 8f
    orr x0, x0, #128
8:
    mov x9, #0x1027
    cmp x27, x9
    b.eq 9f
    orr x0, x0, #256
9:
    mov x9, #0x1028
    cmp x28, x9
    b.eq 10f
    orr x0, x0, #512
10:
    mov x9, #0x1029
    cmp x29, x9
    b.eq 11f
    orr x0, x0, #1024
11:
    fmov d16, #1.0
    fcmp d8, d16
    b.eq 12f
    orr x0, x0, #2048
12:
    fmov d16, #2.0
    fcmp d9, d16
    b.eq 13f
    orr x0, x0, #4096
13:
    fmov d16, #3.0
    fcmp d10, d16
    b.eq 14f
    orr x0, x0, #8192
14:
    fmov d16, #4.0
    fcmp d11, d16
    b.eq 15f
    orr x0, x0, #16384
15:
    fmov d16, #5.0
    fcmp d12, d16
    b.eq 16f
    orr x0, x0, #32768
16:
    fmov d16, #6.0
    fcmp d13, d16
    b.eq 17f
    orr x0, x0, #65536
17:
    fmov d16, #7.0
    fcmp d14, d16
    b.eq 18f
    orr x0, x0, #131072
18:
    fmov d16, #8.0
    fcmp d15, d16
    b.eq 19f
    orr x0, x0, #262144
19:
    ldp x19, x20, [sp, #16]
    ldp x21, x22, [sp, #32]
    ldp x23, x24, [sp, #48]
    ldp x25, x26, [sp, #64]
    ldp x27, x28, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldp x29, x30, [sp], #160
    ret
    .size weft_check_preserve, .-weft_check_preserve

    .globl weft_clobber_and_switch
    .type weft_clobber_and_switch, %function
weft_clobber_and_switch:
    stp x29, x30, [sp, #-160]!
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    stp x23, x24, [sp, #48]
    stp x25, x26, [sp, #64]
    stp x27, x28, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x19, #-19
    mov x20, #-20
    mov x21, #-21
    mov x22, #-22
    mov x23, #-23
    mov x24, #-24
    mov x25, #-25
    mov x26, #-26
    mov x27, #-27
    mov x28, #-28
    mov x29, #-29
    fmov d8, #-1.0
    fmov d9, #-2.0
    fmov d10, #-3.0
    fmov d11, #-4.0
    fmov d12, #-5.0
    fmov d13, #-6.0
    fmov d14, #-7.0
    fmov d15, #-8.0
    mov x2, #0
    bl weft_context_switch
    ldp x19, x20, [sp, #16]
    ldp x21, x22, [sp, #32]
    ldp x23, x24, [sp, #48]
    ldp x25, x26, [sp, #64]
    ldp x27, x28, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldp x29, x30, [sp], #160
    ret
    .size weft_clobber_and_switch, .-weft_clobber_and_switch
#endif
    .section .note.GNU-stack,"",@progbits
