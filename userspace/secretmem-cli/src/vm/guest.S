/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The guest of `secretmem vm`: a key holder that answers challenges.
 *
 * The VMM enters it in 64-bit mode at its first byte with
 *   %rdi = the guest-physical address of a 32-byte random seed s0..s3,
 *   %rsp = the top of guest RAM, interrupts off, RAM identity-mapped.
 * It derives a SipHash-2-4 key from the seed, wipes the seed, then serves
 * forever: it reads a 16-byte challenge from PORT_CHALLENGE (four 32-bit
 * IN) and writes its 8-byte MAC to PORT_TAG (two 32-bit OUT).
 *
 *   key = (SipHash(k=(s0,s1), m=s2|s3|0), SipHash(k=(s0,s1), m=s2|s3|1))
 *   tag = SipHash(k=key, m=challenge)
 *
 * verifier.rs computes the same in Rust; the two must stay in step. The
 * key stays in guest RAM at `key`, which is what the attacks look for.
 * Built into a flat binary by build.rs; it is position-independent.
 */

#define PORT_CHALLENGE	0x10
#define PORT_TAG	0x11

	.code64
	.text
	.globl	start
start:
	/* The KDF message s2|s3|i, then the two key words. */
	mov	16(%rdi), %rax
	mov	%rax, msg(%rip)
	mov	24(%rdi), %rax
	mov	%rax, msg+8(%rip)
	movq	$0, msg+16(%rip)
	mov	%rdi, %rbx			/* the seed, kept across calls */
	lea	msg(%rip), %rsi
	mov	$3, %ecx
	call	siphash				/* key = (s0, s1) at %rdi */
	mov	%rax, key(%rip)
	movq	$1, msg+16(%rip)
	mov	%rbx, %rdi
	lea	msg(%rip), %rsi
	mov	$3, %ecx
	call	siphash
	mov	%rax, key+8(%rip)

	/* Forget the seed and its copy in msg: only the key stays. */
	xor	%eax, %eax
	mov	%rbx, %rdi
	mov	$4, %ecx
	rep stosq
	lea	msg(%rip), %rdi
	mov	$3, %ecx
	rep stosq
	call	clear_state

serve:
	/* The first IN also tells the VMM that the key is ready. */
	mov	$PORT_CHALLENGE, %dx
	in	%dx, %eax
	mov	%eax, msg(%rip)
	in	%dx, %eax
	mov	%eax, msg+4(%rip)
	in	%dx, %eax
	mov	%eax, msg+8(%rip)
	in	%dx, %eax
	mov	%eax, msg+12(%rip)
	lea	key(%rip), %rdi
	lea	msg(%rip), %rsi
	mov	$2, %ecx
	call	siphash
	call	clear_state
	mov	$PORT_TAG, %dx
	out	%eax, %dx
	shr	$32, %rax
	out	%eax, %dx
	jmp	serve

/*
 * Clears SipHash's state before the guest exits to the VMM: KVM saves the
 * guest's registers in kernel memory on every exit, and the state after the
 * last round, run backwards, gives the key.
 */
clear_state:
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r11d, %r11d
	ret

/*
 * SipHash-2-4 of %rcx (< 32) little-endian words at %rsi under the 16-byte
 * key at %rdi; returns it in %rax. v0..v3 live in %r8..%r11. Clobbers
 * %rcx, %rdx, %rsi.
 */
siphash:
	mov	(%rdi), %r8
	mov	8(%rdi), %r9
	mov	%r8, %r10
	mov	%r9, %r11
	movabs	$0x736f6d6570736575, %rax
	xor	%rax, %r8
	movabs	$0x646f72616e646f6d, %rax
	xor	%rax, %r9
	movabs	$0x6c7967656e657261, %rax
	xor	%rax, %r10
	movabs	$0x7465646279746573, %rax
	xor	%rax, %r11
	/* The last block: the length in bytes (8 * words) in the top byte. */
	mov	%rcx, %rdx
	shl	$59, %rdx
1:	test	%rcx, %rcx
	jz	2f
	mov	(%rsi), %rax
	call	compress
	add	$8, %rsi
	dec	%rcx
	jmp	1b
2:	mov	%rdx, %rax
	call	compress
	xor	$0xff, %r10
	call	sipround
	call	sipround
	call	sipround
	call	sipround
	mov	%r8, %rax
	xor	%r9, %rax
	xor	%r10, %rax
	xor	%r11, %rax
	ret

/* Absorbs the word in %rax with two rounds. */
compress:
	xor	%rax, %r11
	call	sipround
	call	sipround
	xor	%rax, %r8
	ret

sipround:
	add	%r9, %r8
	rol	$13, %r9
	xor	%r8, %r9
	rol	$32, %r8
	add	%r11, %r10
	rol	$16, %r11
	xor	%r10, %r11
	add	%r11, %r8
	rol	$21, %r11
	xor	%r8, %r11
	add	%r9, %r10
	rol	$17, %r9
	xor	%r10, %r9
	rol	$32, %r10
	ret

	.balign	16
key:	.quad	0, 0
msg:	.quad	0, 0, 0
