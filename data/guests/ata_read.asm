; ata_read.asm -- identify the IDE disk, read 4 sectors with PIO, check them.
;
; Mode:   32-bit protected mode, flat segments (base 0), loaded and entered at 0x10000.
; Setup:  ESP = 0x80000 (used by call/ret).
; Build:  nasm -f bin -o ata_read.bin ata_read.asm
;
; Talks to the master drive on the primary ATA channel (ports 0x1F0-0x1F7) in
; PIO mode with LBA28 addressing, the way a boot loader or a simple driver does:
;   1. IDENTIFY DEVICE (0xEC): wait until not BSY, require DRQ, read the 512-byte
;      answer with `rep insw` to 0x20000. Words 60-61 give the drive size in
;      LBA28 sectors; it must be 32 (data/guests/disk.img).     POST 0x01
;   2. READ SECTORS (0x20): 4 sectors from LBA 1 to 0x21000. Before each sector:
;      wait until not BSY, require DRQ, then `rep insw` 256 words.  POST 0x02
;   3. Add up the 2048 bytes read (unsigned bytes, 32-bit sum) and compare with
;      the sum computed from disk.img when this program was written.
;
; Exits, if every status wait sees BSY on B reads before the ready status:
;     OUT: 2 (IDENTIFY) + 6 (READ SECTORS) + 2 progress + 1 final POST = 11
;     IN:  status 5 * (B + 1), data 5 * 256 words through 5 `rep insw`
;     (how many exits a `rep insw` costs is the hypervisor's choice: up to one
;     per word, or batches of words)
;
; POST codes on port 0x80:
;     0x01  progress: IDENTIFY read and the drive size checked
;     0x02  progress: all sectors read
;     0xAA  success: the checksum matches
;     0xE1  (failure 1) status had ERR set when BSY cleared
;     0xE2  (failure 2) BSY cleared but DRQ was not set (no data to read)
;     0xE3  (failure 3) IDENTIFY words 60-61 do not say 32 sectors
;     0xE4  (failure 4) checksum of the sectors read does not match

bits 32
org 0x10000

; ports, primary channel
ATA_DATA        equ 0x1F0       ; 16-bit data register
ATA_COUNT       equ 0x1F2       ; sector count
ATA_LBA_LO      equ 0x1F3       ; LBA bits 7:0
ATA_LBA_MID     equ 0x1F4       ; LBA bits 15:8
ATA_LBA_HI      equ 0x1F5       ; LBA bits 23:16
ATA_DRIVE       equ 0x1F6       ; 0xE0 | LBA bits 27:24 (LBA mode, master)
ATA_STATUS      equ 0x1F7       ; read: status
ATA_COMMAND     equ 0x1F7       ; write: command
; status bits
ATA_BSY         equ 0x80
ATA_DRQ         equ 0x08
ATA_ERR         equ 0x01
; commands
CMD_IDENTIFY    equ 0xEC
CMD_READ        equ 0x20

IDENTIFY_BUF    equ 0x20000     ; 512 bytes of IDENTIFY data
SECTOR_BUF      equ 0x21000     ; the sectors read
DISK_SECTORS    equ 32          ; expected IDENTIFY words 60-61
LBA             equ 1           ; first sector to read
SECTORS         equ 4           ; how many sectors to read
CHECKSUM        equ 260054      ; sum of the bytes of LBA 1..4 of disk.img

POST_PORT       equ 0x80
POST_IDENTIFIED equ 0x01
POST_READ_DONE  equ 0x02
POST_OK         equ 0xAA
FAIL_ERR        equ 0xE1
FAIL_NO_DRQ     equ 0xE2
FAIL_SIZE       equ 0xE3
FAIL_CHECKSUM   equ 0xE4

start:
        cld                     ; rep insw fills forwards (DF = 0)

; ---- 1. IDENTIFY DEVICE ----
        mov dx, ATA_DRIVE
        mov al, 0xE0            ; master drive
        out dx, al              ; EXIT
        mov dx, ATA_COMMAND
        mov al, CMD_IDENTIFY
        out dx, al              ; EXIT: the drive goes BSY

        call wait_data          ; EXITs: status polls
        jc finish
        mov edi, IDENTIFY_BUF   ; ES:EDI = destination
        mov ecx, 256            ; 256 words = 512 bytes
        mov dx, ATA_DATA
        rep insw                ; EXITs: 256 16-bit reads from port 0x1F0

        mov al, FAIL_SIZE
        cmp dword [IDENTIFY_BUF + 60 * 2], DISK_SECTORS
        jne finish
        mov al, POST_IDENTIFIED
        out POST_PORT, al       ; EXIT: progress 0x01

; ---- 2. READ SECTORS: SECTORS sectors from LBA ----
        mov dx, ATA_DRIVE
        mov al, 0xE0 | ((LBA >> 24) & 0x0F)
        out dx, al              ; EXIT
        mov dx, ATA_COUNT
        mov al, SECTORS
        out dx, al              ; EXIT
        mov dx, ATA_LBA_LO
        mov al, LBA & 0xFF
        out dx, al              ; EXIT
        mov dx, ATA_LBA_MID
        mov al, (LBA >> 8) & 0xFF
        out dx, al              ; EXIT
        mov dx, ATA_LBA_HI
        mov al, (LBA >> 16) & 0xFF
        out dx, al              ; EXIT
        mov dx, ATA_COMMAND
        mov al, CMD_READ
        out dx, al              ; EXIT: the drive goes BSY

        mov edi, SECTOR_BUF
        mov ebx, SECTORS        ; EBX = sectors left
next_sector:
        call wait_data          ; EXITs: status polls
        jc finish
        mov ecx, 256
        mov dx, ATA_DATA
        rep insw                ; EXITs: one sector; EDI moves on by 512
        dec ebx
        jnz next_sector

        mov al, POST_READ_DONE
        out POST_PORT, al       ; EXIT: progress 0x02

; ---- 3. checksum: 32-bit sum of all bytes read ----
        mov esi, SECTOR_BUF
        mov ecx, SECTORS * 512
        xor ebx, ebx            ; EBX = sum
add_byte:
        movzx eax, byte [esi]
        add ebx, eax
        inc esi
        dec ecx
        jnz add_byte

        mov al, FAIL_CHECKSUM
        cmp ebx, CHECKSUM
        jne finish
        mov al, POST_OK
        jmp finish

; wait_data: poll the status register until BSY is clear, then check that
; the drive has data for us. Returns CF = 0 if DRQ is set and ERR is clear;
; otherwise CF = 1 and AL = the failure code. Clobbers AL and DX.
wait_data:
        mov dx, ATA_STATUS
.poll:
        in al, dx               ; EXIT: read status
        test al, ATA_BSY
        jnz .poll               ; still busy: ask again
        test al, ATA_ERR
        jnz .error
        test al, ATA_DRQ
        jz .no_data
        ret                     ; CF = 0 (test clears it)
.error:
        mov al, FAIL_ERR
        stc
        ret
.no_data:
        mov al, FAIL_NO_DRQ
        stc
        ret

finish:
        out POST_PORT, al       ; EXIT: the one final POST code (in AL)
        hlt                     ; the VM stops here; nothing after this runs
