#ifndef ORDERLY_CRC32C_HARDWARE_H
#define ORDERLY_CRC32C_HARDWARE_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has a CRC-32C instruction this file uses (x86-64 SSE 4.2).
int orderly_crc32c_hardware_available(void);

/// Continues a CRC-32C over `count` bytes with the CPU's instruction. `crc`
/// is the running register (pre-inverted, as the software form keeps it).
/// Only call when `orderly_crc32c_hardware_available()` is 1.
uint32_t orderly_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count);

#endif
