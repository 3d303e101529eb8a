; port_hammer.asm -- the seed patch's micro benchmark: hammer one port with IN.
;
; Mode:   64-bit long mode, flat segments (base 0), loaded and entered at 0x10000.
; Setup:  RSP = 0x80000 (no stack is used).
; Build:  nasm -f bin -o port_hammer.bin port_hammer.asm
;
; Reads the ACPI PM timer (port 0x1F48, 32-bit IN) ITERATIONS times in a tight
; loop and times the whole loop with the guest TSC, as the 2010 Xen patch's
; benchmark did. Each reading must not be behind the previous one: the timer is
; a free-running 32-bit counter, so "not behind" means (cur - prev) mod 2^32 is
; below 2^31 (wraparound-safe). Equal readings are fine.
;
; Results in guest memory:
;     [0x9000] qword  TSC cycles spent in the loop (second rdtsc - first rdtsc)
;     [0x9008] qword  number of PM-timer reads done (ITERATIONS)
;
; Exits: ITERATIONS PM-timer reads + 1 final POST write. rdtsc and hlt are not
; counted here (whether rdtsc exits depends on the hypervisor's settings).
;
; POST codes on port 0x80:
;     0xAA  success
;     0xE1  (failure 1) a PM-timer reading was behind the previous one

bits 64
org 0x10000

PMTIMER_PORT    equ 0x1F48
ITERATIONS      equ 1000
TSC_DELTA_ADDR  equ 0x9000
COUNT_ADDR      equ 0x9008
POST_PORT       equ 0x80
POST_OK         equ 0xAA
FAIL_BACKWARDS  equ 0xE1

start:
        rdtsc                   ; EDX:EAX = time stamp counter
        shl rdx, 32
        or rax, rdx
        mov r8, rax             ; R8 = TSC at start

        mov dx, PMTIMER_PORT    ; (rdtsc overwrote DX, so set it now)
        in eax, dx              ; EXIT: read 1 -- nothing to compare it with yet
        mov r9d, eax            ; R9D = previous reading
        mov ecx, ITERATIONS - 1 ; reads 2 .. ITERATIONS

hammer:
        in eax, dx              ; EXIT: read the PM timer
        mov r10d, eax
        sub r10d, r9d           ; R10D = cur - prev  (mod 2^32)
        cmp r10d, 0x80000000
        jae went_backwards      ; unsigned >= 2^31: cur is behind prev
        mov r9d, eax
        dec ecx
        jnz hammer

        rdtsc
        shl rdx, 32
        or rax, rdx
        sub rax, r8             ; RAX = TSC cycles for all the reads
        mov [abs TSC_DELTA_ADDR], rax
        mov qword [abs COUNT_ADDR], ITERATIONS
        mov al, POST_OK
        jmp finish

went_backwards:
        mov al, FAIL_BACKWARDS

finish:
        out POST_PORT, al       ; EXIT: the one final POST code (in AL)
        hlt                     ; the VM stops here; nothing after this runs
