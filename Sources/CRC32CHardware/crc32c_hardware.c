#include "crc32c_hardware.h"
#include <string.h>

#if defined(__x86_64__)

int orderly_crc32c_hardware_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t orderly_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t value = crc;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        value = __builtin_ia32_crc32di(value, word);
        p += 8;
        count -= 8;
    }
    uint32_t small = (uint32_t)value;
    while (count > 0) {
        small = __builtin_ia32_crc32qi(small, *p);
        p++;
        count--;
    }
    return small;
}

#else

int orderly_crc32c_hardware_available(void) { return 0; }

uint32_t orderly_crc32c_hardware_update(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}

#endif
