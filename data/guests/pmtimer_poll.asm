; pmtimer_poll.asm -- compute for a while, glance at the clock, repeat.
;
; Mode:   64-bit long mode, flat segments (base 0), loaded and entered at 0x10000.
; Setup:  RSP = 0x80000 (no stack is used).
; Build:  nasm -f bin -o pmtimer_poll.bin pmtimer_poll.asm
;
; Mimics the workload from the seed patch's measurements: a guest (the Windows
; TCP stack) that timestamps its work by reading the ACPI PM timer (port 0x1F48)
; very often. ROUNDS times: do WORK steps of pure register arithmetic (a 64-bit
; linear congruential generator, no exits), then read the PM timer once.
;
;     state = state * 6364136223846793005 + 1442695040888963407   (mod 2^64)
;
; The timer readings are not used: the point is the exit they cost. The final
; LCG state depends only on the constants below, so a test can check it.
;
; Results in guest memory:
;     [0x9000] qword  final LCG state after ROUNDS * WORK steps
;
; Exits: ROUNDS PM-timer reads + 1 final POST write.
;
; POST codes on port 0x80: 0xAA = success (there are no failure codes).

bits 64
org 0x10000

PMTIMER_PORT    equ 0x1F48
ROUNDS          equ 200
WORK            equ 500
LCG_SEED        equ 2010                    ; the year of the seed patch
LCG_MUL         equ 6364136223846793005     ; Knuth's MMIX multiplier
LCG_ADD         equ 1442695040888963407     ; Knuth's MMIX increment
RESULT_ADDR     equ 0x9000
POST_PORT       equ 0x80
POST_OK         equ 0xAA

start:
        mov r8, LCG_SEED        ; R8 = LCG state (IN overwrites EAX, so not RAX)
        mov r9, LCG_MUL
        mov r10, LCG_ADD
        mov dx, PMTIMER_PORT
        mov esi, ROUNDS         ; ESI = rounds left

round:
        mov ecx, WORK           ; ECX = arithmetic steps left in this round
work:
        imul r8, r9             ; state = state * LCG_MUL + LCG_ADD
        add r8, r10
        dec ecx
        jnz work

        in eax, dx              ; EXIT: read the PM timer (the value is not used)
        dec esi
        jnz round

        mov [abs RESULT_ADDR], r8
        mov al, POST_OK
        out POST_PORT, al       ; EXIT: final POST code 0xAA
        hlt                     ; the VM stops here; nothing after this runs
