; hvmio_lab boot sector: what the BIOS loads from the hard disk's first sector.
;
; SeaBIOS reads this sector to 0000:7C00 through its own int 13h and jumps to it with DL = the
; drive. From here on, everything goes through the BIOS, so each step is a chain of VM exits:
;   - text goes out through int 10h, AH=0Eh (teletype);
;   - stage 2 (sectors 1..STAGE2_SECTORS) comes in through int 13h, AH=42h (LBA read), which
;     SeaBIOS's ATA driver turns into READ SECTORS and `rep insw` on port 0x1F0;
;   - progress and the result go to POST port 0x80: 0x10 boot sector running, 0x20 stage 2
;     read, 0xAA every stage-2 sector arrived with its tag, 0xEE something failed.
; Assemble: nasm -f bin -o boot.bin boot.asm   (4 KiB: this sector + 7 stage-2 sectors)

bits 16
org 0x7C00

STAGE2_SECTORS equ 7
STAGE2 equ 0x7E00

boot:
    jmp 0x0000:start                ; some BIOSes enter at 07C0:0000; make CS = 0
start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7C00
    sti
    mov [drive], dl
    mov al, 0x10
    out 0x80, al
    mov si, hello
    call print
    mov si, dap                     ; int 13h extensions: read by LBA from the packet at DS:SI
    mov dl, [drive]
    mov ah, 0x42
    int 0x13
    jc fail
    mov al, 0x20
    out 0x80, al
    jmp 0x0000:stage2

fail:
    mov si, failed
    call print
    mov al, 0xEE
    out 0x80, al
halt:
    cli
    hlt
    jmp halt

print:                              ; DS:SI = NUL-terminated text, through the BIOS teletype
    lodsb
    test al, al
    jz .done
    mov ah, 0x0E
    mov bx, 0x0007                  ; page 0, light grey
    int 0x10
    jmp print
.done:
    ret

drive: db 0
hello: db "hvmio_lab boot sector: reading stage 2 through int 13h", 13, 10, 0
failed: db "boot failed", 13, 10, 0

dap:                                ; the disk address packet of int 13h AH=42h
    db 16, 0
    dw STAGE2_SECTORS
    dw STAGE2, 0                    ; buffer offset, segment
    dq 1                            ; first LBA

    times 510 - ($ - $$) db 0
    dw 0xAA55                       ; the boot signature SeaBIOS checks

; ---------------------------------------------------------------- stage 2, LBA 1 onwards
stage2:
    mov si, loaded
    call print
    mov bx, STAGE2 + 510            ; every stage-2 sector ends with the tag 0xB000 + its LBA
    mov ax, 0xB001
    mov cx, STAGE2_SECTORS
.check:
    cmp [bx], ax
    jne fail
    add bx, 512
    inc ax
    loop .check
    mov si, success
    call print
    mov al, 0xAA
    out 0x80, al
    jmp halt

loaded: db "stage 2: 7 sectors in through SeaBIOS's ATA driver", 13, 10, 0
success: db "all sector tags match: success", 13, 10, 0

%assign lba 1
%rep STAGE2_SECTORS
    times (lba + 1) * 512 - 2 - ($ - $$) db 0
    dw 0xB000 + lba
%assign lba lba + 1
%endrep
