; uart_hello.asm -- print a message on the 16550 UART, one character at a time.
;
; Mode:   16-bit real mode, loaded and entered at 0x7C00.
; Setup:  the loader sets CS = DS = ES = SS = 0 and SP = 0x7000 (no stack is used).
; Build:  nasm -f bin -o uart_hello.bin uart_hello.asm
;
; Every IN and OUT below traps to the hypervisor (one VM exit each). For each
; character the program polls the Line Status Register (LSR, port 0x3FD) until
; THRE says the transmitter can take a byte, then writes the byte to the
; Transmit Holding Register (THR, port 0x3F8). With a transmitter that empties
; instantly, one poll per character is enough, so the program takes
;     2 * len(message) + 1 exits   (the +1 is the final POST code).
;
; POST codes on port 0x80: 0xAA = success. There are no failure codes: if THRE
; never comes, the program keeps polling.

bits 16
org 0x7C00

COM1_THR    equ 0x3F8           ; write: Transmit Holding Register
COM1_LSR    equ 0x3FD           ; read:  Line Status Register
LSR_THRE    equ 0x20            ; LSR bit 5: THR empty, ready for a byte
POST_PORT   equ 0x80            ; debug/POST port
POST_OK     equ 0xAA

start:
        cld                     ; lodsb walks forwards through the message
        mov si, message         ; DS:SI -> first character

next_char:
        lodsb                   ; AL = [DS:SI], SI += 1
        test al, al             ; the message ends with a zero byte
        jz done
        mov ah, al              ; keep the character: AL is needed for the poll

        mov dx, COM1_LSR
wait_thre:
        in al, dx               ; EXIT: read LSR (8-bit, port in DX)
        test al, LSR_THRE
        jz wait_thre            ; transmitter busy: ask again

        mov al, ah
        mov dx, COM1_THR
        out dx, al              ; EXIT: write the character to THR
        jmp next_char

done:
        mov al, POST_OK
        out POST_PORT, al       ; EXIT: final POST code 0xAA
        hlt                     ; the VM stops here; nothing after this runs

; ---- data (after the final hlt, never executed) ----
align 16, db 0
message:
        db `hello, hypervisor\n`, 0
