/* Register-preservation probes for the cross-architecture harness (riscv64): see check_x86_64.S. */
#if defined(__riscv) && __riscv_xlen == 64
    .text
    .globl weft_check_preserve
    .type weft_check_preserve, @function
weft_check_preserve:
    addi sp, sp, -208
    sd ra, 96(sp)
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
    li s0, 4096
    li s1, 4097
    li s2, 4098
    li s3, 4099
    li s4, 4100
    li s5, 4101
    li s6, 4102
    li s7, 4103
    li s8, 4104
    li s9, 4105
    li s10, 4106
    li s11, 4107
    li t0, 1
    fcvt.d.l fs0, t0
    li t0, 2
    fcvt.d.l fs1, t0
    li t0, 3
    fcvt.d.l fs2, t0
    li t0, 4
    fcvt.d.l fs3, t0
    li t0, 5
    fcvt.d.l fs4, t0
    li t0, 6
    fcvt.d.l fs5, t0
    li t0, 7
    fcvt.d.l fs6, t0
    li t0, 8
    fcvt.d.l fs7, t0
    li t0, 9
    fcvt.d.l fs8, t0
    li t0, 10
    fcvt.d.l fs9, t0
    li t0, 11
    fcvt.d.l fs10, t0
    li t0, 12
    fcvt.d.l fs11, t0
    li a2, 0
    call weft_context_switch
    li a0, 0
    li t0, 4096
    beq s0, t0, 1f
    li t1, 1
    or a0, a0, t1
1:
    li t0, 4097
    beq s1, t0, 1f
    li t1, 2
    or a0, a0, t1
1:
    li t0, 4098
    beq s2, t0, 1f
    li t1, 4
    or a0, a0, t1
1:
    li t0, 4099
    beq s3, t0, 1f
    li t1, 8
    or a0, a0, t1
1:
    li t0, 4100
    beq s4, t0, 1f
    li t1, 16
    or a0, a0, t1
1:
    li t0, 4101
    beq s5, t0, 1f
    li t1, 32
    or a0, a0, t1
1:
    li t0, 4102
    beq s6, t0, 1f
    li t1, 64
    or a0, a0, t1
1:
    li t0, 4103
    beq s7, t0, 1f
    li t1, 128
    or a0, a0, t1
1:
    li t0, 4104
    beq s8, t0, 1f
    li t1, 256
    or a0, a0, t1
1:
    li t0, 4105
    beq s9, t0, 1f
    li t1, 512
    or a0, a0, t1
1:
    li t0, 4106
    beq s10, t0, 1f
    li t1, 1024
    or a0, a0, t1
1:
    li t0, 4107
    beq s11, t0, 1f
    li t1, 2048
    or a0, a0, t1
1:
    li t0, 1
    fcvt.d.l ft0, t0
    feq.d t2, fs0, ft0
    bnez t2, 1f
    li t1, 4096
    or a0, a0, t1
1:
    li t0, 2
    fcvt.d.l ft0, t0
    feq.d t2, fs1, ft0
    bnez t2, 1f
    li t1, 8192
    or a0, a0, t1
1:
    li t0, 3
    fcvt.d.l ft0, t0
    feq.d t2, fs2, ft0
    bnez t2, 1f
    li t1, 16384
    or a0, a0, t1
1:
    li t0, 4
    fcvt.d.l ft0, t0
    feq.d t2, fs3, ft0
    bnez t2, 1f
    li t1, 32768
    or a0, a0, t1
1:
    li t0, 5
    fcvt.d.l ft0, t0
    feq.d t2, fs4, ft0
    bnez t2, 1f
    li t1, 65536
    or a0, a0, t1
1:
    li t0, 6
    fcvt.d.l ft0, t0
    feq.d t2, fs5, ft0
    bnez t2, 1f
    li t1, 131072
    or a0, a0, t1
1:
    li t0, 7
    fcvt.d.l ft0, t0
    feq.d t2, fs6, ft0
    bnez t2, 1f
    li t1, 262144
    or a0, a0, t1
1:
    li t0, 8
    fcvt.d.l ft0, t0
    feq.d t2, fs7, ft0
    bnez t2, 1f
    li t1, 524288
    or a0, a0, t1
1:
    li t0, 9
    fcvt.d.l ft0, t0
    feq.d t2, fs8, ft0
    bnez t2, 1f
    li t1, 1048576
    or a0, a0, t1
1:
    li t0, 10
    fcvt.d.l ft0, t0
    feq.d t2, fs9, ft0
    bnez t2, 1f
    li t1, 2097152
    or a0, a0, t1
1:
    li t0, 11
    fcvt.d.l ft0, t0
    feq.d t2, fs10, ft0
    bnez t2, 1f
    li t1, 4194304
    or a0, a0, t1
1:
    li t0, 12
    fcvt.d.l ft0, t0
    feq.d t2, fs11, ft0
    bnez t2, 1f
    li t1, 8388608
    or a0, a0, t1
1:
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
    ld ra, 96(sp)
    addi sp, sp, 208
    ret
    .size weft_check_preserve, .-weft_check_preserve

    .globl weft_clobber_and_switch
    .type weft_clobber_and_switch, @function
weft_clobber_and_switch:
    addi sp, sp, -208
    sd ra, 96(sp)
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
    li s0, -1
    li s1, -2
    li s2, -3
    li s3, -4
    li s4, -5
    li s5, -6
    li s6, -7
    li s7, -8
    li s8, -9
    li s9, -10
    li s10, -11
    li s11, -12
    li t0, -1
    fcvt.d.l fs0, t0
    li t0, -2
    fcvt.d.l fs1, t0
    li t0, -3
    fcvt.d.l fs2, t0
    li t0, -4
    fcvt.d.l fs3, t0
    li t0, -5
    fcvt.d.l fs4, t0
    li t0, -6
    fcvt.d.l fs5, t0
    li t0, -7
    fcvt.d.l fs6, t0
    li t0, -8
    fcvt.d.l fs7, t0
    li t0, -9
    fcvt.d.l fs8, t0
    li t0, -10
    fcvt.d.l fs9, t0
    li t0, -11
    fcvt.d.l fs10, t0
    li t0, -12
    fcvt.d.l fs11, t0
    li a2, 0
    call weft_context_switch
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
    ld ra, 96(sp)
    addi sp, sp, 208
    ret
    .size weft_clobber_and_switch, .-weft_clobber_and_switch
#endif
    .section .note.GNU-stack,"",@progbits
